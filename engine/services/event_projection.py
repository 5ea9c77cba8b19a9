"""Keeping Postgres in step with what a workflow waits for and what it throws.

Called from `instance_store.persist_workflow` inside the instance's transaction (under its
row lock):
- `publish_thrown_events` writes an `EventDelivery` for every message or signal the workflow
  threw for other instances, before the state is serialized (the workflow's own list of
  uncaught events is emptied, so it is not stored with the state);
- `sync_timers` keeps one unfired `Timer` row per waiting timer and due time, marks rows
  fired when their timer fired, and removes the rows of timers that were cancelled;
- `sync_event_subscriptions` keeps the `MessageSubscription` and `SignalSubscription` rows.
"""

import json
from dataclasses import dataclass, field
from typing import Any

from engine import clock
from engine.actors import Actor, as_user
from engine.bpmn.run import Run
from engine.bpmn.types import Workflow
from engine.bpmn.walks import timer_has_fired
from engine.models import (
    EventDelivery,
    MessageSubscription,
    ProcessInstance,
    SignalSubscription,
    Timer,
)

from .audit import record_event
from .handover import hand_over_deliveries_on_commit


def publish_thrown_events(instance: ProcessInstance, run: Run, *, actor: Actor = None) -> None:
    """Write a pending delivery for each message or signal thrown for other instances, and
    hand them to a worker after commit. Safe to call again for the same run."""
    run.forget_waits()  # a new persist: the workflow may have moved since the last one
    events = run.outgoing_events()
    if not events:
        return
    known = set(
        EventDelivery.objects.filter(id__in=[e.id for e in events]).values_list("id", flat=True)
    )
    new = [e for e in events if e.id not in known]
    if not new:
        return
    now = clock.now()
    EventDelivery.objects.bulk_create(
        [
            EventDelivery(
                id=event.id,
                kind=event.kind,
                name=event.name,
                variables=event.variables,
                correlation_keys=event.correlation_keys,
                business_key=event.business_key,
                source_instance=instance,
                sent_by=as_user(actor),
                next_attempt_at=now,
            )
            for event in new
        ]
    )
    for event in new:
        record_event(
            instance,
            "event_thrown",
            actor=actor,
            payload={
                "kind": event.kind,
                "name": event.name,
                "delivery": str(event.id),
            },
        )
    hand_over_deliveries_on_commit([str(event.id) for event in new])


def _timer_fired(workflow: Workflow, row: Timer, now: Any) -> bool:
    if row.due_at > now:
        return False  # cancelled or moved before it was due
    return timer_has_fired(workflow, row.spiff_task_id)


def sync_timers(instance: ProcessInstance, run: Run, *, fresh: bool = False) -> list[Timer]:
    """One unfired Timer row per waiting timer (and due time); fired ones marked fired.
    Returns the rows written now."""
    wanted = {(t.task.id, t.due_at): t for t in run.waits().timers}
    rows = [] if fresh else list(instance.timers.filter(fired=False))
    now = clock.now()
    for row in rows:
        if wanted.pop((row.spiff_task_id, row.due_at), None) is not None:
            continue
        if _timer_fired(run.workflow, row, now):
            row.fired, row.fired_at, row.claimed_until = True, now, None
            row.save(update_fields=["fired", "fired_at", "claimed_until"])
            record_event(
                instance,
                "timer_fired",
                element_id=row.element_id,
                payload={"due_at": row.due_at.isoformat()},
            )
        else:
            row.delete()
    return Timer.objects.bulk_create(
        [
            Timer(
                instance=instance, spiff_task_id=t.task.id, element_id=t.element_id, due_at=t.due_at
            )
            for t in wanted.values()
        ]
    )


def _correlation_key(correlation: dict[str, Any]) -> str:
    return json.dumps(correlation, sort_keys=True, default=str)


@dataclass
class EventRows:
    """The subscription rows an operation wrote."""

    messages: list[MessageSubscription] = field(default_factory=list)
    signals: list[SignalSubscription] = field(default_factory=list)


def sync_event_subscriptions(
    instance: ProcessInstance, run: Run, *, fresh: bool = False
) -> EventRows:
    """One MessageSubscription / SignalSubscription row per message or signal waited for.
    Events kept for an instance that ended while suspended will never be delivered.
    Returns the rows written now."""
    if instance.is_finished and not fresh:
        instance.incoming_events.filter(status=EventDelivery.Status.DEFERRED).update(
            status=EventDelivery.Status.UNMATCHED,
            last_error=f"The instance was {instance.status} before it was resumed.",
        )
    waits = run.waits()
    messages = {(m.task.id, m.name, _correlation_key(m.correlation)): m for m in waits.messages}
    if not fresh:
        for row in instance.message_subscriptions.all():
            key = (row.spiff_task_id, row.message_name, _correlation_key(row.correlation))
            if messages.pop(key, None) is None:
                row.delete()
    written = EventRows()
    written.messages = MessageSubscription.objects.bulk_create(
        [
            MessageSubscription(
                instance=instance,
                message_name=m.name,
                correlation=m.correlation,
                spiff_task_id=m.task.id,
                element_id=m.element_id,
            )
            for m in messages.values()
        ]
    )
    signals = {(s.task.id, s.name): s for s in waits.signals}
    if not fresh:
        for signal_row in instance.signal_subscriptions.all():
            if signals.pop((signal_row.spiff_task_id, signal_row.signal_name), None) is None:
                signal_row.delete()
    written.signals = SignalSubscription.objects.bulk_create(
        [
            SignalSubscription(
                instance=instance,
                signal_name=s.name,
                spiff_task_id=s.task.id,
                element_id=s.element_id,
            )
            for s in signals.values()
        ]
    )
    return written
