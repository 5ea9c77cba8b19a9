"""Writing the audit trail. Every state change of an instance goes through `record_event`."""
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from engine.models import InstanceEvent, ProcessInstance


def record_event(
    instance: ProcessInstance,
    type: str,
    *,
    actor: AbstractBaseUser | AnonymousUser | None = None,
    element_id: str = "",
    payload: dict[str, Any] | None = None,
) -> InstanceEvent:
    return InstanceEvent.objects.create(
        instance=instance,
        type=type,
        element_id=element_id,
        actor=actor if isinstance(actor, AbstractBaseUser) else None,
        payload=payload or {},
    )
