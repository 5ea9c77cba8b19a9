"""Reading webhook subscriptions and their delivery log (operators only)."""

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet

from engine.actors import Person
from engine.exceptions import NotFound
from engine.models import InboundWebhook, WebhookDelivery, WebhookSubscription
from engine.permissions import is_operator


def _check(actor: Person) -> None:
    if not is_operator(actor):
        raise PermissionDenied("Only operators see webhook subscriptions.")


def subscriptions(actor: Person) -> QuerySet[WebhookSubscription]:
    _check(actor)
    return WebhookSubscription.objects.order_by("name", "id")


def subscription(actor: Person, subscription_id: int) -> WebhookSubscription:
    found = subscriptions(actor).filter(pk=subscription_id).first()
    if found is None:
        raise NotFound(f"There is no subscription {subscription_id}.")
    return found


def deliveries(actor: Person, subscription_id: int) -> QuerySet[WebhookDelivery]:
    """The delivery log of one subscription, newest first."""
    subscription(actor, subscription_id)
    return WebhookDelivery.objects.filter(subscription_id=subscription_id).order_by(
        "-created_at", "id"
    )


def inbound_webhooks(actor: Person) -> QuerySet[InboundWebhook]:
    _check(actor)
    return InboundWebhook.objects.order_by("name")


def inbound_webhook(actor: Person, webhook_id: int) -> InboundWebhook:
    found = inbound_webhooks(actor).filter(pk=webhook_id).first()
    if found is None:
        raise NotFound(f"There is no webhook {webhook_id}.")
    return found
