"""Named connections as workers see them: a snapshot of each `Connection` row, cached per
process for `BATON_CONNECTIONS_CACHE_SECONDS`, and how a call that names one is expanded.

A service task names a connection with the parameter `connection` and gives a `path` (or a
relative `url`) under its base URL. `apply_connection` turns that into the plain parameters
of the `http` connector (url, headers, basic_auth, timeout, and `oauth2` for client
credentials) before secrets are resolved: the connection's secrets are written as
`secret:NAME` references at marked literal places, so that they are resolved, and masked,
exactly like the secrets a diagram names (engine/connectors/secrets.py).

A plain-URL call to the host and port of a connection's base URL shares that connection's
limits (`connection_of`), not its auth.
"""

import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from django.conf import settings

from engine.models import Connection

from . import BusinessError
from .outbound import SCHEME_PORTS
from .secrets import LITERALS_KEY, references

# The parameter that names a connection, and the one that opts in to a BPMN error instead
# of waiting while the connection's circuit breaker is open.
CONNECTION_PARAM = "connection"
ON_CIRCUIT_OPEN_PARAM = "on_circuit_open"
# Where `apply_connection` puts an OAuth2 connection's client credentials for the http
# connector. Only a connection sets it: the name is reserved (a diagram that writes it, or the
# former public name `oauth2`, is refused at job creation), and apply_connection drops it
# from the stored parameters before expanding them, so that a diagram can never point a
# connection's cached token at a URL of its own.
OAUTH2_PARAM = "$oauth2"
RESERVED_PARAMS = (OAUTH2_PARAM, "oauth2")
PERIOD_SECONDS: dict[str, float] = {"second": 1.0, "minute": 60.0}


def origin_of(url: str) -> str:
    """`host:port` of a URL (the scheme's port when it names none); "" when it has none."""
    try:
        parts = urlsplit(url)
        port = parts.port or SCHEME_PORTS.get(parts.scheme, 0)
    except ValueError:
        return ""
    return f"{parts.hostname.lower()}:{port}" if parts.hostname else ""


class UnknownConnection(LookupError):
    """A task names a connection that does not exist: an incident, fixed by an operator."""


@dataclass(frozen=True)
class ConnectionConfig:
    name: str
    base_url: str
    auth: str = Connection.Auth.NONE
    username: str = ""
    secret_name: str = ""
    api_key_header: str = "X-API-Key"
    token_url: str = ""
    scope: str = ""
    default_headers: dict[str, str] = field(default_factory=dict)
    timeout_seconds: float = 10.0
    connect_timeout_seconds: float | None = None
    rate_limit: int | None = None
    rate_window_seconds: float = 1.0
    max_concurrent: int | None = None
    breaker_failures: int | None = None
    breaker_error_rate: int | None = None
    breaker_window_seconds: float = 60.0
    breaker_min_calls: int = 10
    breaker_cooldown_seconds: float = 30.0

    @property
    def host(self) -> str:
        return origin_of(self.base_url)

    @property
    def has_breaker(self) -> bool:
        return bool(self.breaker_failures or self.breaker_error_rate)

    @property
    def is_limited(self) -> bool:
        return bool(self.rate_limit or self.max_concurrent or self.has_breaker)

    @classmethod
    def of(cls, row: Connection) -> "ConnectionConfig":
        return cls(
            name=row.name,
            base_url=row.base_url,
            auth=row.auth,
            username=row.username,
            secret_name=row.secret_name,
            api_key_header=row.api_key_header or "X-API-Key",
            token_url=row.token_url,
            scope=row.scope,
            default_headers={str(k): str(v) for k, v in (row.default_headers or {}).items()},
            timeout_seconds=row.timeout_seconds,
            connect_timeout_seconds=row.connect_timeout_seconds,
            rate_limit=row.rate_limit,
            rate_window_seconds=PERIOD_SECONDS.get(row.rate_period, 1.0),
            max_concurrent=row.max_concurrent,
            breaker_failures=row.breaker_failures,
            breaker_error_rate=row.breaker_error_rate,
            breaker_window_seconds=float(row.breaker_window_seconds),
            breaker_min_calls=row.breaker_min_calls,
            breaker_cooldown_seconds=row.breaker_cooldown_seconds,
        )


