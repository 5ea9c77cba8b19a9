"""Read-only admin lists of timers, start triggers and message/signal deliveries, so that an
operator can see what is due, what starts processes, and which messages found no receiver."""

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest

from engine.exceptions import EngineError
from engine.models import EventDelivery, StartTrigger, Timer
from engine.permissions import is_operator
from engine.services import schedules


class ReadOnlyAdmin(admin.ModelAdmin):
    """Seen by operators only, like the instances; nothing is edited here."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_operator(request.user)

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return is_operator(request.user)

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(Timer)
class TimerAdmin(ReadOnlyAdmin):
    list_display = ["element_id", "instance", "due_at", "fired", "fired_at"]
    list_filter = ["fired"]
    search_fields = ["instance__id", "element_id"]
    list_select_related = ["instance__definition"]


@admin.register(StartTrigger)
class StartTriggerAdmin(ReadOnlyAdmin):
    list_display = [
        "definition",
        "element_id",
        "kind",
        "event_name",
        "timer_expression",
        "active",
        "paused",
        "next_due_at",
        "cycles_left",
        "last_started_at",
    ]
    list_filter = ["kind", "active", "paused"]
    search_fields = ["definition__key", "event_name"]
    actions = ["pause", "resume", "run_now"]

    def _each(self, request: HttpRequest, rows: QuerySet[Any], operation: Any, done: str) -> None:
        succeeded = 0
        for row in rows.filter(kind=StartTrigger.Kind.TIMER):
            try:
                operation(trigger_id=row.pk, actor=request.user)
                succeeded += 1
            except (EngineError, PermissionDenied) as exc:
                messages.error(request, f"{row}: {exc}")
        if succeeded:
            messages.success(request, f"{succeeded} schedule(s) {done}.")

    @admin.action(description="Pause the selected schedules")
    def pause(self, request: HttpRequest, queryset: QuerySet[StartTrigger]) -> None:
        self._each(request, queryset, schedules.pause_schedule, "paused")

    @admin.action(description="Resume the selected schedules")
    def resume(self, request: HttpRequest, queryset: QuerySet[StartTrigger]) -> None:
        self._each(request, queryset, schedules.resume_schedule, "resumed")

    @admin.action(description="Start an instance of each selected schedule now")
    def run_now(self, request: HttpRequest, queryset: QuerySet[StartTrigger]) -> None:
        self._each(request, queryset, schedules.run_schedule_now, "started")


@admin.register(EventDelivery)
class EventDeliveryAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "kind",
        "name",
        "status",
        "source_instance",
        "target_instance",
        "attempts",
        "last_error",
    ]
    list_filter = ["kind", "status"]
    search_fields = ["name", "source_instance__id", "target_instance__id"]
    list_select_related = ["source_instance__definition", "target_instance__definition"]
