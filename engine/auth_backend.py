"""Django's model backend, reading a session's user together with their group names (one
hand-written statement, engine.rows), as every permission check of a request needs them
(engine.permissions.group_names)."""

from functools import cache
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import ValidationError
from django.db import connection

from .permissions import group_names_sql, known_group_names
from .rows import Columns, column, table


@cache
def _user_columns() -> Columns:
    return Columns(get_user_model(), "u")


@cache
def _user_statement() -> str:
    user_model = get_user_model()
    # Only names from the models' metadata are put together here; the id is a parameter.
    return (
        f"SELECT {_user_columns().sql}, {group_names_sql('u')} "  # noqa: S608
        f"FROM {table(user_model)} AS u WHERE {column(user_model, 'pk', 'u')} = %s"
    )


class ModelBackendWithGroups(ModelBackend):
    def get_user(self, user_id: Any) -> Any:
        try:
            key = get_user_model()._meta.pk.to_python(user_id)
        except ValidationError:
            return None
        with connection.cursor() as cursor:
            cursor.execute(_user_statement(), [key])
            row = cursor.fetchone()
        if row is None:
            return None
        user = _user_columns().build(row[:-1])
        if not self.user_can_authenticate(user):
            return None
        known_group_names(user, list(row[-1]))
        return user
