"""Webhooks in the admin: operators declare inbound webhooks and outbound subscriptions,
and read the outbound delivery log (status, attempts, last response code)."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from engine.models import InboundWebhook, WebhookDelivery, WebhookSubscription
from engine.permissions import is_operator
from engine.services.webhooks_in import (
    INBOUND_FIELDS,
    inbound_webhook_errors,
    save_inbound_webhook,
)
from engine.services.webhooks_out import (
    SUBSCRIPTION_FIELDS,
    deliver_again,
    save_subscription,
    subscription_errors,
)

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


class InboundWebhookForm(forms.ModelForm):
    class Meta:
        model = InboundWebhook
        fields = list(INBOUND_FIELDS)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for field, message in inbound_webhook_errors(cleaned).items():
            if field in self.fields and field not in self.errors:
                self.add_error(field, message)
        return cleaned


@admin.register(InboundWebhook)
class InboundWebhookAdmin(OperatorAdmin):
    form = InboundWebhookForm
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

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        data = {name: getattr(obj, name) for name in form.cleaned_data}
        saved = save_inbound_webhook(
            actor=request.user, data=data, webhook_id=obj.pk if change else None
        )
        obj.pk = saved.pk


class WebhookSubscriptionForm(forms.ModelForm):
    url = forms.URLField(max_length=2000, assume_scheme="https")
    name = forms.CharField(max_length=255, strip=False)  # taken as given, as the API takes it

    class Meta:
        model = WebhookSubscription
        fields = list(SUBSCRIPTION_FIELDS)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for field, message in subscription_errors(cleaned).items():
            if field in self.fields and field not in self.errors:
                self.add_error(field, message)
        return cleaned


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(OperatorAdmin):
    form = WebhookSubscriptionForm
    list_display = ["name", "url", "event_types", "process_key", "enabled", "created_by"]
    list_filter = ["enabled"]
    search_fields = ["name", "url", "process_key"]

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
    readonly_fields = ["payload"]
    actions = ["send_again"]

    @admin.action(description="Send the selected failed deliveries again")
    def send_again(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        queued = deliver_again(
            actor=request.user,
            delivery_ids=[str(pk) for pk in queryset.values_list("pk", flat=True)],
        )
        self.message_user(request, f"{queued} deliveries queued again.", messages.SUCCESS)

    def get_actions(self, request: HttpRequest) -> Any:
        # Read-only lists offer no actions; this one offers its repair to operators.
        actions = super().get_actions(request)
        if not is_operator(request.user):
            actions.pop("send_again", None)
        return actions
