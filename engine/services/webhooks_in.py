"""Inbound webhooks: `POST /api/v1/webhooks/<name>/` starts a process or sends a message.

An `InboundWebhook` (admin) binds a name to an action. A delivery is taken when its
HMAC-SHA256 signature, keyed with the webhook's secret from the secret store, matches its
exact body (engine/connectors/webhook_signatures.py: GitHub or timestamped style); anything
else is refused with `NotAuthenticated` before the body is parsed, and changes nothing.

The body is JSON, or a CloudEvent: structured (`application/cloudevents+json`, the event's
`data` is the payload) or binary (`ce-*` headers, the body is the payload). The payload goes
into the variable the webhook names (default `webhook`), a CloudEvent's attributes into
`<that variable>_event`; correlation keys and the business key are read from the payload
by dotted paths.

Each delivery happens once. Its id is the CloudEvent's source and id, or the first of the
headers in `DELIVERY_ID_HEADERS`, or else the SHA-256 of the body. It is reserved as an
operation key in the delivery's transaction, together with what the delivery did: a
replayed delivery changes nothing and gets that same outcome again. A delivery that fails
(no instance waits, a bad payload) leaves nothing behind, so the sender may retry it.
"""

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction

from engine.actors import Person, as_user
from engine.connectors.secrets import REFERENCE, MissingSecret, lookup
from engine.connectors.webhook_signatures import (
    GITHUB_HEADER,
    TIMESTAMPED_HEADER,
    BadSignature,
    verify_github,
    verify_timestamped,
)
from engine.exceptions import Conflict, InvalidInput, NotAuthenticated, NotFound, Unavailable
from engine.jsonable import NumberTooLong, check_json_depth, parse_json_int
from engine.models import InboundWebhook, ProcessInstance
from engine.permissions import is_operator

from .audit import record_event
from .event_delivery import Event
from .instances import create_started_instance, prepare_start_run
from .messages import check_event_input, correlate_event
from .operation_keys import KeyedOperation, remember_outcome, reserve_operation_key

logger = logging.getLogger(__name__)

# Where senders put a delivery's id (GitHub, Standard Webhooks, generic), first found wins.
DELIVERY_ID_HEADERS = ("X-GitHub-Delivery", "Webhook-Id", "X-Delivery-Id", "Idempotency-Key")
CLOUDEVENTS_TYPE = "application/cloudevents+json"
CLOUDEVENT_ATTRIBUTES = ("id", "source", "type", "specversion", "subject", "time")
MAX_KEY_LENGTH = 255
MAX_PATH_STEPS = 20


@dataclass(frozen=True)
class WebhookReceipt:
    body: dict[str, Any]  # webhook, delivery, outcome, instance, process, instance_status
    replayed: bool


@dataclass(frozen=True)
class Delivery:
    payload: Any
    event: dict[str, Any] | None  # the CloudEvent's attributes, None for plain JSON
    delivery_id: str


def _verify(hook: InboundWebhook, body: bytes, headers: Mapping[str, str]) -> None:
    try:
        secret = lookup(hook.secret_name)
    except MissingSecret:
        logger.error("Webhook %s: its secret %s is not declared", hook.name, hook.secret_name)
        raise Unavailable("This webhook cannot verify deliveries now.") from None
    try:
        if hook.signature_style == InboundWebhook.SignatureStyle.TIMESTAMPED:
            header = headers.get(hook.signature_header or TIMESTAMPED_HEADER, "")
            verify_timestamped(secret, body, header, hook.tolerance_seconds)
        else:
            verify_github(secret, body, headers.get(hook.signature_header or GITHUB_HEADER, ""))
    except BadSignature as exc:
        logger.warning("Webhook %s: delivery refused: %s", hook.name, exc)
        raise NotAuthenticated(f"The delivery's signature was refused: {exc}") from None


