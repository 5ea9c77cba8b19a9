"""Service jobs and queues in the admin: operators find jobs by status, connector and error,
requeue or cancel them (through engine/services/job_operations.py, audited), and see the
depth of each Celery queue."""

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from engine.exceptions import EngineError
from engine.models import ServiceJob
from engine.selectors.jobs import queue_depths
from engine.services import job_operations

from .events import ReadOnlyAdmin


def _each(
    request: HttpRequest, rows: QuerySet[Any], operation: Callable[..., Any], done: str
) -> None:
    """Run `operation` on each row; tell the operator what happened to each."""
    succeeded = 0
    for row in rows:
        try:
            operation(row)
            succeeded += 1
        except (EngineError, PermissionDenied) as exc:
            messages.error(request, f"{row}: {exc}")
    if succeeded:
        messages.success(request, f"{succeeded} {done}.")


@admin.register(ServiceJob)
class ServiceJobAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "connector",
        "element_id",
        "instance",
        "status",
        "attempt",
        "next_attempt_at",
        "last_error",
    ]
    list_filter = ["status", "kind", "connector"]
    search_fields = ["instance__id", "connector", "element_id", "last_error"]
    list_select_related = ["instance__definition"]
    exclude = ["parameters", "result", "history"]  # may hold what a secret reference resolved
    actions = ["requeue", "cancel"]

    @admin.action(description="Requeue the selected jobs (pending or dead) now")
    def requeue(self, request: HttpRequest, queryset: QuerySet[ServiceJob]) -> None:
        _each(
            request,
            queryset,
            lambda job: job_operations.requeue_job(job_id=job.pk, actor=request.user),
            "job(s) requeued",
        )

    @admin.action(description="Cancel the selected jobs (their instances go into incident)")
    def cancel(self, request: HttpRequest, queryset: QuerySet[ServiceJob]) -> None:
        _each(
            request,
            queryset,
            lambda job: job_operations.cancel_job(job_id=job.pk, actor=request.user),
            "job(s) cancelled",
        )

    def get_urls(self) -> list[URLPattern]:
        queues = path(
            "queues/",
            self.admin_site.admin_view(self.queues_view),
            name="engine_servicejob_queues",
        )
        return [queues, *super().get_urls()]

    def queues_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {**self.admin_site.each_context(request), "queues": queue_depths()}
        context["title"] = "Queues"
        return TemplateResponse(request, "admin/engine/servicejob/queues.html", context)
