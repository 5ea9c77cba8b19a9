"""Reading connections: their settings as shown (secrets only by name), and their health."""

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import Count

from engine.actors import Person
from engine.connectors import limits
from engine.connectors.connections import ConnectionConfig
from engine.exceptions import NotFound
from engine.models import Connection, ConnectionEvent, ServiceJob
from engine.permissions import can_operate_connections, can_see_connections

RECENT_EVENTS = 20


def _require_reader(actor: Person | None) -> None:
    if not can_see_connections(actor):
        raise PermissionDenied("Only operators and designers may see connections.")


def connection_list(actor: Person | None) -> list[Connection]:
    _require_reader(actor)
    return list(Connection.objects.order_by("name"))


def _named(name: str) -> Connection:
    row = Connection.objects.filter(name=name).first()
    if row is None:
        raise NotFound(f"No connection named {name!r}.")
    return row


def visible_connection(actor: Person | None, name: str) -> Connection:
    """The connection `name`, for an operator or a designer."""
    _require_reader(actor)
    return _named(name)


def health_of(actor: Person | None, name: str) -> dict[str, Any]:
    """`connection_health` of the connection `name`, for an operator."""
    if not can_operate_connections(actor):
        raise PermissionDenied("Only operators may see the health of connections.")
    return connection_health(_named(name))


def connection_choices() -> list[dict[str, str]]:
    """What the modeler offers an http task: each connection's name and base URL."""
    return [
        {"name": name, "base_url": base_url}
        for name, base_url in Connection.objects.order_by("name").values_list("name", "base_url")
    ]


def waiting_jobs(names: list[str]) -> dict[str, dict[str, int]]:
    """For each connection, how many pending jobs wait for it, by what they wait for."""
    waiting: dict[str, dict[str, int]] = {name: {} for name in names}
    rows = (
        ServiceJob.objects.filter(status=ServiceJob.Status.PENDING, waiting_on__in=names)
        .values("waiting_on", "wait_reason")
        .annotate(count=Count("id"))
    )
    for row in rows:
        waiting[row["waiting_on"]][row["wait_reason"]] = row["count"]
    return waiting


def connection_health(row: Connection) -> dict[str, Any]:
    """Breaker state, current rate, slots in use, waiting jobs and the recent audit trail.
    When the limits' store cannot be read, `limits` says so instead of failing the page."""
    config = ConnectionConfig.of(row)
    try:
        state: dict[str, Any] = limits.health(config)
    except limits.redis.RedisError as exc:
        state = {"unavailable": f"The limits' Redis cannot be read ({type(exc).__name__})."}
    waiting = waiting_jobs([row.name])[row.name]
    events = ConnectionEvent.objects.filter(connection_name=row.name).select_related("actor")
    return {
        "name": row.name,
        **state,
        "waiting_jobs": sum(waiting.values()),
        "waiting_by_reason": waiting,
        "events": [
            {
                "type": event.type,
                "actor": event.actor.get_username() if event.actor else None,
                "at": event.created_at.isoformat(),
                "payload": event.payload,
            }
            for event in events.order_by("-created_at", "-id")[:RECENT_EVENTS]
        ],
    }
