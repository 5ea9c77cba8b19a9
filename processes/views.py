"""Process pages: the definitions with their diagrams, versions and differences, downloads,
and start forms. The modeler pages are in `modeler_views`."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from engine import selectors as engine_selectors
from engine.exceptions import EngineError, InvalidInput, NotFound
from engine.models import ProcessInstance
from engine.permissions import can_view_insights, sees_every_instance
from engine.selectors import insights as insight_queries
from engine.services import start_instance
from webforms.task_forms import build_form, submitted_variables

from . import selectors
from .content_policies import diagram_download, thumbnail_only
from .diagram_diff import DiagramDiff, diff_diagrams
from .insight_charts import bar_chart
from .models import CoverageReport, ProcessDefinition
from .permissions import can_deploy
from .thumbnails import diagram_thumbnail

THUMBNAIL_MAX_AGE = 24 * 3600


def _definition_or_404(key: str, version: int | None = None) -> ProcessDefinition:
    try:
        return selectors.definition(key, version)
    except NotFound:
        raise Http404("No such process or version.") from None


def _version_param(request: HttpRequest, name: str) -> int | None:
    value = request.GET.get(name, "")
    return int(value) if value.isdigit() and len(value) < 10 else None


@login_required
def definition_list(request: HttpRequest) -> HttpResponse:
    counts = engine_selectors.instance_counts_by_key()
    rows = [
        (d, counts.get(d.key, engine_selectors.InstanceCounts()))
        for d in selectors.latest_definitions().select_related("deployment__deployed_by")
    ]
    return render(
        request, "processes/list.html", {"rows": rows, "can_deploy": can_deploy(request.user)}
    )


def _version_diff(
    request: HttpRequest, versions: list[ProcessDefinition]
) -> tuple[int | None, int | None, DiagramDiff | None]:
    """The versions to compare (?from=&to=, by default the two newest) and their difference."""
    numbers = {v.version for v in versions}
    newest = [v.version for v in versions[:2]]
    old = _version_param(request, "from") or (newest[1] if len(newest) == 2 else None)
    new = _version_param(request, "to") or newest[0]
    if old not in numbers or new not in numbers or old == new:
        return old, new, None
    key = versions[0].key
    diff = diff_diagrams(
        _definition_or_404(key, old).bpmn_xml, _definition_or_404(key, new).bpmn_xml
    )
    return old, new, diff


def _coverage_marks(report: CoverageReport | None) -> dict[str, list[str]] | None:
    """What the diagram's "Test coverage" overlay colours: covered and uncovered ids."""
    if report is None:
        return None
    run, taken = set(report.elements_run), set(report.flows_taken)
    return {
        "covered": sorted(run | taken),
        "uncovered": sorted((set(report.elements) - run) | (set(report.flows) - taken)),
    }


@login_required
@require_GET
def detail(request: HttpRequest, key: str) -> HttpResponse:
    try:
        versions = list(selectors.version_history(key))
    except NotFound:
        raise Http404("No such process.") from None
    shown = _definition_or_404(key, _version_param(request, "version") or versions[0].version)
    diff_from, diff_to, diff = _version_diff(request, versions)
    marks: dict[str, list[str]] = {"added": [], "changed": []}
    if diff is not None and diff_to == shown.version:
        marks = {
            "added": [c.element_id for c in diff.added],
            "changed": [c.element_id for c in diff.changed],
        }
    coverage = selectors.latest_coverage(key)
    return render(
        request,
        "processes/detail.html",
        {
            "coverage": coverage,
            "definition": shown,
            "latest": versions[0],
            "versions": versions,
            "diff": diff,
            "diff_from": diff_from,
            "diff_to": diff_to,
            "can_deploy": can_deploy(request.user),
            "can_view_insights": can_view_insights(request.user),
            "viewer_config": {
                "xml": shown.bpmn_xml,
                "marks": marks,
                "coverage": _coverage_marks(coverage),
            },
        },
    )


@login_required
@require_GET
def download(request: HttpRequest, key: str) -> HttpResponse:
    """The BPMN file of a version (the latest unless ?version=)."""
    definition = _definition_or_404(key, _version_param(request, "version"))
    return diagram_download(definition.bpmn_xml, definition.file_name or f"{definition.key}.bpmn")


@login_required
@require_GET
@thumbnail_only
def thumbnail(request: HttpRequest, key: str, version: int) -> HttpResponse:
    """A small SVG of one version's diagram; versions never change, so browsers keep it."""
    definition = _definition_or_404(key, version)
    response = HttpResponse(
        diagram_thumbnail(definition.bpmn_xml), content_type="image/svg+xml; charset=utf-8"
    )
    response["Cache-Control"] = f"private, max-age={THUMBNAIL_MAX_AGE}"
    return response


@login_required
def start(request: HttpRequest, key: str) -> HttpResponse:
    try:
        definition = selectors.definition(key)
    except NotFound:
        raise Http404("No such process.") from None
    form = build_form(
        definition.start_form, {}, data=request.POST if request.method == "POST" else None
    )
    if request.method == "POST":
        variables = submitted_variables(definition.start_form, form)
        business_key = request.POST.get("business_key", "").strip()[:255] or None
        if variables is not None:
            try:
                instance = start_instance(
                    key=key, variables=variables, business_key=business_key, actor=request.user
                )
            except EngineError as exc:
                messages.error(request, exc.detail)
            else:
                return _after_start(request, definition, instance)
    return render(
        request,
        "processes/start.html",
        {"definition": definition, "form": form},
        status=400 if request.method == "POST" else 200,
    )


