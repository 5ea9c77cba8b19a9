"""Who may see and work on which instance and human task, each rule written once as a query
(`Q`) that lists filter by and single checks (`can_see_task`, ...) ask with `.exists()`, or
of a row just read, in memory (`note_task_access`). Services call the checks before changing
anything."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Exists, OuterRef, Q

from .actors import Person, as_user
from .models import UNCLAIMED_TASK, HumanTask, ProcessInstance
from .rows import column, quote, table
from .rule_match import matches


def group_names(user: Person) -> set[str]:
    """The user's group names, read once per user object (that is, once per request)."""
    person = as_user(user)
    if person is None:
        return set()
    cached: set[str] | None = getattr(person, "_baton_group_names", None)
    if cached is None:
        cached = set(person.groups.values_list("name", flat=True))
        setattr(person, "_baton_group_names", cached)  # noqa: B010
    return set(cached)


def group_names_sql(user_alias: str) -> str:
    """The user's group names as an SQL array, for the hand-written reads of a user
    (engine.rows): the same rule `group_names` reads, in the statement that reads the user."""
    user_model = get_user_model()
    groups = user_model._meta.get_field("groups")
    membership = groups.remote_field.through
    assert membership is not None  # a many-to-many field always has its table
    group_key = groups.m2m_reverse_name()
    user_key = groups.m2m_column_name()
    # Only names from the models' metadata are put together here.
    return (
        f"ARRAY(SELECT {column(Group, 'name', 'g')} FROM {table(membership)} AS m "  # noqa: S608
        f"JOIN {table(Group)} AS g ON {column(Group, 'pk', 'g')} = m.{quote(group_key)} "
        f"WHERE m.{quote(user_key)} = {column(user_model, 'pk', user_alias)})"
    )


def known_group_names(user: Person, names: list[str] | None) -> None:
    """Keep the group names read with `group_names_sql` as `group_names` would."""
    person = as_user(user)
    if person is not None and names is not None:
        setattr(person, "_baton_group_names", set(names))  # noqa: B010


# Nothing matches: for anonymous and inactive users.
NOTHING = Q(pk__in=[])


def _acting(user: Person | None) -> bool:
    return user is not None and user.is_authenticated and user.is_active


def _candidate_arms(user: Person) -> list[Q]:
    """The ways a task names `user` as a candidate: as a candidate user, or one of their
    groups as a candidate group (one GIN index each)."""
    arms = [Q(candidate_users__contains=[user.get_username()])]
    groups = sorted(group_names(user))
    if groups:
        arms.append(Q(candidate_groups__overlap=groups))
    return arms


def _any(arms: list[Q]) -> Q:
    combined = arms[0]
    for arm in arms[1:]:
        combined |= arm
    return combined


def candidate_tasks_q(user: Person) -> Q:
    """Tasks naming `user` as a candidate user, or one of their groups as a candidate group."""
    if not _acting(user):
        return NOTHING
    return _any(_candidate_arms(user))


def visible_tasks_q(user: Person) -> Q:
    """The one rule of who may see a task: its assignee, its candidates (also while someone
    else holds it: they get a 409 on claiming, not a 403) and whoever completed it.
    Superusers see every task."""
    if not _acting(user):
        return NOTHING
    if getattr(user, "is_superuser", False):
        return Q()
    return Q(assignee=user.get_username()) | candidate_tasks_q(user) | Q(completed_by=user.pk)


def assigned_tasks_q(user: Person) -> Q:
    """Active tasks assigned to `user` (claimed by them, or assigned by the diagram)."""
    if not _acting(user):
        return NOTHING
    return Q(assignee=user.get_username(), status__in=HumanTask.ACTIVE_STATUSES)


def unclaimed_candidate_tasks_q(user: Person) -> Q:
    """Active tasks nobody holds, with `user` as a candidate: theirs to claim. Each arm of the
    OR repeats the condition of the partial GIN indexes on unclaimed tasks, so that each arm
    is an index scan (see `actionable_tasks_q`)."""
    if not _acting(user):
        return NOTHING
    return _any([UNCLAIMED_TASK & arm for arm in _candidate_arms(user)])


def actionable_tasks_q(user: Person) -> Q:
    """Active tasks waiting for `user`: assigned to them, or unclaimed with them as a
    candidate. A task someone else claimed is visible to its candidates, but not their work.
    The two halves never overlap (an assignee, or none), so they can be counted apart.

    Written as a flat OR whose every arm carries its whole condition, one index per arm
    (assignee and status; the GIN indexes on unclaimed tasks' candidate users and groups):
    Postgres combines them in a BitmapOr. With the status and the assignee test factored out
    of the OR, it scanned every task of the table for a user with thousands of them."""
    if not _acting(user):
        return NOTHING
    return assigned_tasks_q(user) | unclaimed_candidate_tasks_q(user)


def started_instances_q(user: Person) -> Q:
    """The instances `user` started: their "my work" list (/instances/)."""
    if not _acting(user):
        return NOTHING
    return Q(started_by=user.pk)


def visible_instances_q(user: Person) -> Q:
    """The one rule of who may read an instance (its variables, history and tasks): operators
    (superusers included), whoever started it, and whoever may see one of its tasks."""
    if not _acting(user):
        return NOTHING
    if sees_every_instance(user):
        return Q()
    tasks = HumanTask.objects.filter(visible_tasks_q(user), instance=OuterRef("pk"))
    return started_instances_q(user) | Q(Exists(tasks))


