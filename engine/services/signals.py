"""Broadcasting a signal sent through the API to every instance that waits for it and to
every process with a signal start event for it.

The broadcast writes one pending delivery per waiting instance and per start event, in one
transaction, and workers deliver them (each in its instance's own transaction); an instance
that is suspended keeps the signal until it is resumed. Who may send:
`engine.permissions.can_send_events`.
"""

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction

from engine.actors import Person
from engine.permissions import can_send_events

from .event_outbox import fan_out_signal
from .messages import check_event_input
from .operation_keys import KeyedOperation, reserve_once


def broadcast_signal(
    *,
    name: str,
    actor: Person,
    variables: dict[str, Any] | None = None,
    operation_key: KeyedOperation | None = None,
) -> dict[str, Any]:
    """Send signal `name` to everything that waits for it now; returns how many instances and
    start events it goes to. Raises PermissionDenied or InvalidInput, and
    `OperationDoneBefore` when it was sent with `operation_key` before."""
    if not can_send_events(actor):
        raise PermissionDenied("You may not send signals.")
    variables = {} if variables is None else variables
    check_event_input(name, variables)
    with transaction.atomic(durable=True):
        reserve_once(operation_key)
        instances, starts = fan_out_signal(name, variables, sent_by=actor)
    return {"name": name, "instances": instances, "start_events": starts}
