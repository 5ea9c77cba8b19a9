"""The web inbox: lists, the task page with its form, claim and unclaim. Views parse the
request, call one service or selector, and render."""

import math
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from engine import selectors
from engine.exceptions import EngineError, NotFound
from engine.models import HumanTask, InstanceEvent, ProcessInstance
from engine.permissions import can_complete_task, can_follow_instance
from engine.services import claim_task, complete_human_task, unclaim_task
from engine.services.definition_cache import definition_elements
from webforms.task_forms import build_form, decision_for, submitted_variables

from .instructions import render_instructions
from .task_data import task_data
from .variables import shown_variables, summary_names

TABS = {"mine": "Assigned to me", "groups": "My groups", "completed": "Completed by me"}
PAGE_SIZE = 25


def home(request: HttpRequest) -> HttpResponse:
    return redirect("tasks_ui:inbox")


def _key_variables(variables: dict[str, Any], limit: int = 3) -> list[tuple[str, Any]]:
    shown = []
    for name, value in variables.items():
        if name.startswith("_") or value is None or isinstance(value, dict | list):
            continue
        text = str(value)
        shown.append((name, text if len(text) <= 40 else text[:39] + "…"))
        if len(shown) == limit:
            break
    return shown


@dataclass(frozen=True)
class InboxPage:
    """What the pager shows: the tasks, how many in all, page n of m, and the query strings of
    the pages before and after (None: there is none)."""

    tasks: list[HumanTask]
    count: int
    number: int
    pages: int
    previous: str | None
    next: str | None


def _page_query(params: QueryDict, **changes: str | None) -> str:
    """The inbox's query string with `changes` (None removes a parameter)."""
    query = params.copy()
    for name, value in changes.items():
        query.pop(name, None)
        if value is not None:
            query[name] = value
    return query.urlencode()


def _inbox_page(
    request: HttpRequest, tasks: QuerySet[HumanTask], count: int | None, params: QueryDict
) -> InboxPage:
    """A page of the tab: after a cursor (the pager's links) or, for older links and
    bookmarks, by number (`?page=`). `count` is the tab's count when already known."""
    if "page" in params:
        numbered = Paginator(tasks, PAGE_SIZE).get_page(params.get("page"))
        return InboxPage(
            tasks=list(numbered),
            count=numbered.paginator.count,
            number=numbered.number,
            pages=numbered.paginator.num_pages,
            previous=_page_query(params, page=str(numbered.number - 1))
            if numbered.has_previous()
            else None,
            next=_page_query(params, page=str(numbered.number + 1))
            if numbered.has_next()
            else None,
        )
    order = [str(field) for field in tasks.query.order_by]
    try:
        cursor = selectors.Cursor.decode(params.get("cursor") or "", HumanTask, order)
    except selectors.BadCursor:
        cursor = None  # no cursor, or not one of this list: its first page
    # A first page of a list not counted yet (filtered, searched) counts it in the same scan.
    page = selectors.keyset_page(tasks, PAGE_SIZE, cursor, count=count is None)
    if count is None:
        count = tasks.count() if page.total is None else page.total
    previous = None
    if page.has_previous:
        previous = _page_query(params, cursor=page.previous.encode() if page.previous else None)
    following = _page_query(params, cursor=page.next.encode()) if page.next else None
    return InboxPage(
        tasks=page.rows,
        count=count,
        number=page.number,
        pages=max(1, math.ceil(count / PAGE_SIZE)),
        previous=previous,
        next=following,
    )


def _inbox_context(request: HttpRequest) -> dict[str, Any]:
    params = request.GET
    counts = selectors.inbox_counts(request.user)
    request.inbox_counts = counts  # type: ignore[attr-defined]  # the header's badge
    tab = params.get("tab") or ""
    if tab not in TABS:
        # Nothing assigned yet: show what the user's groups could pick up instead.
        tab = "mine" if counts.mine else "groups"
    sort = params.get("sort") or ("-completed" if tab == "completed" else "priority")
    process = params.get("process") or None
    search = (params.get("q") or "").strip() or None
    tasks = selectors.inbox_tasks(request.user, tab=tab, process=process, search=search, sort=sort)
    # Unfiltered, a tab holds what the counts counted.
    known = None if process or search else counts.of_tab(tab)
    shown = params.copy()
    shown["tab"] = tab
    page = _inbox_page(request, tasks, known, shown)
    rows = [(task, _key_variables(task.instance.variables)) for task in page.tasks]
    # The refresh asks for the tab shown, not for a default chosen again.
    return {
        "tabs": TABS,
        "tab": tab,
        "sort": sort,
        "page": page,
        "rows": rows,
        "process": params.get("process") or "",
        "q": params.get("q") or "",
        "processes": selectors.inbox_processes(request.user),
        "query": shown.urlencode(),
    }


