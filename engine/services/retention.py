"""Deleting what is no longer needed: finished instances an operator deletes (completed or
terminated ones only: a running instance is repaired or terminated, never deleted), and the
housekeeping of finished batches and sent webhook deliveries after their retention periods
(BATON_BATCH_RETENTION_DAYS, BATON_WEBHOOK_DELIVERY_RETENTION_DAYS)."""

import datetime
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.admin.models import DELETION, LogEntry
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet

from engine import clock
from engine.actors import Person, as_user
from engine.exceptions import InvalidInput
from engine.models import Batch, BatchItem, ProcessInstance, WebhookDelivery

from .audit import current_batch
from .operators import require_operator

logger = logging.getLogger(__name__)
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


# -- housekeeping: finished batches and webhook deliveries (the beat, `manage.py retention`) --

# Rows per short transaction: a deletion never holds many locks, or one lock for long.
CHUNK = 1000
# Batches per transaction: their items go first, CHUNK at a time.
BATCH_CHUNK = 20
FINISHED_BATCHES = (Batch.Status.COMPLETED, Batch.Status.CANCELLED, Batch.Status.FAILED)
SENT_DELIVERIES = (WebhookDelivery.Status.DELIVERED, WebhookDelivery.Status.FAILED)


@dataclass(frozen=True)
class Housekeeping:
    """What one housekeeping run deleted."""

    batches: int = 0
    batch_items: int = 0
    webhook_deliveries: int = 0


def _cutoff(days: float, now: datetime.datetime | None) -> datetime.datetime | None:
    """The moment before which rows go; None: `days` is 0 or less, keep them forever."""
    if days <= 0:
        return None
    return (now or clock.now()) - datetime.timedelta(days=days)


def _lock_next(rows: "QuerySet[Any]", oldest_first: str, size: int) -> list[Any]:
    """The keys of the next `size` of `rows`, oldest first, locked for deletion (a key lock,
    not no_key: they are deleted) within the caller's transaction; rows another run holds are
    skipped, not waited for."""
    return list(
        rows.select_for_update(no_key=False, skip_locked=True)
        .order_by(oldest_first, "pk")
        .values_list("pk", flat=True)[:size]
    )


def delete_old_batches(now: datetime.datetime | None = None) -> tuple[int, int]:
    """Delete batches that finished more than BATON_BATCH_RETENTION_DAYS ago, with their
    items, in chunks. Returns (batches, items) deleted. A running or pending batch stays."""
    before = _cutoff(settings.BATON_BATCH_RETENTION_DAYS, now)
    if before is None:
        return 0, 0
    old = Batch.objects.filter(status__in=FINISHED_BATCHES, finished_at__lt=before)
    batches = items = 0
    while True:
        with transaction.atomic():
            ids = _lock_next(old, "finished_at", BATCH_CHUNK)
            if not ids:
                break
            items += _delete_in_chunks(BatchItem.objects.filter(batch_id__in=ids))
            Batch.objects.filter(pk__in=ids).delete()
            batches += len(ids)
    if batches:
        logger.info("Retention: deleted %d finished batches with %d items", batches, items)
    return batches, items


def _delete_in_chunks(rows: "QuerySet[BatchItem]") -> int:
    """Delete `rows` CHUNK at a time (within the caller's transaction): a batch of a million
    items is not one statement that the database plans and logs all at once."""
    deleted = 0
    while True:
        ids = list(rows.order_by("pk").values_list("pk", flat=True)[:CHUNK])
        if not ids:
            return deleted
        count, _ = BatchItem.objects.filter(pk__in=ids).delete()
        deleted += count


def delete_old_webhook_deliveries(now: datetime.datetime | None = None) -> int:
    """Delete webhook deliveries that were delivered or given up and were written more than
    BATON_WEBHOOK_DELIVERY_RETENTION_DAYS ago, in chunks. A pending one stays, however old."""
    before = _cutoff(settings.BATON_WEBHOOK_DELIVERY_RETENTION_DAYS, now)
    if before is None:
        return 0
    old = WebhookDelivery.objects.filter(status__in=SENT_DELIVERIES, created_at__lt=before)
    deleted = 0
    while True:
        with transaction.atomic():
            ids = _lock_next(old, "created_at", CHUNK)
            if not ids:
                break
            WebhookDelivery.objects.filter(pk__in=ids).delete()
            deleted += len(ids)
    if deleted:
        logger.info("Retention: deleted %d old webhook deliveries", deleted)
    return deleted


def delete_expired_records(now: datetime.datetime | None = None) -> Housekeeping:
    """The housekeeping run (the beat's, hourly, or `manage.py retention`): old finished
    batches and old sent webhook deliveries. Finished instances stay until an operator
    deletes them (`delete_finished_instances`): they are the processes' record."""
    batches, items = delete_old_batches(now)
    return Housekeeping(batches, items, delete_old_webhook_deliveries(now))
