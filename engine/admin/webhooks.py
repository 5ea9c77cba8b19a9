"""Webhooks in the admin: operators declare inbound webhooks and outbound subscriptions,
and read the outbound delivery log (status, attempts, last response code)."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from engine.models import InboundWebhook, WebhookDelivery, WebhookSubscription
from engine.permissions import is_operator
from engine.services.webhooks_out import save_subscription

from .events import ReadOnlyAdmin


class OperatorAdmin(admin.ModelAdmin):
    """Operators manage these; nobody else sees them."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_operator(request.user)

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return is_operator(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return is_operator(request.user)

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return is_operator(request.user)

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return is_operator(request.user)


@admin.register(InboundWebhook)
class InboundWebhookAdmin(OperatorAdmin):
    list_display = [
        "name",
        "action",
        "process_key",
        "message_name",
        "signature_style",
        "secret_name",
        "enabled",
    ]
    list_filter = ["action", "enabled"]
    search_fields = ["name", "process_key", "message_name"]


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(OperatorAdmin):
    list_display = ["name", "url", "event_types", "process_key", "enabled", "created_by"]
    list_filter = ["enabled"]
    search_fields = ["name", "url", "process_key"]
    exclude = ["created_by"]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        # Through the service, which checks it and keeps who made it.
        data = {name: getattr(obj, name) for name in form.cleaned_data}
        saved = save_subscription(
            actor=request.user, data=data, subscription_id=obj.pk if change else None
        )
        obj.pk, obj.created_by = saved.pk, saved.created_by


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "subscription",
        "event_type",
        "instance",
        "status",
        "attempts",
        "last_response_code",
        "next_attempt_at",
        "delivered_at",
    ]
    list_filter = ["status", "event_type"]
    search_fields = ["subscription__name", "instance__id"]
    list_select_related = ["subscription", "instance__definition"]
