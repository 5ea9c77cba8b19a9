"""The operators' admin for process instances: the list with status filters and bulk
actions, the instance page (diagram with markers, variables, tasks, jobs, audit trail and the
repair forms), the incidents page and the deletion of finished instances."""

import json
import re
import uuid
from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Case, IntegerField, QuerySet, TextField, Value, When
from django.db.models.functions import Cast
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from engine.exceptions import EngineError
from engine.models import ProcessInstance
from engine.permissions import is_operator
from engine.selectors import (
    incident_groups,
    instance_diagram,
    repair_choices,
    status_counts,
    waiting_for_events,
)
from engine.services import (
    delete_finished_instances,
    plan_migration,
    resume_instance,
    retry_instance,
    suspend_instance,
    terminate_instance,
)

from . import repair
from .forms import (
    DeleteFinishedForm,
    InstanceActionForm,
    ReasonForm,
    ResetForm,
    SkipForm,
    VariablesForm,
)

Status = ProcessInstance.Status
ID_PREFIX = re.compile(r"[0-9a-f][0-9a-f-]{3,35}")
# The status filter lists incidents first: they are what an operator is here for.
STATUS_ORDER = [
    Status.INCIDENT,
    Status.SUSPENDED,
    Status.RUNNING,
    Status.WAITING,
    Status.COMPLETED,
    Status.TERMINATED,
]


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        counts = status_counts()
        return [(s.value, f"{s.label} ({counts[s.value]})") for s in STATUS_ORDER]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(status=self.value()) if self.value() else queryset


def _each(
    request: HttpRequest,
    queryset: QuerySet[ProcessInstance],
    verb: str,
    service: Callable[[uuid.UUID], object],
) -> None:
    """Run a service on every selected instance, each in its own transaction, and report."""
    done, refused = 0, []
    for instance_id in queryset.order_by().values_list("pk", flat=True):
        try:
            service(instance_id)
            done += 1
        except EngineError as exc:
            refused.append(f"{instance_id}: {exc.detail}")
    if done:
        messages.success(request, f"{verb} {done} instance(s).")
    for line in refused[:20]:
        messages.warning(request, line)


