"""`Idempotency-Key` support for API views that act (start, complete, message, signal).

The same key with the same body returns the first response without acting again (with the
header `Idempotent-Replayed: true`); the same key with a different body is a 422.
"""
import hashlib
import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.db import transaction
from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from engine.actors import as_user
from engine.services.idempotency import remember_response, reserve_idempotency_key

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255

IDEMPOTENCY_PARAMETER = OpenApiParameter(
    name=HEADER, location=OpenApiParameter.HEADER, required=False, type=str,
    description="Makes the request safe to retry: the same key and body return the first "
    "response without acting again; the same key with another body is a 422.",
)

ViewMethod = Callable[..., Response]


def _fingerprint(request: Request) -> str:
    body = json.dumps(request.data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def idempotent(view_method: ViewMethod) -> ViewMethod:
    @wraps(view_method)
    def wrapper(self: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = request.headers.get(HEADER)
        user = as_user(request.user)
        if not key or user is None:
            return view_method(self, request, *args, **kwargs)
        if len(key) > MAX_KEY_LENGTH:
            raise ValidationError({HEADER: f"At most {MAX_KEY_LENGTH} characters."})
        scope = f"{request.method} {request.path}"
        with transaction.atomic():
            earlier = reserve_idempotency_key(
                user=user, scope=scope, key=key, fingerprint=_fingerprint(request)
            )
            if earlier is not None:
                assert earlier.status_code is not None
                return Response(earlier.response, status=earlier.status_code,
                                headers={"Idempotent-Replayed": "true"})
            response = view_method(self, request, *args, **kwargs)
            remember_response(user=user, scope=scope, key=key,
                              status_code=response.status_code, body=response.data)
        return response

    return wrapper
