"""The interactive API docs: a page for people, so a visitor who is not signed in is sent to
the login page and back, instead of the raw 401 an API client gets from the schema."""

from typing import Any

from django.contrib.auth.views import redirect_to_login
from drf_spectacular.views import SpectacularSwaggerSplitView
from rest_framework import exceptions
from rest_framework.response import Response


class SwaggerDocsView(SpectacularSwaggerSplitView):
    def handle_exception(self, exc: Exception) -> Any:
        if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
            return redirect_to_login(self.request.get_full_path())
        response: Response = super().handle_exception(exc)
        return response
