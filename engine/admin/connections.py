"""Named connections in the admin: operators create and change them (through the service,
audited), see each one's breaker, rate, slots and waiting jobs, and open, close or reset its
circuit breaker."""

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from engine.exceptions import EngineError
from engine.models import Connection
from engine.permissions import can_operate_connections
from engine.selectors.connections import connection_health, waiting_jobs
from engine.services import connections as service


class ConnectionForm(forms.ModelForm):
    base_url = forms.URLField(max_length=2000, assume_scheme="https")
    token_url = forms.URLField(max_length=2000, assume_scheme="https", required=False)

    class Meta:
        model = Connection
        fields = list(service.EDITABLE_FIELDS)
        help_texts = {
            "secret_name": "The name of an entry of the secret store (never the value).",
            "username": "Basic auth: the user name. OAuth2: the client id.",
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        # The instance gets the cleaned values only after clean(): check a copy with them.
        proposed = Connection(**{k: v for k, v in cleaned.items() if k in self.fields})
        for field, message in service.rule_errors(proposed).items():
            if field not in self.errors:
                self.add_error(field if field in self.fields else None, message)
        return cleaned


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    form = ConnectionForm
    list_display = ("name", "base_url", "auth", "rate", "max_concurrent", "breaker", "waiting")
    search_fields = ("name", "base_url")
    readonly_fields = ("health", "recent_events")
    actions = ["open_breakers", "close_breakers", "reset_breakers"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return can_operate_connections(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can_operate_connections(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return can_operate_connections(request.user)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can_operate_connections(request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can_operate_connections(request.user)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Connection]:
        rows = super().get_queryset(request)
        self._waiting = waiting_jobs(list(rows.values_list("name", flat=True)))
        return rows

    @admin.display(description="rate limit")
    def rate(self, row: Connection) -> str:
        return f"{row.rate_limit} {row.get_rate_period_display()}" if row.rate_limit else "-"

    @admin.display(description="breaker")
    def breaker(self, row: Connection) -> str:
        health = connection_health(row)
        return str(health.get("breaker", {}).get("state", health.get("unavailable", "?")))

    @admin.display(description="waiting jobs")
    def waiting(self, row: Connection) -> int:
        return sum(getattr(self, "_waiting", {}).get(row.name, {}).values())

    @admin.display(description="health")
    def health(self, row: Connection) -> str:
        if row.pk is None:
            return "-"
        shown = {k: v for k, v in connection_health(row).items() if k != "events"}
        return format_html("<pre>{}</pre>", json.dumps(shown, indent=2, default=str))

    @admin.display(description="recent events")
    def recent_events(self, row: Connection) -> str:
        if row.pk is None:
            return "-"
        events = connection_health(row)["events"]
        return format_html_join(
            "",
            "<div>{} {} by {}</div>",
            ((e["at"], e["type"], e["actor"] or "Baton") for e in events),
        )

    def save_model(self, request: HttpRequest, obj: Connection, form: Any, change: bool) -> None:
        values = {name: form.cleaned_data[name] for name in service.EDITABLE_FIELDS}
        if change:
            original = Connection.objects.get(pk=obj.pk)
            saved = service.update_connection(actor=request.user, name=original.name, values=values)
        else:
            saved = service.create_connection(actor=request.user, values=values)
        obj.pk = saved.pk

    def delete_model(self, request: HttpRequest, obj: Connection) -> None:
        service.delete_connection(actor=request.user, name=obj.name)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Connection]) -> None:
        for row in queryset:
            service.delete_connection(actor=request.user, name=row.name)

    def _operate(self, request: HttpRequest, rows: QuerySet[Connection], action: str) -> None:
        for row in rows:
            try:
                service.operate_breaker(actor=request.user, name=row.name, action=action)
            except EngineError as exc:
                self.message_user(request, f"{row.name}: {exc.detail}", messages.ERROR)
                continue
            self.message_user(request, f"{row.name}: breaker {action} done.", messages.SUCCESS)

    @admin.action(description="Hold the circuit breaker open")
    def open_breakers(self, request: HttpRequest, rows: QuerySet[Connection]) -> None:
        self._operate(request, rows, "open")

    @admin.action(description="Close the circuit breaker")
    def close_breakers(self, request: HttpRequest, rows: QuerySet[Connection]) -> None:
        self._operate(request, rows, "close")

    @admin.action(description="Reset the limits (breaker, rate, pause after 429)")
    def reset_breakers(self, request: HttpRequest, rows: QuerySet[Connection]) -> None:
        self._operate(request, rows, "reset")
