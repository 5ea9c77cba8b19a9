"""Named connections: creating, changing and deleting them, and an operator's hand on their
circuit breakers. Every change is audited (`ConnectionEvent`) with its actor; secrets are
names of secret-store entries and never their values.

Also the jobs' side of limits: a job that meets a limit waits (`wait_for_limit`) with its
attempt given back, and the breaker's own transitions are audited with no actor."""

import re
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection as db_connection
from django.db import transaction
from django.utils import timezone

from engine.actors import Actor, Person, as_user
from engine.connectors import limits
from engine.connectors.connections import forget_connections
from engine.connectors.secrets import REFERENCE
from engine.exceptions import InvalidInput, NotFound, Unavailable
from engine.models import Connection, ConnectionEvent, ServiceJob
from engine.permissions import can_operate_connections

from .handover import hand_over_job_on_commit

# The fields a caller may set, in the order the admin and the API show them.
EDITABLE_FIELDS = (
    "name",
    "base_url",
    "auth",
    "username",
    "secret_name",
    "api_key_header",
    "token_url",
    "scope",
    "default_headers",
    "timeout_seconds",
    "connect_timeout_seconds",
    "rate_limit",
    "rate_period",
    "max_concurrent",
    "breaker_failures",
    "breaker_error_rate",
    "breaker_window_seconds",
    "breaker_min_calls",
    "breaker_cooldown_seconds",
)
NEEDS_SECRET = {
    Connection.Auth.BEARER,
    Connection.Auth.BASIC,
    Connection.Auth.API_KEY,
    Connection.Auth.OAUTH2,
}


# Headers whose values are credentials by their name: a connection gives them only as secret
# references (`Bearer secret:CRM_TOKEN`), never in clear, since a connection's settings are
# shown to designers and kept in its audit events.
CREDENTIAL_HEADER = re.compile(r"authorization|token|key|secret|cookie|passw|credential", re.I)


def _header_errors(headers: Any) -> str:
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        return "Give an object of header names to text values."
    in_clear = sorted(
        name
        for name, value in headers.items()
        if CREDENTIAL_HEADER.search(name) and not REFERENCE.search(value)
    )
    if in_clear:
        return (
            f"{', '.join(in_clear)}: a credential is given as a secret reference "
            "(e.g. Bearer secret:CRM_TOKEN), never in clear."
        )
    return ""


def require_connection_operator(actor: Person | None, action: str) -> None:
    if not can_operate_connections(actor):
        raise PermissionDenied(f"Only operators may {action}.")


MAX_COUNT = 1_000_000_000
# The one statement of each number's bounds, whichever edge (API, admin) sets it:
# field -> ((lowest, highest, the lowest excluded?, may be empty?), message).
BOUNDS: dict[str, tuple[tuple[float, float, bool, bool], str]] = {
    "timeout_seconds": ((0, 300, True, False), "More than 0 and at most 300 seconds."),
    "connect_timeout_seconds": (
        (0, 300, True, True),
        "Empty (the timeout), or more than 0 and at most 300 seconds.",
    ),
    **{
        name: ((1, MAX_COUNT, False, True), "Leave it empty for no limit, or give 1 or more.")
        for name in ("rate_limit", "max_concurrent", "breaker_failures")
    },
    "breaker_error_rate": ((1, 100, False, True), "Empty, or a percentage from 1 to 100."),
    "breaker_window_seconds": ((1, 86_400, False, False), "1 to 86,400 seconds."),
    "breaker_min_calls": ((1, MAX_COUNT, False, False), "1 or more calls."),
    "breaker_cooldown_seconds": (
        (0, 86_400, True, False),
        "More than 0 and at most 86,400 seconds.",
    ),
}


def _within(value: Any, bounds: tuple[float, float, bool, bool]) -> bool:
    lowest, highest, excluded, optional = bounds
    if value is None:
        return optional
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    above = value > lowest if excluded else value >= lowest
    return above and value <= highest  # NaN is neither


def rule_errors(row: Connection) -> dict[str, str]:
    """The rules the model's field types do not say: {field: message}."""
    header_problem = _header_errors(row.default_headers)
    broken = [
        (
            row.auth in NEEDS_SECRET and not row.secret_name,
            "secret_name",
            "This auth needs the name of a secret-store entry.",
        ),
        (
            bool(row.secret_name) and not REFERENCE.fullmatch(f"secret:{row.secret_name}"),
            "secret_name",
            "Give the name of a secret-store entry (e.g. CRM_TOKEN).",
        ),
        (
            row.auth == Connection.Auth.BASIC and not row.username,
            "username",
            "Basic auth needs a user name.",
        ),
        (
            row.auth == Connection.Auth.OAUTH2 and not (row.token_url and row.username),
            "token_url",
            "OAuth2 needs a token URL and a client id (username).",
        ),
        (
            row.auth == Connection.Auth.API_KEY and not row.api_key_header,
            "api_key_header",
            "Name the header that carries the API key.",
        ),
        (bool(header_problem), "default_headers", header_problem),
    ]
    broken += [
        (not _within(getattr(row, name), bounds), name, message)
        for name, (bounds, message) in BOUNDS.items()
    ]
    errors: dict[str, str] = {}
    for is_broken, field, message in broken:
        if is_broken:
            errors.setdefault(field, message)
    return errors


