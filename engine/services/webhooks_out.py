"""Outbound webhooks: instance events posted to subscribed URLs, through an outbox.

`queue_webhook_deliveries` is called by the audit trail every state change writes
(engine.services.audit `write_events`) for the events a subscription may ask for
(`WebhookSubscription.EventType`), with the subscribers the statement that wrote the events
found (`subscribed_sql`): one
`WebhookDelivery` per matching subscription is written in the operation's own transaction
and handed to a worker after commit. The worker claims it with a lease (as the event outbox
does: engine/services/delivery_outbox.py), posts it (the outbound policy applies:
`engine.connectors.outbound.client`), and records the outcome in a short transaction of its
own: 2xx is delivered; anything else (an answer, a timeout, a
refused connection) is tried again with exponential backoff and jitter until
`BATON_WEBHOOK_ATTEMPTS`, then failed. A URL the policy refuses fails at once. The beat
re-sends deliveries that are due again and whose Celery message was lost.

Each POST carries the JSON event, `Webhook-Id` (the delivery's id: the same on every retry,
for the receiver's deduplication), `Webhook-Timestamp`, and two HMAC-SHA256 signatures keyed
with the subscription's secret from the secret store: `X-Hub-Signature-256: sha256=<hex>`
over the body and `Webhook-Signature: t=<unix>,v1=<hex>` over `<t>.<body>`.
"""

import datetime
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import httpx
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction

from engine import clock
from engine.actors import Actor, Person, as_user
from engine.connectors import BusinessError
from engine.connectors.outbound import client
from engine.connectors.secrets import REFERENCE, MissingSecret, lookup
from engine.connectors.webhook_signatures import (
    GITHUB_HEADER,
    TIMESTAMPED_HEADER,
    github_signature,
    timestamped_signature,
)
from engine.exceptions import InvalidInput, NotFound
from engine.models import InstanceEvent, ProcessInstance, WebhookDelivery, WebhookSubscription
from engine.permissions import is_operator
from engine.queueing import send_webhook_deliveries
from engine.rows import column, table

from .delivery_outbox import claim_delivery, due_for_sweep, exponential_backoff, retry_later

logger = logging.getLogger(__name__)
Status = WebhookDelivery.Status
EVENT_TYPES = frozenset(WebhookSubscription.EventType.values)
LEASE_MARGIN = datetime.timedelta(seconds=30)
SWEEP_GRACE = datetime.timedelta(seconds=2)
MAX_ERROR_CHARS = 1000


# -- writing: in the operation's transaction ---------------------------------------------------


def _process_key(instance: ProcessInstance) -> str:
    cached = ProcessInstance.definition.is_cached(instance)
    if cached:
        return str(instance.definition.key)
    return str(
        ProcessInstance.objects.filter(pk=instance.pk).values_list("definition__key", flat=True)[0]
    )


def _event_body(instance: ProcessInstance, event: InstanceEvent, delivery_id: str) -> dict:
    return {
        "id": delivery_id,
        "type": f"baton.instance.{event.type}",
        "time": event.created_at.isoformat(),
        "instance": {
            "id": str(instance.pk),
            "process": _process_key(instance),
            "business_key": instance.business_key,
            "status": instance.status,
        },
        "element_id": event.element_id,
        "data": event.payload,
    }


def subscribed_sql() -> str:
    """An SQL expression: the ids of the enabled subscriptions to any of the event types given
    as its one parameter (an array), or NULL. The audit trail asks it in the statement that
    writes the events (engine.services.audit), so an operation whose events nobody subscribed
    to pays no round trip for webhooks."""
    subscription = WebhookSubscription
    return (
        f"SELECT array_agg({column(subscription, 'pk', 's')}) "  # noqa: S608
        f"FROM {table(subscription)} AS s WHERE {column(subscription, 'enabled', 's')} "
        f"AND {column(subscription, 'event_types', 's')} && (%s)::varchar[]"
    )


def subscribable_types(events: Sequence[InstanceEvent]) -> list[str]:
    """The parameter of `subscribed_sql`: the types of `events` a subscription may ask for."""
    return sorted({event.type for event in events if event.type in EVENT_TYPES})