def _json(body: bytes) -> Any:
    try:
        value = json.loads(body.decode("utf-8"), parse_int=parse_json_int)
    except RecursionError:
        raise InvalidInput("The JSON body is nested too deeply.") from None
    except (NumberTooLong, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError too
        raise InvalidInput(f"The body is not JSON: {exc}") from None
    check_json_depth(value, "The JSON body")
    return _without_nul(value)


def _without_nul(value: Any) -> Any:
    # Postgres stores no NUL in text or JSONB (as the API's parser does: U+FFFD instead).
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def _key(text: str) -> str:
    """A delivery id short enough for an operation key (a long one by its hash)."""
    if len(text) <= MAX_KEY_LENGTH:
        return text
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _read(body: bytes, content_type: str, headers: Mapping[str, str]) -> Delivery:
    media_type = content_type.split(";")[0].strip().lower()
    if media_type == CLOUDEVENTS_TYPE:
        event = _json(body)
        if not isinstance(event, dict) or not all(
            isinstance(event.get(a), str) and event.get(a) for a in ("id", "source", "type")
        ):
            raise InvalidInput("A CloudEvent needs the attributes id, source and type.")
        attributes = {a: event[a] for a in CLOUDEVENT_ATTRIBUTES if a in event}
        delivery_id = _key(f"ce:{event['source']}:{event['id']}")
        return Delivery(event.get("data"), attributes, delivery_id)
    ce_id, ce_source = headers.get("ce-id", ""), headers.get("ce-source", "")
    payload = _json(body) if body else None
    if ce_id or headers.get("ce-specversion"):
        if not ce_id or not ce_source or not headers.get("ce-type"):
            raise InvalidInput("A CloudEvent needs the headers ce-id, ce-source and ce-type.")
        attributes = {a: headers[f"ce-{a}"] for a in CLOUDEVENT_ATTRIBUTES if f"ce-{a}" in headers}
        return Delivery(payload, attributes, _key(f"ce:{ce_source}:{ce_id}"))
    named = next(
        (headers[h].strip() for h in DELIVERY_ID_HEADERS if headers.get(h, "").strip()), ""
    )
    delivery_id = _key(f"id:{named}") if named else "body:" + hashlib.sha256(body).hexdigest()
    return Delivery(payload, None, delivery_id)


def _at_path(payload: Any, path: str, what: str) -> Any:
    value = payload
    for step in path.split(".")[:MAX_PATH_STEPS]:
        if isinstance(value, dict) and step in value:
            value = value[step]
        elif isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            raise InvalidInput(f"The payload has no {path!r} (the webhook's {what}).")
    return value


def _plain(value: Any, what: str) -> Any:
    if value is not None and not isinstance(value, str | int | float | bool):
        raise InvalidInput(f"The payload's {what} is not a plain value.")
    return value


def _variables(hook: InboundWebhook, delivery: Delivery) -> dict[str, Any]:
    variables: dict[str, Any] = {hook.payload_variable: delivery.payload}
    if delivery.event is not None:
        variables[f"{hook.payload_variable}_event"] = delivery.event
    return variables


def _business_key(hook: InboundWebhook, payload: Any) -> str | None:
    if not hook.business_key_path:
        return None
    value = _plain(_at_path(payload, hook.business_key_path, "business key"), "business key")
    return None if value is None else str(value)[:255]


def _outcome_body(hook: InboundWebhook, delivery: Delivery, outcome: str, instance: Any) -> dict:
    row = ProcessInstance.objects.filter(pk=instance).values("definition__key", "status").get()
    return {
        "webhook": hook.name,
        "delivery": delivery.delivery_id,
        "outcome": outcome,
        "instance": str(instance),
        "process": row["definition__key"],
        "instance_status": row["status"],
    }


def _audit(instance_id: Any, hook: InboundWebhook, delivery: Delivery) -> None:
    payload: dict[str, Any] = {"webhook": hook.name, "delivery": delivery.delivery_id}
    if delivery.event is not None:
        payload["cloudevent"] = {k: delivery.event.get(k) for k in ("id", "source", "type")}
    record_event(ProcessInstance(pk=instance_id), "webhook_received", payload=payload)


def _start(hook: InboundWebhook, delivery: Delivery, once: KeyedOperation) -> WebhookReceipt:
    business_key = _business_key(hook, delivery.payload)
    definition, run = prepare_start_run(
        key=hook.process_key, variables=_variables(hook, delivery), version=None, actor=None
    )
    with transaction.atomic(durable=True):
        earlier = reserve_operation_key(once)
        if earlier is not None:
            return WebhookReceipt(dict(earlier.outcome or {}), replayed=True)
        instance = create_started_instance(definition, run, business_key=business_key, actor=None)
        _audit(instance.pk, hook, delivery)
        body = _outcome_body(hook, delivery, "started", instance.pk)
        remember_outcome(once, body)
    return WebhookReceipt(body, replayed=False)


def _message(hook: InboundWebhook, delivery: Delivery, once: KeyedOperation) -> WebhookReceipt:
    correlation = {
        key: _plain(_at_path(delivery.payload, str(path), f"correlation key {key}"), key)
        for key, path in (hook.correlation or {}).items()
    }
    variables = _variables(hook, delivery)
    check_event_input(hook.message_name, variables)
    event = Event(
        "message", hook.message_name, variables, correlation, _business_key(hook, delivery.payload)
    )
    with transaction.atomic(durable=True):
        earlier = reserve_operation_key(once)
        if earlier is not None:
            return WebhookReceipt(dict(earlier.outcome or {}), replayed=True)
        result = correlate_event(event, None)
        instance_id = result.body["instance"]
        _audit(instance_id, hook, delivery)
        body = _outcome_body(hook, delivery, result.outcome, instance_id)
        remember_outcome(once, body)
    return WebhookReceipt(body, replayed=False)


def receive_webhook(
    *, name: str, body: bytes, content_type: str, headers: Mapping[str, str]
) -> WebhookReceipt:
    """Verify and act on one delivery to webhook `name` (or give the outcome of its earlier
    delivery again). Raises NotFound, NotAuthenticated (bad signature), Unavailable (its
    secret is not declared), InvalidInput, and what starting or correlating raises; nothing
    changes then."""
    hook = InboundWebhook.objects.filter(name=name, enabled=True).first()
    if hook is None:
        raise NotFound(f"There is no webhook {name!r}.")
    _verify(hook, body, headers)
    delivery = _read(body, content_type, headers)
    once = KeyedOperation(f"webhook:{hook.name}", delivery.delivery_id)
    if hook.action == InboundWebhook.Action.START:
        return _start(hook, delivery, once)
    return _message(hook, delivery, once)


# -- declaring webhooks: operators --------------------------------------------------------------

INBOUND_FIELDS = (
    "name",
    "action",
    "process_key",
    "message_name",
    "correlation",
    "business_key_path",
    "payload_variable",
    "secret_name",
    "signature_style",
    "signature_header",
    "tolerance_seconds",
    "enabled",
)
_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,100}$")


