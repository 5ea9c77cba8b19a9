"""A first, read-only admin view of instances, their jobs and their audit trail. The repair
actions come with the admin issue; until then incidents are visible here and retried via the
API or `engine.services.retry_instance`."""
from django.contrib import admin

from .models import HumanTask, InstanceEvent, ProcessInstance, ServiceJob

JOB_COLUMNS = (
    "element_id", "connector", "status", "attempt", "max_attempts", "error_code", "last_error",
    "next_attempt_at", "updated_at",
)
TASK_COLUMNS = ("name", "status", "assignee", "candidate_groups", "completed_by", "created_at")
EVENT_COLUMNS = ("created_at", "type", "element_id", "actor", "payload")


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


class ServiceJobInline(ReadOnlyInline):
    model = ServiceJob
    fields = JOB_COLUMNS
    readonly_fields = JOB_COLUMNS


class HumanTaskInline(ReadOnlyInline):
    model = HumanTask
    fields = TASK_COLUMNS
    readonly_fields = TASK_COLUMNS


class InstanceEventInline(ReadOnlyInline):
    model = InstanceEvent
    fields = EVENT_COLUMNS
    readonly_fields = EVENT_COLUMNS


@admin.register(ProcessInstance)
class ProcessInstanceAdmin(admin.ModelAdmin):
    list_display = ["id", "definition", "business_key", "status", "created_at", "updated_at"]
    list_filter = ["status", "definition__key"]
    search_fields = ["id", "business_key"]
    readonly_fields = ["id", "definition", "business_key", "status", "variables", "started_by",
                       "created_at", "updated_at", "completed_at"]
    exclude = ["state", "lock_version"]
    inlines = [ServiceJobInline, HumanTaskInline, InstanceEventInline]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

# Timers, start triggers and message/signal deliveries (read-only lists).
from . import event_admin  # noqa: E402,F401
