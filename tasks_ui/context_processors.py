from typing import Any

from django.contrib import admin
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
        # The inbox counted them already for its tabs.
        "header_open_tasks": (
            getattr(request, "inbox_counts", None) or selectors.inbox_counts(user)
        ).waiting,
        "header_admin": _admin_has_something_for(request),
    }


def _admin_has_something_for(request: HttpRequest) -> bool:
    """Whether the admin site would show the user anything: staff status alone (a designer
    has it) leads to a page that says they may not view or edit anything."""
    user = request.user
    if not user.is_staff or not admin.site.has_permission(request):
        return False
    return bool(getattr(user, "is_superuser", False)) or bool(admin.site.get_app_list(request))