def inbound_webhook_errors(values: Mapping[str, Any]) -> dict[str, str]:
    """What is wrong with a webhook's settings, by field (empty: nothing)."""
    errors: dict[str, str] = {}
    action = values.get("action")
    if action == InboundWebhook.Action.START and not values.get("process_key"):
        errors["process_key"] = "Name the process that a delivery starts."
    if action == InboundWebhook.Action.MESSAGE and not values.get("message_name"):
        errors["message_name"] = "Name the message that a delivery sends."
    correlation = values.get("correlation") or {}
    if not isinstance(correlation, dict) or not all(
        isinstance(k, str) and k and isinstance(v, str) and v for k, v in correlation.items()
    ):
        errors["correlation"] = 'A JSON object of key -> dotted payload path, e.g. {"id": "a.b"}.'
    if not str(values.get("payload_variable") or "").isidentifier():
        errors["payload_variable"] = "A variable name (letters, digits, underscores)."
    if not REFERENCE.fullmatch(f"secret:{values.get('secret_name') or ''}"):
        errors["secret_name"] = "The name of a secret in the secret store."  # noqa: S105
    header = values.get("signature_header") or ""
    if header and not _HEADER_NAME.match(header):
        errors["signature_header"] = "An HTTP header name."
    return errors


def save_inbound_webhook(
    *, actor: Person, data: Mapping[str, Any], webhook_id: int | None = None
) -> InboundWebhook:
    """Declare (or, with `webhook_id`, change) an inbound webhook. Operators only."""
    if not is_operator(actor):
        raise PermissionDenied("Only operators manage webhooks.")
    hook = (
        InboundWebhook()
        if webhook_id is None
        else InboundWebhook.objects.filter(pk=webhook_id).first()
    )
    if hook is None:
        raise NotFound(f"There is no webhook {webhook_id}.")
    values = {name: getattr(hook, name) for name in INBOUND_FIELDS} | {
        k: v for k, v in data.items() if k in INBOUND_FIELDS
    }
    errors = inbound_webhook_errors(values)
    if errors:
        raise InvalidInput("The webhook is not valid.", errors=errors)
    for name, value in values.items():
        setattr(hook, name, value)
    try:
        with transaction.atomic():
            hook.save()
    except IntegrityError:
        raise Conflict(f"Another webhook is named {hook.name!r}.") from None
    logger.info("Inbound webhook %s saved by %s", hook.name, as_user(actor))
    return hook


def delete_inbound_webhook(*, actor: Person, webhook_id: int) -> None:
    if not is_operator(actor):
        raise PermissionDenied("Only operators manage webhooks.")
    deleted, _ = InboundWebhook.objects.filter(pk=webhook_id).delete()
    if not deleted:
        raise NotFound(f"There is no webhook {webhook_id}.")
    logger.info("Inbound webhook %s deleted by %s", webhook_id, as_user(actor))
