"""API token authentication that reads the token, its user and the user's group names in one
statement, as every permission check of the request needs the groups
(engine.permissions.group_names).

Every API request passes here, so the statement is written once (engine.rows) instead of
being built and compiled by the ORM per request (that was a fifth of a start's CPU time in the
web process)."""

from functools import cache
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils.translation import gettext_lazy as _
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed

from engine.permissions import group_names_sql, known_group_names
from engine.rows import Columns, column, split, table


@cache
def _token_columns() -> tuple[Columns, Columns]:
    return Columns(get_user_model(), "u"), Columns(Token, "t")


@cache
def _token_statement() -> str:
    user, token = _token_columns()
    user_model = get_user_model()
    # Only names from the models' metadata are put together here; the key is a parameter.
    return (
        f"SELECT {user.sql}, {token.sql}, {group_names_sql('u')} "  # noqa: S608
        f"FROM {table(Token)} AS t JOIN {table(user_model)} AS u "
        f"ON {column(user_model, 'pk', 'u')} = {column(Token, 'user', 't')} "
        f"WHERE {column(Token, 'pk', 't')} = %s"
    )


def token_with_user(key: str) -> Token | None:
    """The token `key` with its user, whose group names are known; None when there is none."""
    with connection.cursor() as cursor:
        cursor.execute(_token_statement(), [key])
        row = cursor.fetchone()
    if row is None:
        return None
    user, token = split(row, *_token_columns())
    Token.user.field.set_cached_value(token, user)
    Token.user.field.remote_field.set_cached_value(user, token)  # user.auth_token, as the ORM
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
