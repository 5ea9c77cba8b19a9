"""The sweep: hand over again the service jobs whose message was never sent, was lost, or
whose worker died (its run lock is free)."""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from engine.models import ServiceJob
from engine.queueing import jobs_waiting_in_queue

from .handover import hand_over_job, hand_over_job_on_commit
from .job_runs import JOB_RUNNABLE_INSTANCE_STATUSES, release_run_lock, try_run_lock

# A pending job this late, with no message waiting in the job queue, lost its message.
LOST_MESSAGE_SECONDS = 2


def _hand_over_unqueued() -> int:
    """Jobs whose hand-over failed (the broker was down): hand them over now. Stops at the
    first failure (the broker is still down; hand_over_job marks that job again)."""
    handed = 0
    now = timezone.now()
    for job_id, next_attempt_at in (
        ServiceJob.objects.filter(
            status=ServiceJob.Status.PENDING,
            kind=ServiceJob.Kind.CONNECTOR,
            unqueued_since__isnull=False,
            instance__status__in=JOB_RUNNABLE_INSTANCE_STATUSES,
        )
        .order_by("unqueued_since")
        .values_list("id", "next_attempt_at")[:500]
    ):
        # A retry still backing off keeps its delay: a worker refuses an early message.
        delay = max((next_attempt_at - now).total_seconds(), 0) if next_attempt_at else 0
        if not hand_over_job(str(job_id), delay, probe=True):
            break
        ServiceJob.objects.filter(pk=job_id).update(unqueued_since=None)
        handed += 1
    return handed


def _requeue_late_pending(now: Any, grace: timedelta) -> int:
    with transaction.atomic():
        late = list(
            ServiceJob.objects.select_for_update(no_key=True, skip_locked=True, of=("self",))
            .filter(
                status=ServiceJob.Status.PENDING,
                kind=ServiceJob.Kind.CONNECTOR,  # external tasks wait for their workers
                next_attempt_at__lte=now - grace,
                unqueued_since__isnull=True,
                instance__status__in=JOB_RUNNABLE_INSTANCE_STATUSES,
            )
            .order_by("next_attempt_at", "pk")[:500]
        )
        for job in late:
            job.next_attempt_at = now
            job.save(update_fields=["next_attempt_at", "updated_at"])
            hand_over_job_on_commit(str(job.id))
    return len(late)


def _lost_message_grace() -> timedelta | None:
    """How late a pending job must be before its message counts as lost: a moment when the
    job queue is empty (the broker lost it, e.g. Redis restarted), the full sweep grace when
    messages wait there (it may be among them); None when the broker cannot be asked."""
    try:
        waiting = jobs_waiting_in_queue()
    except Exception:  # noqa: BLE001 -- the broker is down: nothing can be handed over now anyway
        return None
    seconds = LOST_MESSAGE_SECONDS if waiting == 0 else settings.BATON_SWEEP_GRACE_SECONDS
    return timedelta(seconds=seconds)


def _requeue_abandoned_running(now: Any) -> int:
    """Running jobs whose run lock is free: their worker is gone (the lock is held for the
    whole run and dies with the worker's connection), so they are taken over at once."""
    requeued = 0
    for job_id in ServiceJob.objects.filter(
        status=ServiceJob.Status.RUNNING,
        kind=ServiceJob.Kind.CONNECTOR,  # an external task's lock runs out by itself
        instance__status__in=JOB_RUNNABLE_INSTANCE_STATUSES,  # not results kept while suspended
    ).values_list("id", flat=True)[:500]:
        if not try_run_lock(str(job_id)):
            continue  # its worker is alive and still calling
        try:
            with transaction.atomic():
                job = ServiceJob.objects.select_for_update(no_key=True).get(pk=job_id)
                taken_over = job.status == ServiceJob.Status.RUNNING
                if taken_over:
                    job.status = ServiceJob.Status.PENDING
                    job.next_attempt_at = now
                    job.save(update_fields=["status", "next_attempt_at", "updated_at"])
        finally:
            release_run_lock(str(job_id))
        if taken_over:
            # Only now, with the run lock free: a worker that gets the message at once must
            # be able to take the lock, or it would drop the message as a duplicate.
            hand_over_job(str(job_id))
            requeued += 1
    return requeued


def sweep_service_jobs() -> int:
    """Hand over again the jobs whose message was never sent, was lost, or whose worker died;
    return how many. Run by the beat every BATON_SWEEP_INTERVAL_SECONDS and by every worker
    when it starts."""
    now = timezone.now()
    requeued = _hand_over_unqueued() + _requeue_abandoned_running(now)
    grace = _lost_message_grace()
    if grace is not None:
        requeued += _requeue_late_pending(now, grace)
    return requeued
