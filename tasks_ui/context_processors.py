from typing import Any

from django.http import HttpRequest

from engine import selectors
from engine.permissions import group_names


def inbox_header(request: HttpRequest) -> dict[str, Any]:
    """The header's user name, groups and count of tasks waiting for the user."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "header_groups": sorted(group_names(user)),
        "header_open_tasks": selectors.open_task_count(user),
    }