def queue_webhook_deliveries(
    events: Sequence[InstanceEvent], subscription_ids: Sequence[int] | None
) -> int:
    """Write a delivery of each of the written `events` for each subscription of
    `subscription_ids` (what `subscribed_sql` found for them) that asks for it, in the
    caller's transaction, and hand them to a worker after commit. How many were written."""
    if not subscription_ids:
        return 0
    wanted = [event for event in events if event.type in EVENT_TYPES]
    subscriptions = list(WebhookSubscription.objects.filter(pk__in=subscription_ids, enabled=True))
    rows = []
    for event in wanted:
        key = _process_key(event.instance)
        for subscription in subscriptions:
            if event.type not in subscription.event_types:
                continue
            if subscription.process_key and subscription.process_key != key:
                continue
            row = WebhookDelivery(
                subscription=subscription,
                event_type=event.type,
                instance_id=event.instance.pk,
                next_attempt_at=clock.now(),
            )
            row.payload = _event_body(event.instance, event, str(row.id))
            rows.append(row)
    WebhookDelivery.objects.bulk_create(rows)
    ids = [str(row.id) for row in rows]
    if ids:
        transaction.on_commit(lambda: _hand_over(ids))
    return len(ids)


def _hand_over(delivery_ids: list[str], delay_seconds: float = 0) -> None:
    try:
        send_webhook_deliveries(delivery_ids, delay_seconds)
    except Exception as exc:  # noqa: BLE001 -- the deliveries wait in their outbox for the beat
        logger.warning("Webhook deliveries wait for the beat: the broker failed (%s)", exc)


# -- sending: on a worker ----------------------------------------------------------------------


def _lease() -> datetime.timedelta:
    return datetime.timedelta(seconds=settings.BATON_WEBHOOK_TIMEOUT_SECONDS) + LEASE_MARGIN


def _backoff_seconds(attempts: int) -> float:
    return exponential_backoff(
        attempts,
        base=settings.BATON_RETRY_BASE_SECONDS,
        ceiling=settings.BATON_RETRY_MAX_SECONDS,
        jitter=True,
    )


def _post(delivery: WebhookDelivery) -> tuple[int | None, str, bool]:
    """Send once: (response code, error, final) -- final: never try again."""
    subscription = delivery.subscription
    if not subscription.enabled:
        return None, "The subscription is disabled.", True
    try:
        secret = lookup(subscription.secret_name)
    except MissingSecret as exc:
        return None, str(exc), False  # an operator may declare it: try again
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    now = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Baton-Webhooks/1",
        "Webhook-Id": str(delivery.id),
        "Webhook-Timestamp": str(now),
        "X-Baton-Event": delivery.event_type,
        GITHUB_HEADER: github_signature(secret, body),
        TIMESTAMPED_HEADER: timestamped_signature(secret, body, now),
    }
    try:
        with client(timeout=settings.BATON_WEBHOOK_TIMEOUT_SECONDS) as http:
            response = http.post(subscription.url, content=body, headers=headers)
    except BusinessError as exc:  # the outbound policy refused the URL: no retry helps
        return None, str(exc), True
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}", False
    if 200 <= response.status_code < 300:
        return response.status_code, "", True
    return response.status_code, f"The receiver answered {response.status_code}.", False


def _record(delivery_id: str, code: int | None, error: str, final: bool) -> float | None:
    """Keep the attempt's outcome; the delay until the next attempt, None when none."""
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(no_key=True)
            .filter(pk=delivery_id, status=Status.PENDING)
            .first()
        )
        if delivery is None:
            return None
        delivery.attempts += 1
        delivery.last_response_code, delivery.last_error = code, error[:MAX_ERROR_CHARS]
        delivery.claimed_until = None
        delay = None
        if not error:
            delivery.status, delivery.delivered_at = Status.DELIVERED, clock.now()
        elif final or delivery.attempts >= settings.BATON_WEBHOOK_ATTEMPTS:
            delivery.status = Status.FAILED
        else:
            delay = _backoff_seconds(delivery.attempts)
            retry_later(delivery, delivery.last_error, delay)
        delivery.save()
    return delay


