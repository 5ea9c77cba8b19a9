"""Connectors: what a service task calls. `http` ships with Baton; teams register their own.

    from engine.connectors import connector, ConnectorCall

    @connector("crm.create_customer", description="Creates a customer in the CRM.")
    def create_customer(params: dict, call: ConnectorCall) -> dict:
        ...

The description (or the first line of the function's docstring) explains the connector in the
modeler's connector choice; `listed=False` keeps a name working for old diagrams without
offering it there (an alias).

A connector returns a JSON-serializable result, or raises `TransientError` (retried with
backoff), `BusinessError` (thrown as a BPMN error with its code) or `AwaitCallback` (the
called system accepted the work and answers later on the job's callback URL, see
`engine.connectors.callbacks`). Any other exception is treated as transient. Modules named
`connectors` in installed apps are imported at start-up.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

# Where a job's stored parameters keep the task's static headers (Camunda 8
# `zeebe:taskHeaders`): not a parameter; given to the connector as `ConnectorCall.headers`
# and to an external task's worker as its `headers`.
TASK_HEADERS_KEY = "$task_headers"


@dataclass(frozen=True)
class ConnectorCall:
    """What a connector knows about the call it is making."""

    job_id: str
    idempotency_key: str
    attempt: int
    element_id: str
    instance_id: str
    # The service task's static headers (Camunda 8 `<zeebe:header key= value=/>`).
    headers: dict[str, str] = field(default_factory=dict)
    # How often an operator retried the job before this call (its attempts count anew).
    retries: int = 0


class TransientError(Exception):
    """A failure worth retrying: a timeout, a refused connection, a 5xx, a 429."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(TransientError):
    """The API said to slow down (HTTP 429): with a connection's limits, the job waits for
    the `Retry-After` without using up an attempt, and the limiter slows down."""


class BusinessError(Exception):
    """A definite answer that the call failed; thrown as a BPMN error with `code`."""

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.details = details


class AwaitCallback(Exception):
    """The call was accepted (an HTTP 202): the job waits up to `timeout_seconds` for its
    callback (`POST /api/v1/jobs/{id}/callback/`); `accepted` is kept as the first answer."""

    def __init__(self, timeout_seconds: float, accepted: Any = None) -> None:
        super().__init__(f"waiting up to {timeout_seconds:g} s for a callback")
        self.timeout_seconds = timeout_seconds
        self.accepted = accepted


def stored_task_headers(parameters: dict[str, Any]) -> dict[str, str]:
    """The task headers kept in a job's stored parameters (see `TASK_HEADERS_KEY`)."""
    headers = parameters.get(TASK_HEADERS_KEY)
    return {str(k): str(v) for k, v in headers.items()} if isinstance(headers, dict) else {}


ConnectorFunction = Callable[[dict[str, Any], ConnectorCall], Any]
_REGISTRY: dict[str, ConnectorFunction] = {}
_DESCRIPTIONS: dict[str, str] = {}
_UNLISTED: set[str] = set()


def connector(
    name: str, *, description: str = "", listed: bool = True
) -> Callable[[ConnectorFunction], ConnectorFunction]:
    """Register a function as the connector `name`, explained by `description` (default: the
    first line of its docstring); `listed=False` for an alias the modeler does not offer."""

    def register(function: ConnectorFunction) -> ConnectorFunction:
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not function:
            raise ValueError(f"A connector named {name!r} is already registered.")
        _REGISTRY[name] = function
        doc = (function.__doc__ or "").strip().splitlines()
        _DESCRIPTIONS[name] = description or (doc[0] if doc else "")
        if not listed:
            _UNLISTED.add(name)
        return function

    return register


def connector_choices() -> list[dict[str, str]]:
    """The connectors a modeller may choose, each with what it does (aliases left out)."""
    return [
        {"name": name, "description": _DESCRIPTIONS.get(name, "")}
        for name in sorted(_REGISTRY)
        if name not in _UNLISTED
    ]


ConnectorLookup = Callable[[str], ConnectorFunction | None]
# Connectors that stand in for the registered ones in this context (a process test's mocks,
# baton.testing): asked first, by name; None falls back to the registry.
_substitutes: ContextVar[ConnectorLookup | None] = ContextVar("baton_connectors", default=None)


@contextmanager
def substituted_connectors(lookup: ConnectorLookup) -> Iterator[None]:
    """Within the block, `get_connector(name)` asks `lookup` first. A process test runs its
    jobs in-process with mocks this way; a substituted name that no connector is registered
    under is a connector (not an external task) while the block lasts."""
    token = _substitutes.set(lookup)
    try:
        yield
    finally:
        _substitutes.reset(token)


def get_connector(name: str) -> ConnectorFunction | None:
    lookup = _substitutes.get()
    substitute = lookup(name) if lookup is not None else None
    return substitute if substitute is not None else _REGISTRY.get(name)


def registered_connectors() -> list[str]:
    return sorted(_REGISTRY)
