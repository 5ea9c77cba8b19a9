"""Delivering `EventDelivery` rows on workers: messages and signals thrown by instances,
signal broadcasts, and retries.

A delivery is claimed with a lease (engine/services/delivery_outbox.py), then handled in
one transaction that takes the target instance's row lock first and the delivery's row
second, and checks that the delivery is still pending:
a duplicate Celery message or the sweep never delivers one event twice. A message that no
instance waits for yet is tried again with backoff (`BATON_MESSAGE_ATTEMPTS`), then marked
unmatched; an ambiguous one fails. Signals are broadcast to the instances that wait at the
moment the broadcast is fanned out.
"""

import datetime
import logging
from typing import Any

from django.conf import settings
from django.db import transaction

from engine import clock
from engine.actors import Actor, as_user
from engine.bpmn.events import NotWaiting
from engine.exceptions import Conflict, EngineError, NotFound
from engine.models import EventDelivery, ProcessInstance, SignalSubscription, StartTrigger

from .delivery_outbox import claim_delivery, due_for_sweep, exponential_backoff, retry_later
from .event_delivery import FINISHED, Event, defer, deliver_to_instance, find_target, start_by_event
from .handover import hand_over_deliveries_on_commit
from .instance_store import lock_instance
from .start_triggers import active_triggers

logger = logging.getLogger(__name__)
LEASE = datetime.timedelta(seconds=60)
# A pending delivery whose Celery message should have run by now is picked up by the sweep.
SWEEP_GRACE = datetime.timedelta(seconds=2)
Status = EventDelivery.Status


def fan_out_signal(
    name: str, variables: Any, *, source_instance_id: Any = None, sent_by: Actor = None
) -> tuple[int, int]:
    """Write one pending delivery per instance waiting for signal `name` (but the one that
    threw it) and per signal start event; enqueue them after commit. Returns (instances,
    start events)."""
    instance_ids = list(
        SignalSubscription.objects.filter(signal_name=name)
        .exclude(instance__status__in=FINISHED)
        .exclude(instance_id=source_instance_id)
        .order_by("instance_id")
        .values_list("instance_id", flat=True)
        .distinct()
    )
    triggers = active_triggers(StartTrigger.Kind.SIGNAL, name)
    now = clock.now()
    common = {
        "kind": EventDelivery.Kind.SIGNAL,
        "name": name,
        "variables": variables,
        "source_instance_id": source_instance_id,
        "sent_by": as_user(sent_by),
        "next_attempt_at": now,
    }
    rows = EventDelivery.objects.bulk_create(
        [EventDelivery(target_instance_id=i, **common) for i in instance_ids]
        + [EventDelivery(start_trigger=t, **common) for t in triggers]
    )
    hand_over_deliveries_on_commit([str(row.id) for row in rows])
    return len(instance_ids), len(triggers)


def _locked_pending(delivery_id: str) -> EventDelivery | None:
    return (
        EventDelivery.objects.select_for_update(no_key=True, of=("self",))
        .select_related("sent_by")
        .filter(pk=delivery_id, status=Status.PENDING)
        .first()
    )


def _done(delivery: EventDelivery, status: str, error: str = "", **fields: Any) -> None:
    delivery.status, delivery.last_error, delivery.claimed_until = status, error, None
    if status == Status.DELIVERED:
        delivery.delivered_at = clock.now()
    for name, value in fields.items():
        setattr(delivery, name, value)
    delivery.save()


def _to_instance(delivery_id: str, instance_id: Any) -> None:
    with transaction.atomic():
        instance = lock_instance(instance_id)
        delivery = _locked_pending(delivery_id)
        if delivery is None:
            return
        event = Event.of(delivery)
        if instance.status == ProcessInstance.Status.SUSPENDED:
            defer(instance, event, delivery=delivery)
            return
        try:
            with transaction.atomic():
                deliver_to_instance(instance.pk, event, actor=delivery.sent_by)
        except NotWaiting as exc:
            if delivery.kind == EventDelivery.Kind.MESSAGE and delivery.start_trigger_id is None:
                raise  # a thrown message: find its target again
            _done(delivery, Status.UNMATCHED, str(exc), target_instance=instance)
            return
        _done(delivery, Status.DELIVERED, target_instance=instance)


