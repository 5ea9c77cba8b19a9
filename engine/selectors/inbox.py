"""Read-only queries of human tasks: the inbox's tabs, the API's task list, one task's detail.
Who sees what is decided in `engine.permissions`; these only narrow it down."""

import uuid
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import (
    BooleanField,
    ExpressionWrapper,
    F,
    Func,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.sql.compiler import SQLCompiler

from engine.actors import Person
from engine.exceptions import NotFound
from engine.models import HumanTask, ProcessInstance
from engine.permissions import (
    actionable_tasks_q,
    assigned_tasks_q,
    can_see_task,
    group_names,
    unclaimed_candidate_tasks_q,
)
from engine.rows import Columns, column, table
from processes.models import ProcessDefinition

from .instances import HEAVY_FIELDS


def _task_instances() -> Prefetch:
    """Instances of a page of tasks, fetched by key after the page is cut: joining them into
    the task query would make Postgres sort and limit over the join."""
    return Prefetch(
        "instance",
        queryset=ProcessInstance.objects.select_related("definition").defer(*HEAVY_FIELDS),
    )


_LISTED_INSTANCE_FIELDS = ("id", "business_key")


@cache
def _listed_instances_read() -> tuple[Columns, str]:
    instance = Columns(
        ProcessInstance,
        "i",
        leave_out=[
            field.name
            for field in ProcessInstance._meta.concrete_fields
            if field.name not in _LISTED_INSTANCE_FIELDS
        ],
    )
    # Only names from the models' metadata are put together here; the keys are a parameter.
    return instance, (
        f"SELECT {instance.sql} FROM {table(ProcessInstance)} AS i "  # noqa: S608
        f"WHERE {column(ProcessInstance, 'pk', 'i')} = ANY(%s)"
    )


def with_listed_instances(tasks: list[HumanTask]) -> list[HumanTask]:
    """A page of `tasks_for_user`, with what a task list shows of their instances (the
    business key; the process key is the task's own) read after the page is cut, in one
    statement, and kept on each task as a prefetch keeps it. Django's own prefetch of a
    foreign key builds one `(id) IN ((...), ...)` tuple per task: for 500 tasks that cost
    more than their page (bench/inbox.py)."""
    if not tasks:
        return tasks
    columns, sql = _listed_instances_read()
    read = columns.read(sql, [list({task.instance_id for task in tasks})])
    found = {instance.pk: instance for instance in read}
    for task in tasks:
        instance = found.get(task.instance_id)
        if instance is not None:  # else deleted since the page was read: not found if asked
            HumanTask.instance.field.set_cached_value(task, instance)
    return tasks


def _completed_by(user: Person) -> Q:
    return Q(status=HumanTask.Status.COMPLETED, completed_by=user.pk)


def tasks_for_user(
    user: Person,
    *,
    mine: bool = False,
    group: str | None = None,
    instance: str | None = None,
    status: str | None = None,
) -> QuerySet[HumanTask]:
    """Tasks `user` can act on (open or claimed by them), or that they completed. A list that
    shows their instances reads them for its page with `with_listed_instances`."""
    tasks = HumanTask.objects.all()
    if not user.is_authenticated:
        return tasks.none()
    if status == HumanTask.Status.COMPLETED:
        tasks = tasks.filter(_completed_by(user))
    elif mine:
        tasks = tasks.filter(assigned_tasks_q(user))
    else:
        tasks = tasks.filter(actionable_tasks_q(user))
    if group:
        if group not in group_names(user):
            return tasks.none()
        tasks = tasks.filter(candidate_groups__contains=[group])
    if instance:
        try:
            tasks = tasks.filter(instance_id=uuid.UUID(instance))
        except ValueError:
            return tasks.none()
    return tasks.order_by("-priority", "created_at", "id")


def task_detail(task_id: uuid.UUID | str) -> HumanTask:
    task = HumanTask.objects.select_related("instance__definition").filter(pk=task_id).first()
    if task is None:
        raise NotFound(f"There is no task {task_id}.")
    return task


def task_detail_for(task_id: uuid.UUID | str, user: Person) -> HumanTask:
    """The task, if `user` may see it (assignee, candidate, the one who completed it)."""
    task = task_detail(task_id)
    if not can_see_task(user, task):
        raise PermissionDenied("You are neither the assignee nor a candidate for this task.")
    return task


# Each ends with the primary key: a total order, which keyset pages need.
INBOX_SORTS = {
    "created": ("created_at", "id"),
    "-created": ("-created_at", "id"),
    "due": ("due_at", "created_at", "id"),
    "priority": ("-priority", "created_at", "id"),
    "name": ("name", "created_at", "id"),
    "-completed": ("-completed_at", "id"),
}


def inbox_tasks(
    user: Person,
    *,
    tab: str = "mine",
    process: str | None = None,
    search: str | None = None,
    sort: str = "priority",
) -> QuerySet[HumanTask]:
    """The inbox's tabs: `mine` (assigned to me), `groups` (unclaimed, for my groups or me as
    a candidate user), `completed` (completed by me); filtered, searched and sorted."""
    tasks = HumanTask.objects.prefetch_related(_task_instances()).defer("form", "submitted_data")
    if not user.is_authenticated:
        return tasks.none()
    if tab == "completed":
        tasks = tasks.filter(_completed_by(user))
    elif tab == "groups":
        tasks = tasks.filter(unclaimed_candidate_tasks_q(user))
    else:
        tasks = tasks.filter(assigned_tasks_q(user))
    if process:
        tasks = tasks.filter(process_key=process)
    if search:
        tasks = tasks.filter(_search_matches(search))
    return tasks.order_by(*INBOX_SORTS.get(sort, INBOX_SORTS["priority"]))


class _HasTextValueLike(Func):
    """Whether a JSON object (an instance's variables) has a top-level text value matching an
    ILIKE pattern: names and numbers do not match, so "amount" does not find every expense.

    With `prefilter`, the object's JSON text must match first: a cheap test in one call that
    skips taking the object apart for the many rows that cannot match. Only for a search JSON
    writes as it is (`_written_as_is_in_json`), or a match would be missed."""

    def __init__(self, column: F, pattern: Value, *, prefilter: bool) -> None:
        super().__init__(column, pattern)
        self.prefilter = prefilter

    output_field = BooleanField()
    conditional = True

    def as_sql(
        self,
        compiler: SQLCompiler,
        connection: BaseDatabaseWrapper,
        function: str | None = None,
        template: str | None = None,
        arg_joiner: str | None = None,
        **extra_context: Any,
    ) -> tuple[str, tuple[str | int, ...]]:
        column, column_params = compiler.compile(self.source_expressions[0])
        pattern, pattern_params = compiler.compile(self.source_expressions[1])
        # Only SQL Django compiled is put together here; the pattern is a parameter.
        sql = " ".join(
            [
                f"EXISTS (SELECT 1 FROM jsonb_each({column}) AS variable(name, value)",  # noqa: S608
                "WHERE jsonb_typeof(variable.value) = 'string'",
                f"AND variable.value #>> '{{}}' ILIKE {pattern})",
            ]
        )
        if not self.prefilter:
            return sql, (*column_params, *pattern_params)
        return (
            f"({column}::text ILIKE {pattern} AND {sql})",
            (*column_params, *pattern_params, *column_params, *pattern_params),
        )


def _written_as_is_in_json(text: str) -> bool:
    """ASCII that JSON does not escape: its case folds letter by letter in every collation
    (a context-sensitive one, such as the Greek final sigma, could differ in the JSON text)."""
    return text.isascii() and not any(char in '"\\' or ord(char) < 0x20 for char in text)


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _search_matches(search: str) -> Q:
    """What the inbox search finds: the task's name, the business key, who started the
    instance (user name, first or last name) and the instance's text variables.

    The instance's side is a scalar subquery, which Postgres runs per task of the tab,
    looking its instance (and starter) up by key: the tab narrows first. As a join, or as an
    EXISTS (which it hashes), the planner read every instance of the table to count a heavy
    user's search."""
    starter = (
        Q(started_by__username__icontains=search)
        | Q(started_by__first_name__icontains=search)
        | Q(started_by__last_name__icontains=search)
    )
    variables = _HasTextValueLike(
        F("variables"), Value(_like_pattern(search)), prefilter=_written_as_is_in_json(search)
    )
    matches = Q(business_key__icontains=search) | starter | Q(variables)
    instance_matches = (
        ProcessInstance.objects.filter(pk=OuterRef("instance_id"))
        .order_by()
        .annotate(matches=ExpressionWrapper(matches, output_field=BooleanField()))
        .values("matches")
    )
    return Q(name__icontains=search) | Q(Subquery(instance_matches, output_field=BooleanField()))


@dataclass(frozen=True)
class InboxCounts:
    """How many tasks wait for a user: assigned to them ("Assigned to me"), and unclaimed with
    them as a candidate ("My groups"). Never the same task twice (an assignee, or none)."""

    mine: int
    groups: int

    @property
    def waiting(self) -> int:
        return self.mine + self.groups

    def of_tab(self, tab: str) -> int | None:
        return {"mine": self.mine, "groups": self.groups}.get(tab)


def inbox_counts(user: Person) -> InboxCounts:
    """Both counts, each over one kind of index (no scan of other people's tasks): assigned,
    from the assignee index alone; unclaimed, from the GIN indexes on unclaimed tasks."""
    if not user.is_authenticated:
        return InboxCounts(0, 0)
    return InboxCounts(
        mine=HumanTask.objects.filter(assigned_tasks_q(user)).count(),
        groups=HumanTask.objects.filter(unclaimed_candidate_tasks_q(user)).count(),
    )


def open_task_count(user: Person) -> int:
    """How many tasks wait for `user` (assigned, or unclaimed for them)."""
    return inbox_counts(user).waiting


def next_task_in_instance(user: Person, instance_id: uuid.UUID) -> HumanTask | None:
    """The next open task of the same instance that `user` can act on, if any."""
    return (
        HumanTask.objects.filter(actionable_tasks_q(user), instance_id=instance_id)
        .order_by("-priority", "created_at")
        .first()
    )


def inbox_processes(user: Person) -> list[tuple[str, str]]:
    """(key, name) of the processes of the tasks `user` can act on, for the inbox filter:
    each key once, named as its latest version is.

    The keys come from the task rows alone (`process_key`), in one statement with the names:
    joining a heavy user's thousands of tasks to their instances cost more than the page."""
    if not user.is_authenticated:
        return []
    keys = HumanTask.objects.filter(actionable_tasks_q(user)).values("process_key")
    rows = (
        ProcessDefinition.objects.filter(key__in=keys)
        .order_by("key", "-version")
        .distinct("key")
        .values_list("key", "name")
    )
    return [(key, name or key) for key, name in rows]
