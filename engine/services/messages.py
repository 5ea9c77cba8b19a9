"""Correlating a message sent through the API to the one instance that waits for it, or
starting a process at its message start event.

Correlation (as Camunda 7 and SpiffArena do it): the message's name; its business key, if
given, must be the instance's; each correlation key must equal the value the waiting event
expects (SpiffArena correlation properties) or, where it expects none, the instance's
variable of that name (Camunda). Exactly one waiting instance or message start event may
match: none is NotFound, several Conflict. A `message_id` makes the call idempotent: it is an
operation key (`operation_keys`) that keeps the first result, and a message with the same id
later does nothing and gets that result again. Who may send: `engine.permissions.can_send_events`.
"""

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction

from engine.actors import Actor, Person
from engine.bpmn.events import NotWaiting
from engine.exceptions import InvalidInput, NotFound
from engine.jsonable import check_json_depth
from engine.models import OperationKey, ProcessInstance
from engine.permissions import can_send_events

from .event_delivery import Event, deliver_to_instance, find_target, start_by_event
from .operation_keys import KeyedOperation, remember_outcome, reserve_once, reserve_operation_key

MAX_NAME_LENGTH = 255


@dataclass
class MessageResult:
    body: dict[str, Any]  # its "outcome" says what happened: see `outcome`
    replayed: bool = False

    @property
    def outcome(self) -> str:
        """ "correlated" (a waiting instance received it), "started" (it started an instance)
        or "deferred" (kept for a suspended instance, which receives it on resume)."""
        return str(self.body["outcome"])


def check_event_input(name: Any, variables: Any) -> None:
    if not isinstance(name, str) or not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(
            "name must be a non-empty string of at most 255 characters.",
            errors=[{"field": "name", "message": "Give the event's name."}],
        )
    if not isinstance(variables, dict):
        raise InvalidInput(
            "variables must be a JSON object.",
            errors=[{"field": "variables", "message": "Must be an object."}],
        )
    check_json_depth(variables, "variables")


def _body(
    event: Event, outcome: str, instance: ProcessInstance | None, instance_id: Any
) -> dict[str, Any]:
    if instance is None:
        instance = (
            ProcessInstance.objects.only("id", "status", "definition__key")
            .select_related("definition")
            .get(pk=instance_id)
        )
    return {
        "name": event.name,
        "message_id": event.message_id,
        "outcome": outcome,
        "instance": str(instance.pk),
        "process": instance.definition.key,
        "instance_status": instance.status,
    }


def correlate_event(event: Event, actor: Actor) -> MessageResult:
    """Deliver a message (in the caller's transaction): start or correlate."""
    for _ in range(3):
        target = find_target(event)
        if target.trigger is not None:
            instance = start_by_event(target.trigger, event, actor=actor)
            return MessageResult(_body(event, "started", instance, None))
        try:
            with transaction.atomic():
                outcome = deliver_to_instance(target.instance_id, event, actor=actor)
        except NotWaiting:
            continue  # it moved on between the lookup and the lock: look again
        name = "deferred" if outcome == "deferred" else "correlated"
        return MessageResult(_body(event, name, None, target.instance_id))
    raise NotFound(f"No instance waits for message {event.name!r} any more.")


def correlate_message(
    *,
    name: str,
    actor: Person,
    variables: dict[str, Any] | None = None,
    correlation_keys: dict[str, Any] | None = None,
    business_key: str | None = None,
    message_id: str | None = None,
    operation_key: KeyedOperation | None = None,
) -> MessageResult:
    """Deliver a message to the one instance waiting for it, or start the one process with a
    message start event for it. Raises NotFound (nothing matches), Conflict (several match),
    PermissionDenied or InvalidInput, `OperationDoneBefore` when it was sent with
    `operation_key` before; nothing changes then."""
    if not can_send_events(actor):
        raise PermissionDenied("You may not send messages.")
    variables = {} if variables is None else variables
    check_event_input(name, variables)
    if correlation_keys is not None and not isinstance(correlation_keys, dict):
        raise InvalidInput("correlation_keys must be a JSON object.")
    for key, value in (correlation_keys or {}).items():
        if not isinstance(value, str | int | float | bool) and value is not None:
            raise InvalidInput(
                "A correlation key's value must be a string, a number, true, false or null.",
                errors=[{"field": f"correlation_keys.{key}", "message": "Not a plain value."}],
            )
    event = Event(
        "message",
        name,
        variables,
        dict(correlation_keys or {}),
        business_key or None,
        message_id or None,
    )
    once = KeyedOperation(OperationKey.MESSAGE_SCOPE, message_id) if message_id else None
    with transaction.atomic(durable=True):
        reserve_once(operation_key)
        if once is not None:
            earlier = reserve_operation_key(once)
            if earlier is not None:
                return MessageResult(dict(earlier.outcome or {}), replayed=True)
        result = correlate_event(event, actor)
        if once is not None:
            remember_outcome(once, result.body)
    return result
