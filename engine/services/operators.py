"""The operators' gate: operator actions check the group first, then lock the instance."""

import uuid

from django.core.exceptions import PermissionDenied

from engine.actors import Person
from engine.models import ProcessInstance
from engine.permissions import is_operator

from .instance_store import lock_unfinished


def require_operator(actor: Person, action: str) -> None:
    if not is_operator(actor):
        raise PermissionDenied(f"Only operators may {action} instances.")


def lock_for_repair(instance_id: uuid.UUID | str, actor: Person, action: str) -> ProcessInstance:
    """Check the operators group, then lock an unfinished instance."""
    require_operator(actor, action)
    return lock_unfinished(instance_id, "changed")
