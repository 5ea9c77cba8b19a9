"""Read-only queries for batch operations: the instances a batch filter selects, and the
batches and their items an operator may read."""

import datetime
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from engine.actors import Person
from engine.exceptions import NotFound
from engine.models import (
    Batch,
    BatchItem,
    HumanTask,
    MessageSubscription,
    ProcessInstance,
    ServiceJob,
    SignalSubscription,
    Timer,
)
from engine.permissions import is_operator

from .wait_states import WAIT_KINDS, waiting_for

_DATES = ("started_after", "started_before")


@dataclass(frozen=True)
class BatchFilter:
    """Which instances a batch works on. Every field narrows the selection; none given means
    every instance (the operation's own statuses still apply)."""

    status: str | None = None
    definition: str | None = None  # a process key
    version: int | None = None  # a version of that process
    business_key: str | None = None
    incident_error: str | None = None  # part of the incident's error text, any case
    waiting_at: str | None = None  # an element id where a token waits
    waiting_for: str | None = None  # a WAIT_KINDS key
    started_after: datetime.datetime | None = None
    started_before: datetime.datetime | None = None

    def as_json(self) -> dict[str, Any]:
        """The fields given, as stored on the batch (dates in ISO 8601)."""
        given = {name: value for name, value in asdict(self).items() if value is not None}
        for name in _DATES:
            if name in given:
                given[name] = given[name].isoformat()
        return given


def _waiting_at(element_id: str) -> Q:
    mine = Q(instance=OuterRef("pk"), element_id=element_id)
    return (
        Q(incident__element_id=element_id)
        | Q(Exists(HumanTask.objects.filter(mine, status__in=HumanTask.ACTIVE_STATUSES)))
        | Q(Exists(ServiceJob.objects.filter(mine, status__in=ServiceJob.OPEN_STATUSES)))
        | Q(Exists(Timer.objects.filter(mine, fired=False)))
        | Q(Exists(MessageSubscription.objects.filter(mine)))
        | Q(Exists(SignalSubscription.objects.filter(mine)))
    )


def filtered_instances(given: BatchFilter) -> QuerySet[ProcessInstance]:
    """Every instance the filter selects, whoever may read it (batches are for operators)."""
    instances = ProcessInstance.objects.all()
    if given.status:
        instances = instances.filter(status=given.status)
    if given.definition:
        instances = instances.filter(definition__key=given.definition)
    if given.version is not None:
        instances = instances.filter(definition__version=given.version)
    if given.business_key:
        instances = instances.filter(business_key=given.business_key)
    if given.incident_error:
        instances = instances.filter(incident__error__icontains=given.incident_error)
    if given.waiting_at:
        instances = instances.filter(_waiting_at(given.waiting_at))
    if given.waiting_for and given.waiting_for in WAIT_KINDS:
        instances = waiting_for(instances, given.waiting_for)
    if given.started_after is not None:
        instances = instances.filter(created_at__gte=given.started_after)
    if given.started_before is not None:
        instances = instances.filter(created_at__lt=given.started_before)
    return instances.order_by()


def status_breakdown(instances: QuerySet[ProcessInstance]) -> dict[str, int]:
    rows = instances.values("status").annotate(n=Count("pk")).order_by()
    return {row["status"]: row["n"] for row in rows}


def sample_ids(instances: QuerySet[ProcessInstance], size: int) -> list[uuid.UUID]:
    return list(instances.order_by("pk").values_list("pk", flat=True)[:size])


def _require_operator(user: Person) -> None:
    if not is_operator(user):
        raise PermissionDenied("Only operators may see batch operations.")


def visible_batches(user: Person) -> QuerySet[Batch]:
    _require_operator(user)
    return Batch.objects.select_related("actor").order_by("-created_at", "id")


def batch_for(batch_id: uuid.UUID | str, user: Person) -> Batch:
    _require_operator(user)
    batch = Batch.objects.select_related("actor").filter(pk=batch_id).first()
    if batch is None:
        raise NotFound(f"There is no batch {batch_id}.")
    return batch


def batch_items(batch: Batch, outcomes: Iterable[str] = ()) -> QuerySet[BatchItem]:
    """The batch's items in their order; only those with one of `outcomes`, if given
    (`""` is pending)."""
    items = batch.items.order_by("position")
    wanted = list(outcomes)
    return items.filter(outcome__in=wanted) if wanted else items


def problem_items(batch: Batch, limit: int) -> list[BatchItem]:
    """The first skipped and failed items, for a progress answer."""
    return list(batch_items(batch, [BatchItem.Outcome.FAILED, BatchItem.Outcome.SKIPPED])[:limit])