@admin.register(ProcessInstance)
class ProcessInstanceAdmin(admin.ModelAdmin):
    list_display = [
        "short_id",
        "definition_key",
        "definition_version",
        "business_key",
        "status",
        "incident_summary",
        "created_at",
        "updated_at",
    ]
    list_display_links = ["short_id"]
    list_filter = [
        StatusFilter,
        "definition__key",
        "definition__version",
        ("created_at", admin.DateFieldListFilter),
    ]
    search_fields = ["business_key"]
    search_help_text = "An instance id (or its first characters) or a business key."
    list_select_related = ["definition"]
    list_per_page = 50
    date_hierarchy = "created_at"
    action_form = InstanceActionForm
    actions = [
        "retry_selected",
        "suspend_selected",
        "resume_selected",
        "terminate_selected",
        "delete_finished_selected",
    ]
    change_form_template = "admin/engine/processinstance/instance.html"
    change_list_template = "admin/engine/processinstance/instances.html"

    # -- who may see what: operators only; nothing is edited through model forms --------------

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_operator(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_operator(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[ProcessInstance]:
        return (
            super()
            .get_queryset(request)
            .defer("state", "definition__spec", "definition__bpmn_xml", "definition__elements")
            .annotate(
                incident_first=Case(
                    When(status=Status.INCIDENT, then=Value(0)),
                    default=Value(1),
                    output_field=IntegerField(),
                )
            )
            .order_by("incident_first", "-created_at")
        )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[ProcessInstance], search_term: str
    ) -> tuple[QuerySet[ProcessInstance], bool]:
        """Business keys by substring; ids by their beginning, as the list shows them."""
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip().lower()
        if ID_PREFIX.fullmatch(term):
            by_id = queryset.annotate(id_text=Cast("id", TextField())).filter(
                id_text__startswith=term
            )
            found = found | by_id
        return found, may_have_duplicates

    # -- columns ---------------------------------------------------------------------------

    @admin.display(description="instance", ordering="id")
    def short_id(self, obj: ProcessInstance) -> str:
        return str(obj.pk)[:8]

    @admin.display(description="process", ordering="definition__key")
    def definition_key(self, obj: ProcessInstance) -> str:
        return obj.definition.key

    @admin.display(description="version", ordering="definition__version")
    def definition_version(self, obj: ProcessInstance) -> int:
        return obj.definition.version

    @admin.display(description="incident")
    def incident_summary(self, obj: ProcessInstance) -> str:
        if not obj.incident:
            return ""
        error = str(obj.incident.get("error") or "").splitlines()
        return f"{obj.incident.get('element_id', '')}: {error[0] if error else ''}"[:120]

    # -- bulk actions ----------------------------------------------------------------------

    @admin.action(description="Retry the incidents of the selected instances")
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[ProcessInstance]) -> None:
        _each(
            request,
            queryset,
            "Retried",
            lambda i: retry_instance(instance_id=str(i), actor=request.user),
        )

    @admin.action(description="Suspend the selected instances")
    def suspend_selected(self, request: HttpRequest, queryset: QuerySet[ProcessInstance]) -> None:
        _each(
            request,
            queryset,
            "Suspended",
            lambda i: suspend_instance(
                instance_id=i, actor=request.user, reason=repair.reason_of(request)
            ),
        )

    @admin.action(description="Resume the selected instances")
    def resume_selected(self, request: HttpRequest, queryset: QuerySet[ProcessInstance]) -> None:
        _each(
            request,
            queryset,
            "Resumed",
            lambda i: resume_instance(instance_id=i, actor=request.user),
        )

    @admin.action(description="Terminate the selected instances")
    def terminate_selected(self, request: HttpRequest, queryset: QuerySet[ProcessInstance]) -> None:
        _each(
            request,
            queryset,
            "Terminated",
            lambda i: terminate_instance(
                instance_id=i, actor=request.user, reason=repair.reason_of(request)
            ),
        )

    @admin.action(description="Delete the selected finished instances")
    def delete_finished_selected(
        self, request: HttpRequest, queryset: QuerySet[ProcessInstance]
    ) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        deleted = delete_finished_instances(
            actor=request.user, finished_before=timezone.now(), instance_ids=ids
        )
        messages.success(request, f"Deleted {deleted} finished instance(s).")
        if deleted < len(ids):
            messages.warning(
                request,
                f"{len(ids) - deleted} selected instance(s) are not finished and were kept.",
            )

    # -- pages -----------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path("incidents/", wrap(self.incidents_view), name="engine_processinstance_incidents"),
            path(
                "incidents/retry/",
                wrap(self.retry_group_view),
                name="engine_processinstance_retry_group",
            ),
            path(
                "delete-finished/",
                wrap(self.delete_finished_view),
                name="engine_processinstance_delete_finished",
            ),
            path(
                "<uuid:object_id>/repair/<str:action>/",
                wrap(self.repair_view),
                name="engine_processinstance_repair",
            ),
            *super().get_urls(),
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        self._require_operator(request)
        counts = status_counts()
        context = {
            "status_counts": [(s, counts[s.value]) for s in STATUS_ORDER],
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context=context)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        self._require_operator(request)
        if not _is_uuid(object_id):
            raise Http404("There is no such instance.")
        instance = get_object_or_404(
            ProcessInstance.objects.select_related("definition"), pk=object_id
        )
        context = {**self._instance_context(request, instance), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context=context)

    def _instance_context(self, request: HttpRequest, instance: ProcessInstance) -> dict[str, Any]:
        choices = repair_choices(instance)
        context: dict[str, Any] = {
            "instance": instance,
            "diagram": instance_diagram(instance),
            "waiting_for": waiting_for_events(instance),
            "human_tasks": instance.human_tasks.order_by("-created_at")[:50],
            "jobs": instance.jobs.order_by("-created_at")[:50],
            "events": instance.events.select_related("actor").order_by("-created_at", "-id")[:200],
            "variables_form": VariablesForm(initial={"variables": _pretty(instance.variables)}),
            "reset_form": ResetForm(
                targets=[
                    (t.element_id, f"{t.name} ({t.element_id})") for t in choices["reset_targets"]
                ]
            ),
            "skip_form": SkipForm(
                tasks=[
                    (t.task_id, f"{t.name} ({t.element_id}, {t.state})")
                    for t in choices["skippable"]
                ]
            ),
            "reason_form": ReasonForm(),
            "choices": choices,
        }
        version = request.GET.get("migrate_to")
        if version and version.isdecimal() and len(version) < 10 and not instance.is_finished:
            try:
                context["migration_plan"] = plan_migration(
                    instance_id=instance.pk, actor=request.user, version=int(version)
                )
            except EngineError as exc:
                messages.error(request, exc.detail)
        return context

    def repair_view(self, request: HttpRequest, object_id: str, action: str) -> HttpResponse:
        return _repair(request, object_id, action)

    def incidents_view(self, request: HttpRequest) -> HttpResponse:
        self._require_operator(request)
        context = {
            **self.admin_site.each_context(request),
            "title": "Incidents",
            "groups": incident_groups(),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/engine/processinstance/incidents.html", context)

    def retry_group_view(self, request: HttpRequest) -> HttpResponse:
        return _retry_group(request)

    def delete_finished_view(self, request: HttpRequest) -> HttpResponse:
        self._require_operator(request)
        form = DeleteFinishedForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            deleted = delete_finished_instances(actor=request.user, finished_before=form.cutoff())
            messages.success(request, f"Deleted {deleted} finished instance(s).")
            return HttpResponseRedirect(reverse("admin:engine_processinstance_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Delete finished instances",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(
            request, "admin/engine/processinstance/delete_finished.html", context
        )

    def _require_operator(self, request: HttpRequest) -> None:
        if not is_operator(request.user):
            raise PermissionDenied("Only operators may see instances here.")


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


@require_POST
def _repair(request: HttpRequest, object_id: str, action: str) -> HttpResponse:
    handler = repair.ACTIONS.get(action)
    instance = get_object_or_404(ProcessInstance, pk=object_id)
    if handler is None:
        messages.error(request, f"There is no repair called {action!r}.")
    else:
        repair.run_repair(request, instance, handler)
    return HttpResponseRedirect(reverse("admin:engine_processinstance_change", args=[instance.pk]))


@require_POST
def _retry_group(request: HttpRequest) -> HttpResponse:
    ids = request.POST.getlist("instance")
    queryset = ProcessInstance.objects.filter(pk__in=[i for i in ids if _is_uuid(i)])
    _each(
        request,
        queryset,
        "Retried",
        lambda i: retry_instance(instance_id=str(i), actor=request.user),
    )
    return HttpResponseRedirect(reverse("admin:engine_processinstance_incidents"))


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
