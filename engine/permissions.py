"""Who may see and work on which human task. Services call these before changing anything."""
from .actors import Person, as_user
from .models import HumanTask


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


def is_candidate(user: Person, task: HumanTask) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    username = user.get_username()
    return username in task.candidate_users or bool(
        group_names(user).intersection(task.candidate_groups)
    )


def can_see_task(user: Person, task: HumanTask) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    if getattr(user, "is_superuser", False):
        return True
    return task.assignee == user.get_username() or is_candidate(user, task)


def can_complete_task(user: Person, task: HumanTask) -> bool:
    """A claimed or assigned task belongs to its assignee; an open one to every candidate."""
    if not can_see_task(user, task):
        return False
    if task.assignee and not getattr(user, "is_superuser", False):
        return task.assignee == user.get_username()
    return True


OPERATORS_GROUP = "operators"


def is_operator(user: Person | None) -> bool:
    """Operators repair instances: retry, suspend, resume, terminate, edit variables."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    return bool(getattr(user, "is_superuser", False)) or OPERATORS_GROUP in group_names(user)


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
