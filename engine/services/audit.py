"""Writing the audit trail. Every state change of an instance goes through `record_event`,
which also queues the outbound webhooks subscribed to it (`webhooks_out`)."""

from typing import Any

from engine.actors import Actor, as_user
from engine.models import InstanceEvent, ProcessInstance

from .webhooks_out import queue_webhook_deliveries


def record_event(
    instance: ProcessInstance,
    type: str,
    *,
    actor: Actor = None,
    element_id: str = "",
    payload: dict[str, Any] | None = None,
) -> InstanceEvent:
    event = InstanceEvent.objects.create(
        instance=instance,
        type=type,
        element_id=element_id,
        actor=as_user(actor),
        payload=payload or {},
    )
    # Subscribers hear of it through the outbox, in this very transaction.
    queue_webhook_deliveries(instance, event)
    return event
