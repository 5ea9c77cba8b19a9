"""The operators' admin for process instances: the list with status filters and bulk
actions, the instance page (diagram with markers, variables, tasks, jobs, audit trail and the
repair forms), the incidents page and the deletion of finished instances."""

import json
import re
import uuid
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import Case, IntegerField, OrderBy, QuerySet, TextField, Value, When
from django.db.models.functions import Cast
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from engine.exceptions import EngineError, InvalidInput
from engine.models import ProcessInstance
from engine.permissions import is_operator
from engine.selectors import (
    WAIT_KINDS,
    element_names_of,
    incident_groups,
    instance_diagram,
    repair_choices,
    status_counts,
    wait_states,
    waiting_for,
    waiting_for_events,
)
from engine.services import (
    create_batch,
    delete_finished_instances,
    plan_migration,
    preview_batch,
    resume_instance,
    retry_instance,
    suspend_instance,
    terminate_instance,
)
from engine.templatetags.baton_admin import element, when
from processes.models import ProcessDefinition

from . import repair
from .forms import (
    BatchForm,
    DeleteFinishedForm,
    InstanceActionForm,
    ReasonForm,
    ResetForm,
    SkipForm,
    VariablesForm,
    batch_form_initial,
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


# The bulk terminate confirmation lists every selected instance.
MAX_TERMINATED_AT_ONCE = 500


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        counts = status_counts()
        return [(s.value, f"{s.label} ({counts[s.value]})") for s in STATUS_ORDER]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(status=self.value()) if self.value() else queryset


class WaitKindFilter(admin.SimpleListFilter):
    title = "waiting for"
    parameter_name = "waiting_for"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(WAIT_KINDS.items())

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        kind = self.value()
        return waiting_for(queryset, kind) if kind else queryset


INCIDENTS_FIRST = OrderBy(
    Case(When(status=Status.INCIDENT, then=Value(0)), default=Value(1), output_field=IntegerField())
)


def _each(
    request: HttpRequest,
    queryset: QuerySet[ProcessInstance],
    verb: str,
    service: Callable[[uuid.UUID], object],
) -> None:
    """Run a service on every selected instance, each in its own transaction, and report;
    instances refused for the same reason are reported together."""
    done, refused = 0, dict[str, list[str]]()
    for instance_id in queryset.order_by().values_list("pk", flat=True):
        try:
            service(instance_id)
            done += 1
        except EngineError as exc:
            refused.setdefault(exc.detail, []).append(str(instance_id)[:8])
    if done:
        messages.success(request, f"{verb} {done} instance(s).")
    for detail, ids in list(refused.items())[:20]:
        more = f" and {len(ids) - 10} more" if len(ids) > 10 else ""
        messages.warning(request, f"{detail} ({', '.join(ids[:10])}{more})")


@admin.register(ProcessInstance)
class ProcessInstanceAdmin(admin.ModelAdmin):
    list_display = [
        "short_id",
        "definition_key",
        "business_key",
        "status_badge",
        "incident_summary",
        "created",
        "updated",
    ]
    list_display_links = ["short_id"]
    list_filter = [
        StatusFilter,
        WaitKindFilter,
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
            .defer("state", *ProcessDefinition.bulk_fields("definition__"))
        )

    def get_ordering(self, request: HttpRequest) -> list[Any]:
        """Incidents first, then the newest (the README promises it); a column the operator
        sorts by replaces this order."""
        return [INCIDENTS_FIRST, "-created_at"]

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
    def definition_key(self, obj: ProcessInstance) -> SafeString:
        return format_html(
            '{} <small class="baton-id">v{}</small>', obj.definition.key, obj.definition.version
        )

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: ProcessInstance) -> SafeString:
        return format_html(
            '<span class="baton-status baton-status-{}">{}</span>',
            obj.status,
            obj.get_status_display(),
        )

    @admin.display(description="incident")
    def incident_summary(self, obj: ProcessInstance) -> SafeString | str:
        if not obj.incident:
            return ""
        error = str(obj.incident.get("error") or "").splitlines()
        first = error[0] if error else ""
        return format_html(
            "{}: {}",
            element(obj.incident.get("element_id"), element_names_of(obj.definition_id)),
            first if len(first) <= 160 else first[:159] + "…",
        )

    @admin.display(description="started", ordering="created_at")
    def created(self, obj: ProcessInstance) -> SafeString | str:
        return when(obj.created_at)

    @admin.display(description="last change", ordering="updated_at")
    def updated(self, obj: ProcessInstance) -> SafeString | str:
        return when(obj.updated_at)

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

    @admin.action(description="Terminate the selected instances…")
    def terminate_selected(
        self, request: HttpRequest, queryset: QuerySet[ProcessInstance]
    ) -> HttpResponse | None:
        """First a page listing the instances, asking for the reason; its "yes" terminates.
        The page lists (and its "yes" sends back) every instance, so a selection is capped."""
        count = queryset.count()
        if count > MAX_TERMINATED_AT_ONCE:
            messages.error(
                request,
                f"{count} instances are selected; terminate at most {MAX_TERMINATED_AT_ONCE} "
                "at once (narrow the list with its filters). Nothing was terminated.",
            )
            return None
        if request.POST.get("confirmed") != repair.CONFIRMED:
            context = {
                **self.admin_site.each_context(request),
                "title": "Terminate instances?",
                "opts": self.model._meta,
                "instances": queryset.order_by("-created_at"),
                "count": count,
                "reason": repair.reason_of(request),
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(
                request, "admin/engine/processinstance/terminate_selected.html", context
            )
        _each(
            request,
            queryset,
            "Terminated",
            lambda i: terminate_instance(
                instance_id=i, actor=request.user, reason=repair.reason_of(request)
            ),
        )
        return None

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
            path("batch/", wrap(self.new_batch_view), name="engine_processinstance_batch"),
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
        """The instance page (read-only: repairs post to their own URLs)."""
        self._require_operator(request)
        if request.method not in ("GET", "HEAD"):
            return HttpResponseNotAllowed(["GET", "HEAD"])
        if not _is_uuid(object_id):
            raise Http404("There is no such instance.")
        instance = get_object_or_404(
            ProcessInstance.objects.select_related("definition"), pk=object_id
        )
        return self._instance_page(request, instance)

    def _instance_page(
        self,
        request: HttpRequest,
        instance: ProcessInstance,
        refused: dict[str, forms.Form] | None = None,
        status: int = 200,
    ) -> TemplateResponse:
        """The page; `refused` holds forms to show again as the operator filled them in,
        with their errors."""
        context = {
            **self.admin_site.each_context(request),
            **self._instance_context(request, instance),
            **(refused or {}),
            "title": f"{instance.definition.name or instance.definition.key} "
            f"· {str(instance.pk)[:8]}",
            "opts": self.model._meta,
        }
        return TemplateResponse(
            request, "admin/engine/processinstance/instance.html", context, status=status
        )

    def _instance_context(self, request: HttpRequest, instance: ProcessInstance) -> dict[str, Any]:
        choices = repair_choices(instance)
        context: dict[str, Any] = {
            "instance": instance,
            "names": element_names_of(instance.definition_id),
            "diagram": instance_diagram(instance),
            "waiting_for": waiting_for_events(instance),
            "wait_states": wait_states(instance),
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
        """A repair posted from the instance page (or from its confirmation page)."""
        self._require_operator(request)
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        instance = get_object_or_404(
            ProcessInstance.objects.select_related("definition"), pk=object_id
        )
        back = HttpResponseRedirect(
            reverse("admin:engine_processinstance_change", args=[instance.pk])
        )
        chosen = repair.ACTIONS.get(action)
        if chosen is None:
            messages.error(request, f"There is no repair called {action!r}.")
            return back
        form = chosen.form(request, instance)
        if not form.is_valid():
            return self._refused(request, instance, chosen, form)
        confirmed = request.POST.get("confirmed") == repair.CONFIRMED
        try:
            if chosen.confirm is not None and not confirmed:
                return self._confirmation_page(request, instance, action, chosen, form)
            messages.success(request, chosen.run(request, instance, form.cleaned_data))
        except InvalidInput as exc:
            form.add_error(None, exc.detail)
            if chosen.asked_on_confirmation:
                # What was missing is asked on the confirmation page: ask again there.
                return self._confirmation_page(request, instance, action, chosen, form, 400)
            return self._refused(request, instance, chosen, form)
        except EngineError as exc:
            messages.error(request, exc.detail)
        return back

    def _refused(
        self,
        request: HttpRequest,
        instance: ProcessInstance,
        chosen: repair.Repair,
        form: forms.Form,
    ) -> HttpResponse:
        """Nothing was changed: the instance page again, the form as the operator filled it
        in with the error next to it (or, for forms without text of their own, a message)."""
        problems = " ".join(str(e) for errors in form.errors.values() for e in errors)
        messages.error(request, f"Nothing was changed. {problems}")
        if not chosen.page_form:
            return HttpResponseRedirect(
                reverse("admin:engine_processinstance_change", args=[instance.pk])
            )
        return self._instance_page(request, instance, {chosen.page_form: form}, status=400)

    def _confirmation_page(
        self,
        request: HttpRequest,
        instance: ProcessInstance,
        action: str,
        chosen: repair.Repair,
        form: forms.Form,
        status: int = 200,
    ) -> TemplateResponse:
        """What the repair will do, with a "yes" that posts the same form again (the fields
        filled in on the instance page travel hidden) and a way back."""
        assert chosen.confirm is not None
        confirmation = chosen.confirm(request, instance, form.cleaned_data)
        asked = chosen.asked_on_confirmation
        context = {
            **self.admin_site.each_context(request),
            "title": confirmation.question,
            "opts": self.model._meta,
            "instance": instance,
            "action": action,
            "confirmation": confirmation,
            "form": form,
            "asked": [form[name] for name in asked],
            "hidden": [field for field in form if field.name not in asked],
            "confirmed": repair.CONFIRMED,
        }
        return TemplateResponse(
            request, "admin/engine/processinstance/confirm_repair.html", context, status=status
        )

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
        self._require_operator(request)
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        ids = request.POST.getlist("instance")
        queryset = ProcessInstance.objects.filter(pk__in=[i for i in ids if _is_uuid(i)])
        _each(
            request,
            queryset,
            "Retried",
            lambda i: retry_instance(instance_id=str(i), actor=request.user),
        )
        return HttpResponseRedirect(reverse("admin:engine_processinstance_incidents"))

    def new_batch_view(self, request: HttpRequest) -> HttpResponse:
        """A batch over every instance the list's filters match: the filters are carried over
        (and can be changed); "Count" shows the dry run, and only then "Start" appears."""
        self._require_operator(request)
        initial, left_out = batch_form_initial(request.GET)
        form = BatchForm(request.POST or None, initial=initial)
        preview = None
        if request.method == "POST" and form.is_valid():
            operation, given = form.cleaned_data["operation"], form.batch_filter()
            try:
                if "start" in request.POST:
                    batch = create_batch(
                        actor=request.user,
                        operation=operation,
                        arguments=form.arguments(),
                        given=given,
                    )
                    messages.success(
                        request, f"The batch will {operation} {batch.total} instance(s)."
                    )
                    return HttpResponseRedirect(
                        reverse("admin:engine_batch_change", args=[batch.pk])
                    )
                preview = preview_batch(
                    actor=request.user, operation=operation, arguments=form.arguments(), given=given
                )
            except EngineError as exc:
                form.add_error(None, exc.explained())
        context = {
            **self.admin_site.each_context(request),
            "title": "Batch operation on matching instances",
            "form": form,
            "preview": preview,
            "left_out": left_out,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/engine/processinstance/new_batch.html", context)

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


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