@login_required
def inbox(request: HttpRequest) -> HttpResponse:
    context = _inbox_context(request)
    if request.headers.get("HX-Request"):
        return render(request, "tasks_ui/_task_list.html", context)
    return render(request, "tasks_ui/inbox.html", context)


def _visible_task(request: HttpRequest, task_id: str) -> HumanTask:
    try:
        return selectors.task_detail_for(task_id, request.user)
    except NotFound:
        raise Http404("No such task.") from None


def _task_context(request: HttpRequest, task: HumanTask, form: Any) -> dict[str, Any]:
    info = definition_elements(task.instance.definition_id).get(task.element_id, {})
    decision = decision_for(task.form, info.get("properties") or {}) if task.is_active else None
    workable = task.is_active and task.instance.tasks_workable
    return {
        "task": task,
        "instance": task.instance,
        "form": form,
        "decision": decision,
        # A suspended (or failed) instance's task is shown without its form: the service
        # would refuse the submission.
        "paused": task.is_active and not task.instance.tasks_workable,
        "can_complete": workable and can_complete_task(request.user, task),
        # The task's candidates may see its instance's data (engine.permissions).
        "data": task_data(task.form, info.get("show_variables") or [], task.instance.variables),
        "diagram": {"xml": task.instance.definition.bpmn_xml, "current": [task.element_id]},
        "diagram_heading": "Where this task is in the process",
        "diagram_label": f"Process diagram with “{task.name}” highlighted",
        "diagram_legend": [("current", "this task")],
        "diagram_focus_label": "This task",
        "can_follow": can_follow_instance(request.user, task.instance),
        "claimed_by_other": bool(task.assignee) and task.assignee != request.user.get_username(),
        "instructions": render_instructions(
            info.get("instructions") or "", task.instance.variables
        ),
        "events": _history(task.instance),
        "waits": selectors.instance_waits(task.instance),
    }


def _history(instance: ProcessInstance) -> list[tuple[InstanceEvent, str]]:
    """The instance's audit events, each with the name of its element ("" for none)."""
    names = selectors.definition_element_names(instance.definition_id)
    return [
        (event, names.get(event.element_id, event.element_id) if event.element_id else "")
        for event in selectors.instance_history(instance)
    ]


@login_required
def task_detail(request: HttpRequest, task_id: str) -> HttpResponse:
    task = _visible_task(request, task_id)
    form = build_form(
        task.form, task.instance.variables, data=request.POST if request.method == "POST" else None
    )
    if request.method == "POST":
        variables = submitted_variables(task.form, form)
        if variables is not None:
            try:
                complete_human_task(task_id=task.id, user=request.user, variables=variables)
            except EngineError as exc:
                messages.error(request, exc.detail)
                if exc.errors and isinstance(exc.errors, dict) and form is not None:
                    for field, message in exc.errors.items():
                        form.add_error(field if field in form.fields else None, message)
                else:
                    return redirect("tasks_ui:task", task_id=task.id)
            else:
                return _after_completion(request, task)
    status = 400 if request.method == "POST" else 200
    return render(request, "tasks_ui/task.html", _task_context(request, task, form), status=status)


def _after_completion(request: HttpRequest, task: HumanTask) -> HttpResponse:
    following = selectors.next_task_in_instance(request.user, task.instance_id)
    if following is not None:
        messages.success(request, f"“{task.name}” is done. Here is the next step.")
        return redirect("tasks_ui:task", task_id=following.id)
    task.instance.refresh_from_db(fields=["status"])
    outcome = {
        "completed": "The process is complete.",
        "running": "The process moves on.",
        "waiting": "The process now waits for someone else.",
    }
    messages.success(
        request, f"“{task.name}” is done. {outcome.get(task.instance.status, '')}".strip()
    )
    return redirect("tasks_ui:inbox")


