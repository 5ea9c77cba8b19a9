"""Operations that happen once per key: the engine's half of idempotency.

A service that takes an `operation_key` reserves it first thing in its own transaction: the
key is stored with the operation's changes or, when the operation fails, rolled back with
them (a retry then acts afresh). A concurrent request with the same key waits on the unique
index until the first transaction ends. Replaying the first *response* is the API's part
(`api.idempotency`); the engine only keeps what an operation did when its callers need it
again (the result of a message).
"""

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.db import connection

from engine.exceptions import Conflict, InvalidInput
from engine.models import OperationKey


@dataclass(frozen=True)
class KeyedOperation:
    """An operation its caller asks to happen once for `key` within `scope`."""

    scope: str
    key: str
    user: User | None = None
    fingerprint: str = ""  # of the request; empty: every request with the key is the same


class OperationKeyReused(InvalidInput):
    """The key came with another request than the one it was first used for."""


class OperationDoneBefore(Conflict):
    """The operation already happened with this key; `record` says what it did."""

    def __init__(self, record: OperationKey) -> None:
        super().__init__("This operation was already done with this key.")
        self.record = record


def _records(operation: KeyedOperation) -> Any:
    return OperationKey.objects.filter(
        user=operation.user, scope=operation.scope, key=operation.key
    )


def _same_request(record: OperationKey, operation: KeyedOperation) -> OperationKey:
    if record.fingerprint != operation.fingerprint:
        raise OperationKeyReused(
            "This Idempotency-Key was already used with a different request body."
        )
    return record


def earlier_operation(operation: KeyedOperation) -> OperationKey | None:
    """The record of the operation done before with this key, None if there is none yet.
    Raises `OperationKeyReused` when the key was used for another request."""
    record = _records(operation).first()
    return None if record is None else _same_request(record, operation)


def reserve_operation_key(operation: KeyedOperation) -> OperationKey | None:
    """Reserve the key in the caller's transaction: None when this is the first time (act),
    the earlier record when the operation was done before. Raises `OperationKeyReused`."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO engine_operationkey (user_id, scope, key, fingerprint, created_at) "
            "VALUES (%s, %s, %s, %s, now()) ON CONFLICT DO NOTHING RETURNING id",
            [
                operation.user.pk if operation.user else None,
                operation.scope,
                operation.key,
                operation.fingerprint,
            ],
        )
        if cursor.fetchone() is not None:
            return None
    return _same_request(_records(operation).get(), operation)


def reserve_once(operation: KeyedOperation | None) -> None:
    """Reserve the key of an operation that must not happen twice; raises
    `OperationDoneBefore` when it did happen (nothing changes then)."""
    if operation is None:
        return
    earlier = reserve_operation_key(operation)
    if earlier is not None:
        raise OperationDoneBefore(earlier)


def remember_outcome(operation: KeyedOperation, outcome: Any) -> None:
    """Keep what the operation did, for the duplicates that come with the key later."""
    _records(operation).update(outcome=outcome)
