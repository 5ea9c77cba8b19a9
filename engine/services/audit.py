"""Writing the audit trail. Every state change of an instance goes through `record_event`."""

from typing import Any

from engine.actors import Actor, as_user
from engine.models import InstanceEvent, ProcessInstance


def record_event(
    instance: ProcessInstance,
    type: str,
    *,
    actor: Actor = None,
    element_id: str = "",
    payload: dict[str, Any] | None = None,
) -> InstanceEvent:
    return InstanceEvent.objects.create(
        instance=instance,
        type=type,
        element_id=element_id,
        actor=as_user(actor),
        payload=payload or {},
    )
