"""Deleting finished instances an operator no longer needs (completed or terminated ones
only: a running instance is repaired or terminated, never deleted)."""

import datetime
import uuid
from collections.abc import Iterable

from django.contrib.admin.models import DELETION, LogEntry
from django.core.exceptions import PermissionDenied
from django.db import transaction

from engine.actors import Person, as_user
from engine.exceptions import InvalidInput
from engine.models import ProcessInstance

from .audit import current_batch
from .operators import require_operator

FINISHED = (ProcessInstance.Status.COMPLETED, ProcessInstance.Status.TERMINATED)
BATCH_SIZE = 500


def delete_finished_instances(
    *,
    actor: Person,
    finished_before: datetime.datetime,
    instance_ids: Iterable[uuid.UUID | str] | None = None,
) -> int:
    """Delete completed and terminated instances that finished before `finished_before`
    (optionally only those among `instance_ids`), with their tasks, jobs, timers and audit
    trail. Each deletion is written to Django's admin log (the instance's own trail goes with
    it). Returns how many were deleted."""
    require_operator(actor, "delete")
    user = as_user(actor)
    if user is None:
        raise PermissionDenied("Deleting instances needs a signed-in operator.")
    if finished_before.tzinfo is None:
        raise InvalidInput("The date needs a time zone.")
    finished = ProcessInstance.objects.filter(status__in=FINISHED, completed_at__lt=finished_before)
    if instance_ids is not None:
        finished = finished.filter(pk__in=list(instance_ids))
    batch_id = current_batch()
    by_batch = f" by batch {batch_id}" if batch_id else ""
    deleted = 0
    while True:
        with transaction.atomic():
            batch = list(
                # A key lock (no no_key=True): these rows are deleted, and a key lock keeps
                # new rows from referencing them meanwhile.
                finished.select_for_update(no_key=False, skip_locked=True, of=("self",))
                .select_related("definition")
                .only("id", "status", "business_key", "definition__key", "definition__version")
                .order_by("completed_at", "pk")[:BATCH_SIZE]
            )
            if not batch:
                return deleted
            LogEntry.objects.log_actions(
                user_id=user.pk,
                queryset=batch,
                action_flag=DELETION,
                change_message=f"Deleted a finished instance (before "
                f"{finished_before.isoformat()}){by_batch}.",
            )
            ProcessInstance.objects.filter(pk__in=[i.pk for i in batch]).delete()
            deleted += len(batch)