class _Cache:
    """Every connection, read at once (there are few) and kept for a few seconds."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loaded_at = float("-inf")
        self.by_name: dict[str, ConnectionConfig] = {}
        self.by_host: dict[str, ConnectionConfig] = {}

    def fresh(self) -> "_Cache":
        with self.lock:
            if time.monotonic() - self.loaded_at > settings.BATON_CONNECTIONS_CACHE_SECONDS:
                configs = [ConnectionConfig.of(row) for row in Connection.objects.all()]
                self.by_name = {c.name: c for c in configs}
                # A host served by several connections shares the limits of the first by name.
                self.by_host = {}
                for config in configs:
                    self.by_host.setdefault(config.host, config)
                self.loaded_at = time.monotonic()
        return self

    def clear(self) -> None:
        with self.lock:
            self.loaded_at = float("-inf")


_cache = _Cache()
forget_connections = _cache.clear


def connection_named(name: str) -> ConnectionConfig:
    """The connection `name`; a connection created a moment ago is found at once."""
    config = _cache.fresh().by_name.get(name)
    if config is None:
        row = Connection.objects.filter(name=name).first()
        if row is None:
            raise UnknownConnection(
                f"No connection named {name!r} exists. An operator creates it in the admin "
                "(Connections) or with POST /api/v1/connections/."
            )
        config = ConnectionConfig.of(row)
    return config


def connection_of(params: dict[str, Any]) -> ConnectionConfig | None:
    """The connection whose limits a call with these (stored) parameters meets: the one it
    names, else the one whose base URL has the host of its `url`; None for neither."""
    name = params.get(CONNECTION_PARAM)
    if isinstance(name, str) and name:
        try:
            return connection_named(name)
        except UnknownConnection:
            return None  # the connector reports it
    url = params.get("url")
    if not isinstance(url, str) or "://" not in url:
        return None
    origin = origin_of(url)
    return _cache.fresh().by_host.get(origin) if origin else None


def _joined(base_url: str, path: Any) -> str:
    text = "" if path is None else str(path)
    if "://" in text or text.startswith("//"):
        raise BusinessError(
            "HTTP_BAD_PARAMETERS",
            "With a connection, give a path under its base URL (`path`), not a full URL.",
        )
    if not text:
        return base_url
    if _climbs(text):
        raise BusinessError(
            "HTTP_BAD_PARAMETERS",
            "A connection's path may not contain '..' segments: it stays under the "
            "connection's base URL.",
        )
    return base_url.rstrip("/") + "/" + text.lstrip("/")


def _climbs(path: str) -> bool:
    """Whether the path part of `path` has a `..` segment, percent-encoded (even more than
    once) or not, with a slash or a backslash between segments (servers read either)."""
    text = path.split("?", 1)[0].split("#", 1)[0]
    for _ in range(4):  # an API may decode again what its proxy decoded
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    return any(segment == ".." for segment in text.replace("\\", "/").split("/"))


def _auth_parameters(config: ConnectionConfig, headers: dict[str, str]) -> dict[str, Any]:
    """The auth of a connection as plain parameters; secret values as references (resolved
    by the worker at the literal places returned in LITERALS_KEY)."""
    reference = f"secret:{config.secret_name}"
    if config.auth == Connection.Auth.BEARER:
        headers["Authorization"] = f"Bearer {reference}"
        return {LITERALS_KEY: [["headers", "Authorization"]]}
    if config.auth == Connection.Auth.API_KEY:
        headers[config.api_key_header] = reference
        return {LITERALS_KEY: [["headers", config.api_key_header]]}
    if config.auth == Connection.Auth.BASIC:
        return {
            "basic_auth": {"username": config.username, "password": reference},
            LITERALS_KEY: [["basic_auth", "password"]],
        }
    if config.auth == Connection.Auth.OAUTH2:
        return {
            OAUTH2_PARAM: {
                "connection": config.name,
                "token_url": config.token_url,
                "client_id": config.username,
                "client_secret": reference,
                "scope": config.scope,
            },
            LITERALS_KEY: [[OAUTH2_PARAM, "client_secret"]],
        }
    return {}


def apply_connection(stored: dict[str, Any]) -> dict[str, Any]:
    """The stored parameters of a job with its named connection expanded (unchanged when it
    names none). The task's own headers win over the connection's default headers; its own
    auth never replaces the connection's."""
    stored = {k: v for k, v in stored.items() if k not in RESERVED_PARAMS}
    name = stored.get(CONNECTION_PARAM)
    if not name:
        return stored
    config = connection_named(str(name))
    expanded = {k: v for k, v in stored.items() if k not in (CONNECTION_PARAM, "path")}
    expanded["url"] = _joined(config.base_url, stored.get("path", stored.get("url")))
    own_headers = stored.get("headers")
    headers = {**config.default_headers}
    if isinstance(own_headers, dict):
        headers.update({str(k): str(v) for k, v in own_headers.items()})
    # The connection's default headers name secrets as references (an operator wrote them):
    # resolved where the task's own headers did not replace them.
    default_secrets = [
        ["headers", name]
        for name, value in config.default_headers.items()
        if references(value) and not (isinstance(own_headers, dict) and name in own_headers)
    ]
    auth = _auth_parameters(config, headers)
    # The task's literal secret places stay, with those of the connection added.
    literals = [
        *(stored.get(LITERALS_KEY) or []),
        *default_secrets,
        *auth.pop(LITERALS_KEY, []),
    ]
    expanded.update(auth)
    expanded["headers"] = headers
    if literals:
        expanded[LITERALS_KEY] = literals
    if not stored.get("timeout"):
        expanded["timeout"] = config.timeout_seconds
    if config.connect_timeout_seconds:
        expanded.setdefault("connect_timeout", config.connect_timeout_seconds)
    return expanded
