"""One error shape for the whole API: RFC 7807 problem details."""

import sys
from typing import Any

from django.conf import settings
from django.core.exceptions import (
    DisallowedHost,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.views import csrf, defaults
from rest_framework import exceptions, status
from rest_framework.views import exception_handler

from engine.exceptions import (
    Conflict,
    EngineError,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    ScriptFailed,
    Unavailable,
)
from engine.services.operation_keys import OperationKeyReused
from processes.validation import DeploymentInvalid

PROBLEM_CONTENT_TYPE = "application/problem+json"

# The engine's refusals as HTTP answers: (status, title), the first class that matches wins.
ENGINE_ERROR_STATUSES: list[tuple[type[EngineError], int, str]] = [
    (NotFound, 404, "Not found"),
    (NotAuthenticated, 401, "Not authenticated"),
    (Conflict, 409, "Conflict"),
    (OperationKeyReused, 422, "Idempotency-Key reused"),
    (InvalidInput, 400, "Invalid input"),
    (Unavailable, 503, "Service unavailable"),
    (ScriptFailed, 422, "A diagram script failed"),
    (EngineError, 400, "Bad request"),
]

# What a message did (`MessageResult.outcome`), as the status of the answer to it.
MESSAGE_OUTCOME_STATUSES = {"correlated": 200, "started": 201, "deferred": 202}


def engine_error_status(exc: EngineError) -> tuple[int, str]:
    """The HTTP status and problem title for an engine error."""
    return next(
        (status_code, title)
        for kind, status_code, title in ENGINE_ERROR_STATUSES
        if isinstance(exc, kind)
    )


def problem_response(status_code: int, title: str, detail: str, errors: Any = None) -> JsonResponse:
    """Always JSON, whatever the view renders otherwise (the schema view renders YAML)."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status_code,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    return JsonResponse(body, status=status_code, content_type=PROBLEM_CONTENT_TYPE)


def request_problem(exc: SuspiciousOperation) -> JsonResponse:
    """Django's refusals of a request it cannot or will not read, as problems. Their own
    messages are meant for the server's log (they echo headers, name settings)."""
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return problem_response(
            413, "Request body too large", f"The request body is larger than {limit} bytes."
        )
    if isinstance(exc, DisallowedHost):
        detail = "The Host header names a host this server does not serve."
    elif isinstance(exc, TooManyFilesSent):
        detail = (
            f"The request has more than {settings.DATA_UPLOAD_MAX_NUMBER_FILES} files "
            "(BATON_MAX_DEPLOYMENT_FILES)."
        )
    elif isinstance(exc, TooManyFieldsSent):
        detail = f"The request has more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} fields."
    else:
        detail = "The request could not be read."
    return problem_response(400, "Bad request", detail)


def _field_errors(detail: Any, path: str = "") -> list[dict[str, str]]:
    """Flatten DRF's nested validation errors into `[{field, message}]` with dotted paths."""
    if isinstance(detail, dict):
        found: list[dict[str, str]] = []
        for key, value in detail.items():
            found.extend(_field_errors(value, f"{path}.{key}" if path else str(key)))
        return found
    if isinstance(detail, list):
        found = []
        for index, item in enumerate(detail):
            if isinstance(item, dict | list):
                found.extend(_field_errors(item, f"{path}[{index}]"))
            else:
                found.append({"field": path or "non_field_errors", "message": str(item)})
        return found
    return [{"field": path or "non_field_errors", "message": str(detail)}]


def _listed(errors: Any) -> Any:
    """The engine keeps field errors as `{field: message}` (the web forms show them next to
    their fields); the API documents `[{field, message}]` for every endpoint."""
    return _field_errors(errors) if isinstance(errors, dict) else errors


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> HttpResponse | None:
    if isinstance(exc, DeploymentInvalid):
        return problem_response(
            status.HTTP_400_BAD_REQUEST,
            "The deployment is not valid",
            str(exc),
            [p.as_dict() for p in exc.problems],
        )
    if isinstance(exc, EngineError):
        status_code, title = engine_error_status(exc)
        return problem_response(status_code, title, exc.detail, _listed(exc.errors))
    if isinstance(exc, SuspiciousOperation):
        return request_problem(exc)
    if isinstance(exc, exceptions.ValidationError):
        return problem_response(
            status.HTTP_400_BAD_REQUEST,
            "Invalid input",
            "The request body is not valid.",
            _field_errors(exc.detail),
        )
    if isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or None)
    response = exception_handler(exc, context)
    if response is None:
        return None
    detail = response.data.get("detail", "") if isinstance(response.data, dict) else ""
    title = getattr(exc, "default_detail", "Error")
    problem = problem_response(response.status_code, str(title), str(detail or title))
    for header in ("WWW-Authenticate", "Retry-After", "Allow"):
        if header in response:
            problem[header] = response[header]
    return problem


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's 400s (a bad Host header, an unreadable multipart body, too many fields)."""
    if _is_api(request):
        if isinstance(exception, SuspiciousOperation):
            return request_problem(exception)
        return problem_response(400, "Bad request", "The request could not be read.")
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return problem_response(
            403, "Permission denied", "You do not have permission to perform this action."
        )
    return defaults.permission_denied(request, exception)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: under /api/, a session request without its CSRF token."""
    if _is_api(request):
        return problem_response(403, "CSRF check failed", f"CSRF failed: {reason}")
    return csrf.csrf_failure(request, reason)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Unknown URLs under /api/ answer in the API's error shape; others as Django does."""
    if _is_api(request):
        return problem_response(404, "Not found", f"No API endpoint at {request.path}.")
    return defaults.page_not_found(request, exception)


# How long a client should wait before trying again when the database cannot be reached.
RETRY_AFTER_SECONDS = 5


def server_error(request: HttpRequest) -> HttpResponse:
    """Django's handler500: a failure to reach the database (a restart, a lost connection)
    is a 503 to try again, not a 500."""
    if isinstance(sys.exc_info()[1], OperationalError | InterfaceError):
        return database_unavailable(request)
    if _is_api(request):
        return problem_response(500, "Server error", "The server failed; the error was logged.")
    return defaults.server_error(request)


def database_unavailable(request: HttpRequest) -> HttpResponse:
    response: HttpResponse
    if _is_api(request):
        response = problem_response(
            503,
            "Service unavailable",
            "Baton cannot reach its database right now; try again in a few seconds.",
        )
    else:
        response = HttpResponse(render_to_string("503.html"), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
