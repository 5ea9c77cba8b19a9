"""Firing due timers: the beat's job, every second.

A firing pass claims due timers in small batches: one short transaction marks up to
`BATCH` unfired, due, unclaimed timers of running instances as claimed for `LEASE`
(`SELECT ... FOR UPDATE SKIP LOCKED`, so concurrent passes take different timers). Each
claimed timer is then fired in its own instance transaction: the instance's row lock first,
then the timer's row, which must still be unfired — so two passes, or a pass and an
operation that fired the timer on its way, never fire one timer twice. Timers of suspended
instances are not claimed; `apply_deferred_events` fires them on resume.
"""

import datetime
import logging
import time
import uuid

from django.db import transaction
from django.db.models import Q

from engine import clock
from engine.bpmn.failures import run_engine_steps
from engine.models import ProcessInstance, Timer

from . import observed
from .instance_store import lock_instance, open_run, persist_workflow
from .running import running_as
from .start_triggers import fire_due_start_timers

logger = logging.getLogger(__name__)
BATCH = 20
LEASE = datetime.timedelta(seconds=60)
FIRING_STATUSES = (
    ProcessInstance.Status.RUNNING,
    ProcessInstance.Status.WAITING,
    ProcessInstance.Status.INCIDENT,
)


def claim_due_timers(batch: int = BATCH) -> list[int]:
    """Lease up to `batch` due timers that no one else holds; returns their ids."""
    now = clock.now()
    with transaction.atomic():
        ids = list(
            Timer.objects.select_for_update(no_key=True, skip_locked=True, of=("self",))
            .filter(fired=False, due_at__lte=now, instance__status__in=FIRING_STATUSES)
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
            .order_by("due_at", "pk")
            .values_list("id", flat=True)[:batch]
        )
        Timer.objects.filter(id__in=ids).update(claimed_until=now + LEASE)
    return ids


def fire_timer(timer_id: int) -> bool:
    """Fire one claimed timer in its instance's transaction; True if it fired."""
    instance_id: uuid.UUID | None = (
        Timer.objects.filter(pk=timer_id).values_list("instance_id", flat=True).first()
    )
    if instance_id is None:
        return False
    with transaction.atomic():
        instance = lock_instance(instance_id)
        timer = (
            Timer.objects.select_for_update(no_key=True).filter(pk=timer_id, fired=False).first()
        )
        if timer is None:
            return False  # fired meanwhile (or cancelled)
        if instance.status not in FIRING_STATUSES or timer.due_at > clock.now():
            Timer.objects.filter(pk=timer_id).update(claimed_until=None)
            return False
        run = open_run(instance)
        with running_as(None, instance):
            run_engine_steps(run)  # refreshes timers: every due timer of it fires
        persist_workflow(instance, run, actor=None)
        fired = Timer.objects.filter(pk=timer_id, fired=True).exists()
        if fired:
            observed.timer_fired(instance, timer.due_at)
        else:  # the workflow did not count it due yet; the next pass tries again
            Timer.objects.filter(pk=timer_id).update(claimed_until=None)
    return fired


def fire_due_timers(*, time_budget: float = 5.0, batch: int = BATCH) -> int:
    """Fire due timers (and start instances of due timer start events) until none is left
    or `time_budget` seconds have passed; returns how many fired."""
    deadline = time.monotonic() + time_budget
    fired = fire_due_start_timers()
    while time.monotonic() < deadline:
        claimed = claim_due_timers(batch)
        if not claimed:
            break
        for timer_id in claimed:
            try:
                fired += int(fire_timer(timer_id))
            except Exception:
                logger.exception("Timer %s failed to fire; it is tried again later", timer_id)
    return fired
