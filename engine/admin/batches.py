"""The operators' admin for batch operations: the list with progress, a batch's page with
its skipped and failed instances, and cancel."""

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from engine.exceptions import EngineError
from engine.models import Batch
from engine.permissions import is_operator
from engine.selectors import problem_items
from engine.services import cancel_batch
from engine.templatetags.baton_admin import when

# How many skipped and failed instances a batch's page lists.
PROBLEMS_SHOWN = 100


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    list_display = [
        "short_id",
        "operation",
        "status",
        "progress",
        "skipped",
        "failed",
        "actor",
        "created",
        "finished",
    ]
    list_filter = ["status", "operation"]
    list_select_related = ["actor"]
    actions = ["cancel_selected"]
    readonly_fields = (
        "operation",
        "status",
        "progress",
        "skipped",
        "failed",
        "arguments",
        "filter",
        "actor",
        "error",
        "created_at",
        "updated_at",
        "finished_at",
        "problems",
    )
    fields = readonly_fields

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_operator(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_operator(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # from the instance list ("Apply to all N matching…") or the API

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="batch", ordering="created_at")
    def short_id(self, obj: Batch) -> str:
        return str(obj.pk)[:8]

    @admin.display(description="progress")
    def progress(self, obj: Batch) -> SafeString:
        return format_html(
            '<progress max="{}" value="{}"></progress> {} of {}',
            max(obj.total, 1),
            obj.done,
            obj.done,
            obj.total,
        )

    @admin.display(description="started", ordering="created_at")
    def created(self, obj: Batch) -> SafeString | str:
        return when(obj.created_at)

    @admin.display(description="finished", ordering="finished_at")
    def finished(self, obj: Batch) -> SafeString | str:
        return when(obj.finished_at) if obj.finished_at else ""

    @admin.display(description="skipped and failed instances")
    def problems(self, obj: Batch) -> SafeString | str:
        items = problem_items(obj, PROBLEMS_SHOWN)
        if not items:
            return "none"
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td></tr>',
            (
                (
                    reverse("admin:engine_processinstance_change", args=[item.instance_id]),
                    str(item.instance_id)[:8],
                    item.outcome,
                    item.message,
                )
                for item in items
            ),
        )
        return format_html('<table data-testid="batch-problems">{}</table>', rows)

    @admin.action(description="Cancel the selected batches (they stop between chunks)")
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Batch]) -> None:
        for batch_id in queryset.values_list("pk", flat=True):
            try:
                cancel_batch(batch_id=batch_id, actor=request.user)
                messages.success(request, f"Cancelled batch {str(batch_id)[:8]}.")
            except EngineError as exc:
                messages.warning(request, f"{str(batch_id)[:8]}: {exc.detail}")