def _start(delivery_id: str) -> None:
    with transaction.atomic():
        delivery = _locked_pending(delivery_id)
        if delivery is None or delivery.start_trigger is None:
            return
        instance = start_by_event(
            delivery.start_trigger, Event.of(delivery), actor=delivery.sent_by
        )
        _done(delivery, Status.DELIVERED, target_instance=instance)


def _fan_out(delivery_id: str) -> None:
    with transaction.atomic():
        delivery = _locked_pending(delivery_id)
        if delivery is None:
            return
        fan_out_signal(
            delivery.name,
            delivery.variables,
            source_instance_id=delivery.source_instance_id,
            sent_by=delivery.sent_by,
        )
        _done(delivery, Status.DELIVERED)


def _retry_later(delivery_id: str, error: str, *, give_up_as: str = Status.FAILED) -> None:
    with transaction.atomic():
        delivery = _locked_pending(delivery_id)
        if delivery is None:
            return
        delivery.attempts += 1
        if delivery.attempts >= settings.BATON_MESSAGE_ATTEMPTS:
            _done(delivery, give_up_as, error)
            return
        retry_later(delivery, error, exponential_backoff(delivery.attempts))
        delivery.save(update_fields=["attempts", "last_error", "claimed_until", "next_attempt_at"])


def _correlate(delivery_id: str) -> None:
    delivery = EventDelivery.objects.get(pk=delivery_id)
    event = Event.of(delivery)
    for _ in range(3):
        target = find_target(event)  # NotFound / Conflict go to the caller
        if target.trigger is not None:
            EventDelivery.objects.filter(pk=delivery_id).update(start_trigger=target.trigger)
            _start(delivery_id)
            return
        try:
            _to_instance(delivery_id, target.instance_id)
            return
        except NotWaiting:
            continue  # it moved on between the lookup and the lock
    raise NotFound(f"No instance waits for message {event.name!r} any more.")


def deliver_event(delivery_id: str) -> None:
    """Deliver one pending event (a worker's job; a duplicate call does nothing)."""
    if not claim_delivery(EventDelivery, delivery_id, LEASE):
        return
    delivery = (
        EventDelivery.objects.filter(pk=delivery_id)
        .values("kind", "target_instance_id", "start_trigger_id")
        .first()
    )
    if delivery is None:
        return
    try:
        if delivery["target_instance_id"] is not None:
            _to_instance(delivery_id, delivery["target_instance_id"])
        elif delivery["start_trigger_id"] is not None:
            _start(delivery_id)
        elif delivery["kind"] == EventDelivery.Kind.SIGNAL:
            _fan_out(delivery_id)
        else:
            _correlate(delivery_id)
    except NotFound as exc:
        _retry_later(delivery_id, exc.detail, give_up_as=Status.UNMATCHED)
    except Conflict as exc:
        with transaction.atomic():
            delivery_row = _locked_pending(delivery_id)
            if delivery_row is not None:
                _done(delivery_row, Status.FAILED, exc.detail)
    except (EngineError, NotWaiting) as exc:
        _retry_later(delivery_id, str(exc))
    except Exception as exc:
        logger.exception("Delivering event %s failed", delivery_id)
        _retry_later(delivery_id, f"{type(exc).__name__}: {exc}")


def deliver_events(delivery_ids: list[str]) -> None:
    for delivery_id in delivery_ids:
        deliver_event(delivery_id)


def deliver_due_events(limit: int = 200) -> int:
    """Deliver pending events that are due again (retries) or whose Celery message was lost;
    returns how many were tried. Run by the timer beat."""
    with transaction.atomic():
        ids = [
            str(i)
            for i in due_for_sweep(EventDelivery, SWEEP_GRACE)
            .select_for_update(no_key=True, skip_locked=True)
            .order_by("next_attempt_at", "pk")
            .values_list("id", flat=True)[:limit]
        ]
    for delivery_id in ids:
        deliver_event(delivery_id)
    return len(ids)
