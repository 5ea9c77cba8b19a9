"""Remembering responses to requests that carry an `Idempotency-Key`.

Call both functions inside the transaction that performs the request's operation: the key
is reserved with a row lock, so a concurrent retry waits and then sees the stored response;
if the operation fails, the reservation rolls back with it and a retry acts afresh.
"""
from typing import Any

from django.contrib.auth.models import User

from engine.exceptions import EngineError
from engine.models import IdempotencyRecord


class IdempotencyKeyReused(EngineError):
    status = 422
    title = "Idempotency-Key reused"


def reserve_idempotency_key(
    *, user: User, scope: str, key: str, fingerprint: str
) -> IdempotencyRecord | None:
    """Reserve `key` for this request. Returns the earlier record when the same request was
    already answered (replay it), None when this request is the first (act, then remember).
    Raises `IdempotencyKeyReused` when the key came with a different body."""
    IdempotencyRecord.objects.bulk_create(
        [IdempotencyRecord(user=user, scope=scope, key=key, fingerprint=fingerprint)],
        ignore_conflicts=True,
    )
    record = IdempotencyRecord.objects.select_for_update().get(user=user, scope=scope, key=key)
    if record.fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used with a different request body."
        )
    return record if record.status_code is not None else None


def remember_response(
    *, user: User, scope: str, key: str, status_code: int, body: Any
) -> None:
    IdempotencyRecord.objects.filter(user=user, scope=scope, key=key).update(
        status_code=status_code, response=body
    )
