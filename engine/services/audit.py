"""Writing the audit trail. Every state change of an instance goes through `record_event`."""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from engine.actors import Actor, as_user
from engine.models import InstanceEvent, ProcessInstance


@dataclass
class BatchScope:
    """The batch on whose behalf operations run now (engine.services.batches), and the
    instances they wrote audit events for: what the batch changed."""

    batch_id: str
    touched: set[uuid.UUID] = field(default_factory=set)


_current_batch: ContextVar[BatchScope | None] = ContextVar("baton_current_batch", default=None)


@contextmanager
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
    return InstanceEvent.objects.create(
        instance=instance,
        type=type,
        element_id=element_id,
        actor=as_user(actor),
        payload=payload,
    )
