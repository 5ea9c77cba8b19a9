"""The operators' gate: operator actions check the group first, then lock the instance."""

import uuid

from django.core.exceptions import PermissionDenied

from engine.actors import Person
from engine.exceptions import Conflict
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


def lock_for_rewind(
    instance_id: uuid.UUID | str, actor: Person, action: str, done: str
) -> ProcessInstance:
    """`lock_for_repair` for the repairs that move tokens to other elements (reset, migrate):
    refused while the instance is being cancelled. Its tokens are then compensation handlers
    undoing what it did; moving them would run again work that is being undone (a reset) or
    lose the handlers (a migration), and the instance would still end terminated. Retry and
    skip stay allowed: they are how an operator gets a failed handler past its incident."""
    instance = lock_for_repair(instance_id, actor, action)
    if instance.is_cancelling:
        raise Conflict(
            f"The instance is being cancelled (its compensation runs); it cannot be {done} "
            "now. Retry or skip a failed handler, or terminate the instance."
        )
    return instance
