"""API token authentication that reads the user's groups with the token (one statement), as
every permission check of the request needs them (engine.permissions.group_names)."""

from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed

from engine.permissions import known_group_names, with_group_names


class TokenWithGroupsAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        token = (
            with_group_names(Token.objects.select_related("user"), "user").filter(key=key).first()
        )
        if token is None:
            raise AuthenticationFailed(_("Invalid token."))
        if not token.user.is_active:
            raise AuthenticationFailed(_("User inactive or deleted."))
        known_group_names(token.user, token.baton_group_names)
        return token.user, token
