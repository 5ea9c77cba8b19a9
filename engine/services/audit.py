"""Writing the audit trail. Every state change of an instance goes through `record_event`;
as its events are written, the outbound webhooks subscribed to them are queued in the same
transaction (`webhooks_out`).

Inside `events_in_one_insert()` (an operation on an instance), events are kept in order and
written together with one INSERT when the block ends without an error: an operation that
records several events (started, task_created, completed, ...) costs one round trip for all
of them. Outside such a block each event is written at once."""

import contextlib
import uuid
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from django.db import connection

from engine.actors import Actor, as_user
from engine.bpmn.run import Run
from engine.models import InstanceEvent, ProcessInstance
from engine.rows import insert_of, quote

from .webhooks_out import queue_webhook_deliveries, subscribable_types, subscribed_sql

_pending: ContextVar[list[InstanceEvent] | None] = ContextVar("baton_pending_events", default=None)


@dataclass
class BatchScope:
    """The batch on whose behalf operations run now (engine.services.batches), and the
    instances they wrote audit events for: what the batch changed."""

    batch_id: str
    touched: set[uuid.UUID] = field(default_factory=set)


_current_batch: ContextVar[BatchScope | None] = ContextVar("baton_current_batch", default=None)


@contextlib.contextmanager
def on_behalf_of_batch(batch_id: uuid.UUID | str) -> Iterator[BatchScope]:
    """Every audit event written inside names the batch (`payload.batch`): the trail says
    which batch changed an instance, and a chunk run again after its worker died finds the
    instances the batch already changed."""
    scope = BatchScope(str(batch_id))
    token = _current_batch.set(scope)
    try:
        yield scope
    finally:
        _current_batch.reset(token)


def current_batch() -> str | None:
    scope = _current_batch.get()
    return scope.batch_id if scope is not None else None


def record_event(
    instance: ProcessInstance,
    type: str,
    *,
    actor: Actor = None,
    element_id: str = "",
    payload: dict[str, Any] | None = None,
) -> InstanceEvent:
    payload = payload or {}
    scope = _current_batch.get()
    if scope is not None:
        payload = {**payload, "batch": scope.batch_id}
        scope.touched.add(instance.pk)
    event = InstanceEvent(
        instance=instance,
        type=type,
        element_id=element_id,
        actor=as_user(actor),
        payload=payload,
    )
    pending = _pending.get()
    if pending is None:
        write_events([event])
    else:
        pending.append(event)
    return event


@contextlib.contextmanager
def events_in_one_insert() -> Iterator[None]:
    """Write the events recorded in the block with one INSERT at its end (inside the caller's
    transaction). Nested blocks join the outermost one; an error discards what was kept."""
    if _pending.get() is not None:
        yield
        return
    pending: list[InstanceEvent] = []
    token = _pending.set(pending)
    try:
        yield
    finally:
        _pending.reset(token)
    if pending:
        write_events(pending)


@cache
def _events_returning() -> str:
    """What the events' INSERT returns: each event's key and the subscribers."""
    key = quote(str(InstanceEvent._meta.pk.column))
    return f" RETURNING {key}, ({subscribed_sql()})"


def write_events(events: Sequence[InstanceEvent]) -> None:
    """Insert `events` and queue the webhook deliveries of their subscribers (the outbox),
    in one statement that also finds the subscribers: an operation whose events nobody
    subscribed to costs one round trip for all of them."""
    if not events:
        return
    insert = insert_of(InstanceEvent)
    with connection.cursor() as cursor:
        cursor.execute(
            insert.sql(len(events)) + _events_returning(),
            [*insert.params(events), subscribable_types(events)],
        )
        written = cursor.fetchall()
    insert.written(events, [key for key, _ in written])
    queue_webhook_deliveries(events, written[0][1])


def pending_events_mark() -> int:
    """Where the kept events end now: `forget_pending_events(mark)` drops what came after
    (the events of a write that is started again from its savepoint)."""
    pending = _pending.get()
    return len(pending) if pending is not None else 0


def forget_pending_events(mark: int) -> None:
    pending = _pending.get()
    if pending is not None:
        del pending[mark:]


def record_compensations(instance: ProcessInstance, run: Run, *, actor: Actor = None) -> None:
    """A `compensation_started` event for each compensation handler the operation's engine
    steps started (`Run.compensations`), with the operation's actor. The caller clears the
    list once the operation's writes succeeded (a write started again records them again)."""
    for started in run.compensations:
        record_event(
            instance,
            InstanceEvent.Type.COMPENSATION_STARTED,
            actor=actor,
            element_id=started.activity_id,
            payload={
                "handler": started.handler_id,
                "activity_name": started.activity_name,
                "handler_name": started.handler_name,
                "reason": started.reason,
            },
        )