@login_required
@require_POST
def claim(request: HttpRequest, task_id: str) -> HttpResponse:
    return _claim_action(request, task_id, claim_task, "claimed")


@login_required
@require_POST
def unclaim(request: HttpRequest, task_id: str) -> HttpResponse:
    return _claim_action(request, task_id, unclaim_task, "given back")


def _claim_action(request: HttpRequest, task_id: str, action: Any, done: str) -> HttpResponse:
    task = _visible_task(request, task_id)
    swap_row = bool(request.headers.get("HX-Request"))
    failed = False
    try:
        task = action(task_id=task.id, user=request.user)
    except EngineError as exc:
        failed = True
        messages.error(request, exc.detail)
    else:
        if not swap_row:  # the swapped row itself shows the change
            messages.success(request, f"“{task.name}” {done}.")
    back_to = _local_url(request, request.POST.get("next", ""))
    tab = request.POST.get("tab", "mine")
    if swap_row and not failed and _leaves_tab(tab, done):
        # The row no longer belongs to this list: it goes at once, with a word where it went.
        return render(request, "tasks_ui/_row_moved.html", {"task": task, "done": done})
    if swap_row:
        row = selectors.task_detail(task.id)
        return render(
            request,
            "tasks_ui/_task_row.html",
            {
                "task": row,
                "vars": _key_variables(row.instance.variables),
                "tab": tab,
                "next": back_to,
            },
        )
    return redirect(back_to or reverse("tasks_ui:task", args=[task.id]))


def _leaves_tab(tab: str, done: str) -> bool:
    """A task claimed from "My groups" is no longer unclaimed; one given back from "Assigned
    to me" is no longer the user's."""
    return (tab, done) in {("groups", "claimed"), ("mine", "given back")}


def _local_url(request: HttpRequest, url: str) -> str:
    """`url` if it leads to a page of this site, else "" (never redirect elsewhere)."""
    allowed = url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return url if allowed else ""


MY_WORK_TABS = {"": "All", "open": "Not finished", "incident": "Incidents", "finished": "Finished"}


@login_required
def my_instances(request: HttpRequest) -> HttpResponse:
    """ "My work": the instances the user started, newest first, with where each stands."""
    show = request.GET.get("show", "")
    if show not in MY_WORK_TABS:
        show = ""
    page = Paginator(selectors.started_instances(request.user, show=show), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    rows = [(instance, selectors.current_steps(instance)) for instance in page]
    return render(
        request,
        "tasks_ui/instances.html",
        {"page": page, "rows": rows, "tabs": MY_WORK_TABS, "show": show},
    )


@login_required
def instance_detail(request: HttpRequest, instance_id: str) -> HttpResponse:
    """A starter's read-only page of one instance: where it stands on the diagram, its
    history and its data."""
    try:
        instance = selectors.followed_instance_for(instance_id, request.user)
    except NotFound:
        raise Http404("No such instance.") from None
    diagram = selectors.instance_diagram(instance)
    steps = selectors.current_steps(instance)
    mine = selectors.tasks_for_user(request.user, instance=str(instance.pk))
    my_tasks = {task.id for task in mine}
    process = instance.definition.name or instance.definition.key
    return render(
        request,
        "tasks_ui/instance.html",
        {
            "instance": instance,
            "steps": [(step, step.task_id in my_tasks) for step in steps],
            "wait_states": selectors.wait_states(instance),
            "variables": shown_variables(instance.variables, summary_names(instance.variables)),
            "events": _history(instance),
            "diagram": diagram,
            "diagram_heading": "Where it stands",
            "diagram_label": f"Process diagram of {process}",
            "diagram_legend": [
                ("completed", "done"),
                ("active", "waiting here"),
                ("failed", "incident"),
                *([("compensated", "undone (compensated)")] if diagram["compensated"] else []),
            ],
            "diagram_focus_label": "Current step",
        },
    )