def deliver_webhook(delivery_id: str) -> None:
    """Send one pending delivery (a worker's job; a duplicate call does nothing)."""
    if not claim_delivery(WebhookDelivery, delivery_id, _lease()):
        return
    delivery = WebhookDelivery.objects.select_related("subscription").filter(pk=delivery_id).first()
    if delivery is None:
        return
    try:
        code, error, final = _post(delivery)
    except Exception as exc:
        logger.exception("Webhook delivery %s failed", delivery_id)
        code, error, final = None, f"{type(exc).__name__}: {exc}", False
    delay = _record(delivery_id, code, error, final)
    if delay is not None:
        _hand_over([delivery_id], delay)


def deliver_webhooks(delivery_ids: list[str]) -> None:
    for delivery_id in delivery_ids:
        deliver_webhook(delivery_id)


def deliver_due_webhooks(limit: int = 100) -> int:
    """Hand over pending deliveries that are due and whose message seems lost (the beat)."""
    ids = [
        str(i)
        for i in due_for_sweep(WebhookDelivery, SWEEP_GRACE)
        .order_by("next_attempt_at")
        .values_list("id", flat=True)[:limit]
    ]
    if ids:
        _hand_over(ids)
    return len(ids)


# -- subscriptions: operators ------------------------------------------------------------------


def subscription_errors(data: dict[str, Any]) -> dict[str, str]:
    """What is wrong with a subscription's settings, by field (empty: nothing)."""
    errors = {}
    url = str(data.get("url") or "")
    if not url.lower().startswith(("http://", "https://")):
        errors["url"] = "Give an http or https URL."
    types = data.get("event_types") or []
    if not types or set(types) - EVENT_TYPES:
        errors["event_types"] = f"Pick from {', '.join(sorted(EVENT_TYPES))}."
    if not REFERENCE.fullmatch(f"secret:{data.get('secret_name') or ''}"):
        errors["secret_name"] = "Name a secret of the secret store."  # noqa: S105
    return errors


SUBSCRIPTION_FIELDS = ("name", "url", "secret_name", "event_types", "process_key", "enabled")


def save_subscription(
    *, actor: Person, data: dict[str, Any], subscription_id: int | None = None
) -> WebhookSubscription:
    """Create (or, with `subscription_id`, change) a subscription. Operators only."""
    if not is_operator(actor):
        raise PermissionDenied("Only operators manage webhook subscriptions.")
    if subscription_id is None:
        subscription = WebhookSubscription(created_by=as_user(actor))
    else:
        found = WebhookSubscription.objects.filter(pk=subscription_id).first()
        if found is None:
            raise NotFound(f"There is no subscription {subscription_id}.")
        subscription = found
    merged = {name: getattr(subscription, name) for name in SUBSCRIPTION_FIELDS} | {
        k: v for k, v in data.items() if k in SUBSCRIPTION_FIELDS
    }
    errors = subscription_errors(merged)
    if errors:
        raise InvalidInput("The subscription is not valid.", errors=errors)
    for name, value in merged.items():
        setattr(subscription, name, value)
    subscription.event_types = sorted(set(subscription.event_types))
    subscription.save()
    logger.info("Webhook subscription %s saved by %s", subscription.pk, as_user(actor))
    return subscription


def delete_subscription(*, actor: Actor, subscription_id: int) -> None:
    if not is_operator(actor):
        raise PermissionDenied("Only operators manage webhook subscriptions.")
    deleted, _ = WebhookSubscription.objects.filter(pk=subscription_id).delete()
    if not deleted:
        raise NotFound(f"There is no subscription {subscription_id}.")


def deliver_again(*, actor: Actor, delivery_ids: list[str]) -> int:
    """Send failed deliveries again, from a fresh retry budget (an operator's repair, after
    the receiver was fixed). How many were queued."""
    if not is_operator(actor):
        raise PermissionDenied("Only operators send webhook deliveries again.")
    with transaction.atomic():
        ids = [
            str(i)
            for i in WebhookDelivery.objects.select_for_update(no_key=True)
            .filter(pk__in=delivery_ids, status=Status.FAILED)
            .values_list("id", flat=True)
        ]
        WebhookDelivery.objects.filter(pk__in=ids).update(
            status=Status.PENDING, attempts=0, next_attempt_at=clock.now(), claimed_until=None
        )
        if ids:
            transaction.on_commit(lambda: _hand_over(ids))
    logger.info("%d webhook deliveries sent again by %s", len(ids), as_user(actor))
    return len(ids)
