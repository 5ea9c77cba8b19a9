"""Handing work to the broker once the operation that made it has committed.

A committed operation is never reported as failed because the broker is down: the failure is
logged (once per outage), the job is marked `unqueued_since` ("queued, broker unreachable" in
the instance's jobs) and the sweep hands it over again as soon as the broker answers. Event
deliveries wait in their outbox, which the timer beat delivers from.
"""

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import partial

from django.db import DatabaseError, transaction
from django.utils import timezone

from engine.models import ServiceJob
from engine.queueing import send_event_deliveries, send_service_job

logger = logging.getLogger(__name__)

# After a failed send, this process sends nothing for this long (jobs are marked at once).
RETRY_BROKER_AFTER_SECONDS = 5.0


class _Outage:
    """Whether this process saw the broker fail and has not seen it answer since. For a
    moment after a failure, hand-overs do not try the broker again: an operation that makes
    many jobs (a fan-out) would otherwise wait for a connection timeout per job."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.ongoing = False
        self._failed_at = 0.0

    def failed(self, exc: Exception) -> None:
        with self._lock:
            first, self.ongoing = not self.ongoing, True
            self._failed_at = time.monotonic()
        if first:
            logger.warning(
                "The broker is unreachable (%s: %s); work waits in the database for the sweep",
                type(exc).__name__,
                exc,
            )

    def answered(self) -> None:
        with self._lock:
            ended, self.ongoing = self.ongoing, False
        if ended:
            logger.warning("The broker answers again")

    def recently_failed(self) -> bool:
        with self._lock:
            return self.ongoing and time.monotonic() - self._failed_at < RETRY_BROKER_AFTER_SECONDS


outage = _Outage()


def _mark_unqueued(job_id: str) -> None:
    try:
        ServiceJob.objects.filter(pk=job_id, unqueued_since__isnull=True).update(
            unqueued_since=timezone.now()
        )
    except DatabaseError:
        logger.exception("Job %s could not be marked as unqueued", job_id)


def hand_over_job(job_id: str, delay_seconds: float = 0, *, probe: bool = False) -> bool:
    """Send the job's message now (after a commit); on failure mark it for the sweep.
    Whether the broker took it. Right after a failure nothing is sent unless `probe` (the
    sweep asking whether the broker is back)."""
    if not probe and outage.recently_failed():
        _mark_unqueued(job_id)
        return False
    try:
        send_service_job(job_id, delay_seconds)
    except Exception as exc:  # noqa: BLE001 -- any broker or connection error: the work is safe in the table
        outage.failed(exc)
        _mark_unqueued(job_id)
        return False
    outage.answered()
    return True


# The jobs due now that this worker keeps to run itself (`keeping_due_jobs`), else None.
_kept_jobs: ContextVar[list[str] | None] = ContextVar("kept_jobs", default=None)


def hand_over_job_on_commit(job_id: str, delay_seconds: float = 0) -> None:
    """Hand the job over once the current transaction commits (never if it rolls back); inside
    `keeping_due_jobs`, a job due now is kept for the caller instead."""
    kept = _kept_jobs.get()
    if kept is not None and delay_seconds <= 0:
        transaction.on_commit(partial(kept.append, job_id))
    else:
        transaction.on_commit(partial(hand_over_job, job_id, delay_seconds))


@contextmanager
def keeping_due_jobs() -> Iterator[list[str]]:
    """The jobs due now that the operations inside make (once they commit), kept for the
    caller to run or hand over: nothing else sends them. A worker that dies before it does
    leaves them pending without a message, which the sweep hands over."""
    kept: list[str] = []
    token = _kept_jobs.set(kept)
    try:
        yield kept
    finally:
        _kept_jobs.reset(token)


def _hand_over_deliveries(delivery_ids: list[str]) -> None:
    try:
        send_event_deliveries(delivery_ids)
    except Exception as exc:  # noqa: BLE001 -- the deliveries wait in their outbox for the beat
        outage.failed(exc)
        return
    outage.answered()


def hand_over_deliveries_on_commit(delivery_ids: list[str]) -> None:
    """Hand message and signal deliveries to a worker once the transaction commits."""
    if delivery_ids:
        transaction.on_commit(partial(_hand_over_deliveries, list(delivery_ids)))
