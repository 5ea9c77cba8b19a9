"""Django's model backend, reading a session's user together with their group names (one
statement), as every permission check of a request needs them (engine.permissions.group_names).
"""

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend

from .permissions import known_group_names, with_group_names


class ModelBackendWithGroups(ModelBackend):
    def get_user(self, user_id: Any) -> Any:
        users = get_user_model().objects.all()
        user = with_group_names(users).filter(pk=user_id).first()
        if user is None or not self.user_can_authenticate(user):
            return None
        known_group_names(user, user.baton_group_names)
        return user
