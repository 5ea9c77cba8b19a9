"""`Idempotency-Key` support for API views that act (start, complete, message, signal).

The same key with the same body returns the first response without acting again (with the
header `Idempotent-Replayed: true`); the same key with a different body is a 422.

The engine reserves the key in the operation's own transaction (the view hands the service
its `operation_key`), so the operation happens once; this module keeps the first response
and replays it. Requests with one key take turns on an advisory lock held outside any
transaction, so a retry that arrives while the first request is still being answered waits
for that response. No row lock is held while a response renders.
"""

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any

from django.db import connection
from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from engine.actors import as_user
from engine.models import OperationKey
from engine.services.operation_keys import KeyedOperation, OperationDoneBefore, earlier_operation

from .models import IdempotentResponse

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255

IDEMPOTENCY_PARAMETER = OpenApiParameter(
    name=HEADER,
    location=OpenApiParameter.HEADER,
    required=False,
    type=str,
    description="Makes the request safe to retry: the same key and body return the first "
    "response without acting again; the same key with another body is a 422.",
)

ViewMethod = Callable[..., Response]

logger = logging.getLogger(__name__)


class ResponseLost(APIException):
    status_code = 409
    default_detail = "Conflict"  # the problem's title
    default_code = "idempotent_response_lost"


def _fingerprint(request: Request) -> str:
    body = json.dumps(request.data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


@contextmanager
def _one_at_a_time(operation: KeyedOperation) -> Iterator[None]:
    """Requests with the same key wait for each other (a session lock: no transaction)."""
    user_id = operation.user.pk if operation.user else None
    name = f"baton.idempotency:{user_id}:{operation.scope}:{operation.key}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [name])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [name])


def _replay(record: OperationKey) -> Response:
    stored = IdempotentResponse.objects.filter(operation=record).first()
    if stored is None:  # the first request failed between its commit and storing its answer
        raise ResponseLost(
            "The request with this Idempotency-Key was carried out, but its "
            "response was lost; look the result up instead of retrying."
        )
    body = json.loads(stored.body) if stored.body else None
    return Response(body, status=stored.status_code, headers={"Idempotent-Replayed": "true"})


def _remember(operation: KeyedOperation, response: Response) -> None:
    record = earlier_operation(operation)
    if record is None:
        logger.error(
            "%s did not hand its Idempotency-Key to the engine; the response is not kept",
            operation.scope,
        )
        return
    # Kept as DRF renders it (datetimes, decimals, UUIDs as text; keys in order), so that a
    # replay renders to the same JSON as the first response.
    body = JSONRenderer().render(response.data).decode()  # "" for no body
    IdempotentResponse.objects.create(operation=record, status_code=response.status_code, body=body)


def idempotent(view_method: ViewMethod) -> ViewMethod:
    """Wraps a view method that takes `operation_key` and passes it to the service it calls."""

    @wraps(view_method)
    def wrapper(self: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = request.headers.get(HEADER)
        user = as_user(request.user)
        if not key or user is None:
            return view_method(self, request, *args, operation_key=None, **kwargs)
        if len(key) > MAX_KEY_LENGTH:
            raise ValidationError({HEADER: f"At most {MAX_KEY_LENGTH} characters."})
        operation = KeyedOperation(
            scope=f"{request.method} {request.path}",
            key=key,
            user=user,
            fingerprint=_fingerprint(request),
        )
        with _one_at_a_time(operation):
            earlier = earlier_operation(operation)
            if earlier is not None:
                return _replay(earlier)
            try:
                response = view_method(self, request, *args, operation_key=operation, **kwargs)
            except OperationDoneBefore as done:
                return _replay(done.record)
            _remember(operation, response)
        return response

    return wrapper