def _after_start(
    request: HttpRequest, definition: ProcessDefinition, instance: ProcessInstance
) -> HttpResponse:
    """The starter's first task if they have one, else the instance's page, where they
    follow it (and see at once when it stopped with an incident)."""
    name = definition.name or definition.key
    started = f"{name} started{' as ' + instance.business_key if instance.business_key else ''}"
    if instance.status == ProcessInstance.Status.INCIDENT:
        messages.error(request, f"{started}, but it stopped with an incident at once.")
        return redirect("tasks_ui:instance", instance_id=instance.pk)
    following = engine_selectors.next_task_in_instance(request.user, instance.id)
    if following is not None:
        messages.success(request, f"{started}. Your first step:")
        return redirect("tasks_ui:task", task_id=following.id)
    messages.success(request, f"{started}.")
    return redirect("tasks_ui:instance", instance_id=instance.pk)


HEAT_METRICS = {"runs": "runs", "mean_ms": "mean duration", "p95_ms": "p95 duration",
                "incident_rate": "incident rate"}  # fmt: skip
RANGES = {"1": "last day", "7": "last 7 days", "30": "last 30 days", "90": "last 90 days"}


def _insight_params(request: HttpRequest) -> dict[str, str]:
    get = request.GET
    return {
        "version": get.get("version", ""),
        "days": get.get("days", "30") if get.get("days", "30") in RANGES else "30",
        "prefix": get.get("prefix", "")[:255],
        "interval": get.get("interval", "day")
        if get.get("interval") in insight_queries.INTERVALS
        else "day",
        "element": get.get("element", "")[:255],
    }


@login_required
@require_GET
def insights(request: HttpRequest, key: str) -> HttpResponse:
    """Process analytics: a heatmap on the diagram, counts over time, durations, slow
    elements, connectors, tasks past due; filters by version, time range, business key
    (operators only: for others the field is not shown and the parameter ignored)."""
    params = _insight_params(request)
    if not sees_every_instance(request.user):
        params["prefix"] = ""
    version = int(params["version"]) if params["version"].isdigit() else None
    try:
        flt = insight_queries.insight_filter(
            request.user,
            key,
            version=version,
            days=int(params["days"]),
            business_key_prefix=params["prefix"],
        )
    except NotFound:
        raise Http404("No such process.") from None
    except InvalidInput as exc:
        raise Http404(exc.detail) from None
    stats = insight_queries.element_statistics(flt)
    elements = [s for s in stats if s.element_type != insight_queries.PROCESS_TYPE]
    timeline = insight_queries.over_time(flt, params["interval"])
    distribution = insight_queries.duration_distribution(stats)
    shown = _definition_or_404(key, version)
    label_format = {"hour": "%m-%d %H:00", "day": "%m-%d", "week": "%Y-%m-%d"}[params["interval"]]
    charts = {
        "timeline": bar_chart(
            [row["at"].strftime(label_format) for row in timeline],
            [
                ("started", "#2563eb", [row["started"] for row in timeline]),
                ("completed", "#16a34a", [row["completed"] for row in timeline]),
                ("incidents", "#dc2626", [row["incidents"] for row in timeline]),
            ],
            title="Instances started, completed, and incidents per " + params["interval"],
            testid="chart-timeline",
        ),
        "durations": bar_chart(
            [row["label"] for row in distribution],
            [("instances", "#7c3aed", [row["count"] for row in distribution])],
            title="How long instances took",
            testid="chart-durations",
        ),
    }
    heat = {
        s.element_id: {
            "runs": s.started,
            "mean_ms": s.mean_ms,
            "p95_ms": s.p95_ms,
            "incident_rate": s.incident_rate,
            "label": {
                "runs": str(s.started),
                "mean_ms": insight_queries.short_duration(s.mean_ms),
                "p95_ms": insight_queries.short_duration(s.p95_ms),
                "incident_rate": f"{s.incident_rate:.0%}",
            },
        }
        for s in elements
    }
    slowest = sorted(elements, key=lambda s: -(s.p95_ms or 0))[:10]
    return render(
        request,
        "processes/insights.html",
        {
            "definition": shown,
            "key": key,
            "params": params,
            "instance_details": flt.instance_details,
            "versions": list(selectors.version_history(key)),
            "ranges": RANGES,
            "metrics": HEAT_METRICS,
            "intervals": insight_queries.INTERVALS,
            "charts": charts,
            "slowest": [
                (
                    s,
                    insight_queries.short_duration(s.mean_ms),
                    insight_queries.short_duration(s.p95_ms),
                )
                for s in slowest
                if s.ended
            ],
            "connectors": [
                {
                    **c,
                    "mean": insight_queries.short_duration(c["mean_ms"]),
                    "p95": insight_queries.short_duration(c["p95_ms"]),
                }
                for c in insight_queries.connector_statistics(stats)
            ],
            "overdue": insight_queries.overdue_tasks(flt),
            "element_runs": insight_queries.slowest_runs(flt, params["element"])
            if params["element"]
            else None,
            "element_stats": next((s for s in stats if s.element_id == params["element"]), None),
            "totals": next((s for s in stats if s.element_type == "Process"), None),
            "insights_config": {"xml": shown.bpmn_xml, "heat": heat},
        },
    )