def followable_instances_q(user: Person) -> Q:
    """Who may follow an instance on its read-only page (/instances/<id>/): whoever started
    it, and operators (superusers included), who follow every instance. A task's candidates
    see the instance's data on the task page, not here: this never reaches further than
    `visible_instances_q`."""
    if not _acting(user):
        return NOTHING
    if is_operator(user):
        return Q()
    return started_instances_q(user)


def _user_key(user: Person) -> int | None:
    person = as_user(user)
    return person.pk if person is not None else None


def note_task_access(tasks: list[HumanTask], user: Person) -> None:
    """Note on task rows just read (under their instance's lock) what `can_see_task` and
    `is_candidate` answer for `user`: the same rules, asked of the rows in memory
    (engine.rule_match), so that a service checks a task it read without another query."""
    visible, candidate = visible_tasks_q(user), candidate_tasks_q(user)
    for task in tasks:
        task.baton_access_of = _user_key(user)  # type: ignore[attr-defined]
        task.baton_may_see = matches(visible, task)  # type: ignore[attr-defined]
        task.baton_is_candidate = matches(candidate, task)  # type: ignore[attr-defined]


def _read_with(task: HumanTask, user: Person, answer: str) -> bool | None:
    """What `note_task_access` noted for this user, if it was noted."""
    if getattr(task, "baton_access_of", -1) != _user_key(user):
        return None
    return bool(getattr(task, answer))


def is_candidate(user: Person, task: HumanTask) -> bool:
    known = _read_with(task, user, "baton_is_candidate")
    if known is not None:
        return known
    return HumanTask.objects.filter(candidate_tasks_q(user), pk=task.pk).exists()


def can_see_task(user: Person, task: HumanTask) -> bool:
    known = _read_with(task, user, "baton_may_see")
    if known is not None:
        return known
    return HumanTask.objects.filter(visible_tasks_q(user), pk=task.pk).exists()


def can_see_instance(user: Person, instance: ProcessInstance) -> bool:
    return ProcessInstance.objects.filter(visible_instances_q(user), pk=instance.pk).exists()


def can_follow_instance(user: Person, instance: ProcessInstance) -> bool:
    return ProcessInstance.objects.filter(followable_instances_q(user), pk=instance.pk).exists()


def can_complete_task(user: Person, task: HumanTask) -> bool:
    """A claimed or assigned task belongs to its assignee; an open one to every candidate."""
    if not can_see_task(user, task):
        return False
    if task.assignee and not getattr(user, "is_superuser", False):
        return task.assignee == user.get_username()
    return True


def can_claim_task(user: Person, task: HumanTask) -> bool:
    """A candidate (or a superuser) may take an open task for themselves."""
    return is_candidate(user, task) or bool(getattr(user, "is_superuser", False))


def can_unclaim_task(user: Person, task: HumanTask) -> bool:
    """Only the assignee (or a superuser) may give a claimed task back."""
    return task.assignee == user.get_username() or bool(getattr(user, "is_superuser", False))


OPERATORS_GROUP = "operators"


def is_operator(user: Person | None) -> bool:
    """Operators repair instances: retry, suspend, resume, terminate, edit variables."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    return bool(getattr(user, "is_superuser", False)) or OPERATORS_GROUP in group_names(user)


def sees_every_instance(user: Person | None) -> bool:
    """Whoever may read every instance's data (operators, superusers included): the only
    users shown instance ids, business keys and actors in cross-instance views such as the
    insights, and the only ones who may filter them by a business key (whose answer, runs
    or none, tells whether such a key exists)."""
    return is_operator(user)


DESIGNERS_GROUP = "designers"


def can_view_insights(user: Person | None) -> bool:
    """Process insights and statistics: operators and designers."""
    if not _acting(user):
        return False
    return is_operator(user) or DESIGNERS_GROUP in group_names(user)  # type: ignore[arg-type]


def can_see_connections(user: Person | None) -> bool:
    """The named connections (base URLs, limits; secrets only by name): operators, who
    manage them, and designers, who name them in diagrams."""
    return can_view_insights(user)


def can_operate_connections(user: Person | None) -> bool:
    """Creating, changing and deleting connections, operating their circuit breakers and
    reading their health: operators (superusers included)."""
    return is_operator(user)


def can_send_events(user: Person | None) -> bool:
    """Who may send messages and broadcast signals through the API: members of the groups
    `BATON_EVENT_SENDER_GROUPS` names (`integrations` unless configured), operators and
    superusers. Not everyone: a message's answer (200 or 404) tells whether some instance
    waits with the given correlation values, which would let anyone probe the variables of
    instances they may not read."""
    from django.conf import settings

    if user is None or not user.is_authenticated or not user.is_active:
        return False
    if is_operator(user):  # superusers included
        return True
    groups = set(getattr(settings, "BATON_EVENT_SENDER_GROUPS", ()) or ())
    return bool(groups & group_names(user))


def can_work_external_tasks(user: Person | None) -> bool:
    """Who may fetch, complete and fail external tasks through the API: members of the groups
    `BATON_EXTERNAL_WORKER_GROUPS` names (`external-workers` unless configured), operators
    and superusers. A worker sees the variables of every instance whose task it fetches."""
    from django.conf import settings

    if user is None or not user.is_authenticated or not user.is_active:
        return False
    if is_operator(user):  # superusers included
        return True
    groups = set(getattr(settings, "BATON_EXTERNAL_WORKER_GROUPS", ()) or ())
    return bool(groups & group_names(user))
