"""API token authentication that reads the token, its user and the user's group names in one
statement, as every permission check of the request needs the groups
(engine.permissions.group_names).

Every API request passes here, so the statement is written once, from the models' own table
and column names, instead of being built and compiled by the ORM per request (that was a
fifth of a start's CPU time in the web process)."""

from functools import cache
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.db.models import Model
from django.utils.translation import gettext_lazy as _
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed

from engine.permissions import known_group_names


def _attnames(model: type[Model]) -> list[str]:
    return [str(field.attname) for field in model._meta.concrete_fields]


def _columns(model: type[Model], alias: str) -> list[str]:
    quote = connection.ops.quote_name
    return [f"{alias}.{quote(str(field.column))}" for field in model._meta.concrete_fields]


@cache
def _token_statement() -> str:
    user_model = get_user_model()
    quote = connection.ops.quote_name
    membership = user_model.groups.through._meta.db_table
    columns = ", ".join([*_columns(user_model, "u"), *_columns(Token, "t")])
    # Only names from the models' metadata are put together here; the key is a parameter.
    return (
        f"SELECT {columns}, ARRAY(SELECT g.{quote('name')} FROM {quote(membership)} AS m "  # noqa: S608
        f"JOIN {quote(Group._meta.db_table)} AS g ON g.{quote('id')} = m.{quote('group_id')} "
        f"WHERE m.{quote('user_id')} = u.{quote('id')}) "
        f"FROM {quote(Token._meta.db_table)} AS t "
        f"JOIN {quote(user_model._meta.db_table)} AS u ON u.{quote('id')} = t.{quote('user_id')} "
        f"WHERE t.{quote('key')} = %s"
    )


def token_with_user(key: str) -> Token | None:
    """The token `key` with its user, whose group names are known; None when there is none."""
    with connection.cursor() as cursor:
        cursor.execute(_token_statement(), [key])
        row = cursor.fetchone()
    if row is None:
        return None
    user_model = get_user_model()
    user_fields, token_fields = _attnames(user_model), _attnames(Token)
    user = user_model.from_db(connection.alias, user_fields, row[: len(user_fields)])
    token_values = row[len(user_fields) : len(user_fields) + len(token_fields)]
    token = Token.from_db(connection.alias, token_fields, token_values)
    Token.user.field.set_cached_value(token, user)
    known_group_names(user, list(row[-1]))
    return token


class TokenWithGroupsAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        token = token_with_user(key)
        if token is None:
            raise AuthenticationFailed(_("Invalid token."))
        if not token.user.is_active:
            raise AuthenticationFailed(_("User inactive or deleted."))
        return token.user, token
