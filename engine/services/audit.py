"""Writing the audit trail. Every state change of an instance goes through `record_event`;
as its events are written, the outbound webhooks subscribed to them are queued in the same
transaction (`webhooks_out`).

Inside `events_in_one_insert()` (an operation on an instance), events are kept in order and
written together with one INSERT when the block ends without an error: an operation that
records several events (started, task_created, completed, ...) costs one round trip for all
of them. Outside such a block each event is written at once."""

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from engine.actors import Actor, as_user
from engine.models import InstanceEvent, ProcessInstance

from .webhooks_out import queue_webhook_deliveries

_pending: ContextVar[list[InstanceEvent] | None] = ContextVar("baton_pending_events", default=None)


def record_event(
    instance: ProcessInstance,
    type: str,
    *,
    actor: Actor = None,
    element_id: str = "",
    payload: dict[str, Any] | None = None,
) -> InstanceEvent:
    event = InstanceEvent(
        instance=instance,
        type=type,
        element_id=element_id,
        actor=as_user(actor),
        payload=payload or {},
    )
    pending = _pending.get()
    if pending is None:
        event.save()
        queue_webhook_deliveries([event])
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
        InstanceEvent.objects.bulk_create(pending)
        queue_webhook_deliveries(pending)  # written: subscribers hear of them (the outbox)


def pending_events_mark() -> int:
    """Where the kept events end now: `forget_pending_events(mark)` drops what came after
    (the events of a write that is started again from its savepoint)."""
    pending = _pending.get()
    return len(pending) if pending is not None else 0


def forget_pending_events(mark: int) -> None:
    pending = _pending.get()
    if pending is not None:
        del pending[mark:]