def _validated(row: Connection) -> None:
    try:
        row.full_clean()
        errors: dict[str, Any] = {}
    except ValidationError as exc:
        errors = {field: " ".join(messages) for field, messages in exc.message_dict.items()}
    errors.update({k: v for k, v in rule_errors(row).items() if k not in errors})
    if errors:
        raise InvalidInput("The connection is not valid.", errors=errors)


def _audit(row: Connection | None, name: str, type: str, actor: Actor, payload: Any) -> None:
    ConnectionEvent.objects.create(
        connection=row, connection_name=name, type=type, actor=as_user(actor), payload=payload
    )


def _values(row: Connection) -> dict[str, Any]:
    return {name: getattr(row, name) for name in EDITABLE_FIELDS}


def create_connection(*, actor: Person, values: dict[str, Any]) -> Connection:
    require_connection_operator(actor, "create connections")
    unknown = set(values) - set(EDITABLE_FIELDS)
    if unknown:
        raise InvalidInput("Unknown fields.", errors={k: "Unknown field." for k in unknown})
    row = Connection(**values)
    _validated(row)
    with transaction.atomic():
        row.save()
        _audit(row, row.name, "created", actor, {"values": _values(row)})
    forget_connections()
    return row


def get_connection(name: str) -> Connection:
    row = Connection.objects.filter(name=name).first()
    if row is None:
        raise NotFound(f"No connection named {name!r}.")
    return row


def update_connection(*, actor: Person, name: str, values: dict[str, Any]) -> Connection:
    require_connection_operator(actor, "change connections")
    unknown = set(values) - set(EDITABLE_FIELDS)
    if unknown:
        raise InvalidInput("Unknown fields.", errors={k: "Unknown field." for k in unknown})
    with transaction.atomic():
        row = Connection.objects.select_for_update(no_key=True).filter(name=name).first()
        if row is None:
            raise NotFound(f"No connection named {name!r}.")
        before = _values(row)
        for field, value in values.items():
            setattr(row, field, value)
        _validated(row)
        row.save()
        changed = {k: [before[k], v] for k, v in _values(row).items() if before[k] != v}
        if changed:
            _audit(row, row.name, "changed", actor, {"changed": changed})
    forget_connections()
    return row


def delete_connection(*, actor: Person, name: str) -> None:
    require_connection_operator(actor, "delete connections")
    with transaction.atomic():
        row = get_connection(name)
        _audit(None, name, "deleted", actor, {"values": _values(row)})
        row.delete()
    forget_connections()


# An operator's close or reset hands this many waiting jobs over at once (the rest wake when
# their wait ends).
WAKE_AT_MOST = 1000
BREAKER_ACTIONS = {
    "open": limits.hold_open,
    "close": limits.close,
    "reset": limits.reset,
}


def operate_breaker(*, actor: Person, name: str, action: str) -> None:
    """An operator holds the breaker open, closes it, or resets the connection's limits."""
    require_connection_operator(actor, "operate circuit breakers")
    if action not in BREAKER_ACTIONS:
        raise InvalidInput(
            f"Unknown action {action!r}.", errors={"action": "One of open, close, reset."}
        )
    row = get_connection(name)
    try:
        BREAKER_ACTIONS[action](row.name)
    except limits.redis.RedisError as exc:
        raise Unavailable(
            f"The circuit breaker cannot be changed now: the limits' Redis cannot be reached "
            f"({type(exc).__name__}). Nothing changed; try again in a moment."
        ) from None
    with transaction.atomic():
        _audit(row, row.name, f"breaker_{action}", actor, {})
        if action != "open":
            _wake_waiting_jobs(row.name)


def _wake_waiting_jobs(name: str) -> None:
    """Jobs that wait for the connection may try again now (after an operator closed or reset
    its breaker) rather than when their wait ends."""
    waiting = list(
        ServiceJob.objects.select_for_update(no_key=True, skip_locked=True)
        .filter(status=ServiceJob.Status.PENDING, waiting_on=name)
        .values_list("id", flat=True)[:WAKE_AT_MOST]
    )
    ServiceJob.objects.filter(pk__in=waiting).update(next_attempt_at=timezone.now())
    for job_id in waiting:
        hand_over_job_on_commit(str(job_id))


def breaker_changed(name: str, transition: str) -> None:
    """The breaker opened or closed by itself (audited with no actor)."""
    row = Connection.objects.filter(name=name).first()
    kind = "breaker_opened" if transition == "open" else "breaker_closed"
    _audit(row, name, kind, None, {"automatic": True})


# A job that meets a limit goes back to pending with its attempt given back, due when it may
# run; the claim clears `waiting_on` again.
_WAIT_SQL = """
    UPDATE engine_servicejob
       SET status = 'pending', attempt = attempt - 1, started_at = NULL,
           next_attempt_at = now() + make_interval(secs => %s),
           waiting_on = %s, wait_reason = %s, waits = waits + 1, updated_at = now()
     WHERE id = %s AND status = 'running' AND attempt = %s
"""


def wait_for_limit(job_id: str, attempt: int, name: str, reason: str, seconds: float) -> bool:
    """Put the claimed job back to wait `seconds` for the connection `name`; False when the
    job is no longer this claim's (the sweep handed it on)."""
    with db_connection.cursor() as cursor:
        cursor.execute(_WAIT_SQL, [seconds, name, reason[:200], job_id, attempt])
        return cursor.rowcount == 1
