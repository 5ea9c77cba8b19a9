"""What the two delivery outboxes share: `EventDelivery` (messages and signals,
engine/services/event_outbox.py) and `WebhookDelivery` (outbound webhooks,
engine/services/webhooks_out.py), both `DeliveryState` rows.

A worker claims one pending, due row with a lease: one UPDATE that succeeds for one caller
only, so a duplicate Celery message or the beat's sweep never handles a delivery twice while
its lease runs. A failed attempt releases the claim and makes the row due again after an
exponentially growing delay; the beat's sweep picks up pending rows that are due and unclaimed
(their message was lost) a moment after they fell due.
"""

import datetime
import random
from typing import TypeVar

from django.db.models import Q, QuerySet

from engine import clock
from engine.models import DeliveryState

PENDING = DeliveryState.PENDING
# A message handed over for "now" may reach a worker a moment before the row's time (clocks
# of two machines): it is claimed all the same.
EARLY = datetime.timedelta(seconds=1)
D = TypeVar("D", bound=DeliveryState)


def _rows(model: type[D]) -> "QuerySet[D]":
    # Django documents `_default_manager` as the way to reach any model class's manager.
    return model._default_manager.all()  # noqa: SLF001


def _unclaimed(now: datetime.datetime) -> Q:
    return Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)


def claim_delivery(model: type[DeliveryState], delivery_id: str, lease: datetime.timedelta) -> bool:
    """Lease a pending, due, unclaimed delivery to this worker; False: it is not (any more)
    pending, not due yet, or another worker holds it."""
    now = clock.now()
    claimed = (
        _rows(model)
        .filter(
            _unclaimed(now),
            Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now + EARLY),
            pk=delivery_id,
            status=PENDING,
        )
        .update(claimed_until=now + lease)
    )
    return claimed == 1


def due_for_sweep(
    model: type[D], grace: datetime.timedelta, now: datetime.datetime | None = None
) -> "QuerySet[D]":
    """Pending deliveries due `grace` ago or earlier and claimed by nobody: their message
    should have run by now. The caller orders, locks and limits."""
    now = now or clock.now()
    return _rows(model).filter(_unclaimed(now), status=PENDING, next_attempt_at__lte=now - grace)


def exponential_backoff(
    attempts: int, *, base: float = 1.0, ceiling: float | None = None, jitter: bool = False
) -> float:
    """The wait before the next attempt after `attempts` attempts: `base` doubling per attempt
    (base, 2 base, 4 base ...), at most `ceiling`; with `jitter` 0.8 to 1.2 times that, so that
    the retries of many rows that failed together do not all come back at once. Service jobs
    back off by the same rule (engine/services/job_outcomes.py)."""
    delay = base * 2 ** max(attempts - 1, 0)
    if ceiling is not None:
        delay = min(delay, ceiling)
    return float(delay * random.uniform(0.8, 1.2)) if jitter else float(delay)


def retry_later(delivery: DeliveryState, error: str, delay_seconds: float) -> None:
    """Release the claim on `delivery` (locked by the caller, who saves it) and make it due
    again in `delay_seconds`, keeping `error` as the reason."""
    delivery.last_error, delivery.claimed_until = error, None
    delivery.next_attempt_at = clock.now() + datetime.timedelta(seconds=delay_seconds)
