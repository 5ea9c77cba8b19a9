"""Connectors: what a service task calls. `http` ships with Baton; teams register their own.

    from engine.connectors import connector, ConnectorCall

    @connector("crm.create_customer")
    def create_customer(params: dict, call: ConnectorCall) -> dict:
        ...

A connector returns a JSON-serializable result, or raises `TransientError` (retried with
backoff) or `BusinessError` (thrown as a BPMN error with its code). Any other exception is
treated as transient. Modules named `connectors` in installed apps are imported at start-up.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ConnectorCall:
    """What a connector knows about the call it is making."""

    job_id: str
    idempotency_key: str
    attempt: int
    element_id: str
    instance_id: str


class TransientError(Exception):
    """A failure worth retrying: a timeout, a refused connection, a 5xx, a 429."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BusinessError(Exception):
    """A definite answer that the call failed; thrown as a BPMN error with `code`."""

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.details = details


ConnectorFunction = Callable[[dict[str, Any], ConnectorCall], Any]
_REGISTRY: dict[str, ConnectorFunction] = {}


def connector(name: str) -> Callable[[ConnectorFunction], ConnectorFunction]:
    """Register a function as the connector `name`."""

    def register(function: ConnectorFunction) -> ConnectorFunction:
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not function:
            raise ValueError(f"A connector named {name!r} is already registered.")
        _REGISTRY[name] = function
        return function

    return register


def get_connector(name: str) -> ConnectorFunction | None:
    return _REGISTRY.get(name)


def registered_connectors() -> list[str]:
    return sorted(_REGISTRY)
