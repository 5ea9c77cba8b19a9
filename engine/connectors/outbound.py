"""The outbound policy: where a connector may connect.

Checked for every call of the `http` connector before anything is sent (scheme, host name,
port, and every address the name resolves to), and again when a connection is opened, on
the very addresses it is then opened to: a name that answers differently the second time
(DNS rebinding) cannot slip a refused address in. Registered connectors use the same rule:
`check_url(url)` or `checked_addresses(host, port)` before they connect, or `client()` for
an httpx client whose connections pass the policy.

Always refused: schemes other than http and https; link-local and cloud metadata addresses;
unspecified and multicast addresses; the hosts and ports of Baton's own database and broker
(`DATABASES`, `CELERY_BROKER_URL`, and the limits' `BATON_LIMITS_REDIS_URL`) and of the other
services `BATON_OWN_SERVICES` names.
With `BATON_HTTP_ALLOW_PRIVATE` off (the default; the development and test settings turn it
on) also every address that is not public (loopback,
private, shared, reserved) unless `BATON_HTTP_ALLOW` lists it: CIDRs and host names
(`*.example.com` for subdomains), each optionally with a port (`api.internal:8443`,
`[fd00::1]:443`). An IPv6 address that carries an IPv4 address (IPv4-compatible, -mapped and
-translated, NAT64, 6to4, Teredo) is refused when either of the two is.

A refusal is `OutboundRefused`, a definite failure with the code HTTP_REFUSED: never retried.
"""

import functools
import ipaddress
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from . import BusinessError, TransientError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SCHEME_PORTS = {"http": 80, "https": 443}
# Refused whatever the settings, with the reason given. The whole link-local ranges are
# here: the cloud metadata services listen there.
METADATA_NETWORKS: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(network), reason)
    for network, reason in (
        # link-local; AWS, GCP, Azure, OpenStack metadata at 169.254.169.254
        ("169.254.0.0/16", "link-local (metadata)"),
        ("fe80::/10", "link-local (metadata)"),  # link-local (IPv6)
        ("100.100.100.200/32", "a cloud metadata address"),  # Alibaba Cloud metadata
        ("fd00:ec2::254/128", "a cloud metadata address"),  # AWS metadata over IPv6
        ("168.63.129.16/32", "a cloud metadata address"),  # Azure wire server
    )
)
METADATA_NAMES = frozenset({"metadata.google.internal", "metadata.goog", "metadata.azure.com"})
# Default ports of the database and broker URL schemes Baton runs on.
SERVICE_PORTS = {
    "postgres": 5432,
    "postgresql": 5432,
    "redis": 6379,
    "rediss": 6379,
    "amqp": 5672,
    "pyamqp": 5672,
    "amqps": 5671,
}
# Own-service addresses are resolved again after this long (a database may move).
SERVICE_REFRESH_SECONDS = 300


class OutboundRefused(BusinessError):
    """A call the outbound policy does not allow; nothing was sent."""

    def __init__(self, reason: str) -> None:
        super().__init__("HTTP_REFUSED", f"refused by the outbound policy: {reason}")


@dataclass(frozen=True)
class _Allowed:
    network: IPNetwork | None
    name: str  # a host name, or "*.example.com"; "" for a network
    port: int | None

    def admits(self, host: str, address: IPAddress, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            return address in self.network
        return host == self.name or (self.name.startswith("*.") and host.endswith(self.name[1:]))


@dataclass(frozen=True)
class _Service:
    label: str  # "database", "broker"
    name: str
    addresses: frozenset[IPAddress]
    port: int

    def matches(self, host: str, address: IPAddress, port: int) -> bool:
        if port != self.port:
            return False
        if host == self.name or address in self.addresses:
            return True
        # A service on this machine answers on every local address of its port.
        return any(_is_local(a) for a in self.addresses) and _is_local(address)


@dataclass(frozen=True)
class Policy:
    allow_private: bool
    allowed: tuple[_Allowed, ...]
    services: tuple[_Service, ...]

    def refusal(self, host: str, address: IPAddress, port: int) -> str | None:
        """Why a connection to `address` (for `host`) on `port` is refused, or None. An IPv6
        address that carries an IPv4 address is refused when either of them is."""
        reason = self._refusal(host, address, port)
        if reason:
            return reason
        for inner in _embedded_ipv4(address):
            inner_host = str(inner) if _is_address(host) else host
            reason = self._refusal(inner_host, inner, port)
            if reason:
                return f"{address} carries the IPv4 address {inner}: {reason}"
        return None

    def _refusal(self, host: str, address: IPAddress, port: int) -> str | None:
        shown = str(address) if host == str(address) else f"{host} ({address})"
        for network, reason in METADATA_NETWORKS:
            if address in network:
                return f"{shown} is {reason}"
        if address.is_unspecified or address.is_multicast:
            return f"{shown} is not a unicast address"
        for service in self.services:
            if service.matches(host, address, port):
                return f"{shown} port {port} is Baton's own {service.label}"
        if self.allow_private or address.is_global:
            return None
        if any(entry.admits(host, address, port) for entry in self.allowed):
            return None
        kind = (
            "loopback"
            if address.is_loopback
            else ("private" if address.is_private else "not a public address")
        )
        return f"{shown} is {kind}; list it in BATON_HTTP_ALLOW to allow it"


# -- building the policy from the settings ------------------------------------------------------


def _is_local(address: IPAddress) -> bool:
    return address.is_loopback or address.is_unspecified or address in _own_addresses()


@functools.lru_cache(maxsize=1)
def _own_addresses() -> frozenset[IPAddress]:
    try:
        return frozenset(_lookup(socket.gethostname(), 0))
    except OSError:
        return frozenset()


def _normalized(address: IPAddress) -> IPAddress:
    """An IPv4-mapped address (::ffff:a.b.c.d) is the IPv4 address itself to a socket."""
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return mapped or address


# IPv6 networks whose last 32 bits are an IPv4 address: IPv4-translated (SIIT, RFC 2765),
# the NAT64 well-known prefix (RFC 6052) and the local-use NAT64 block (RFC 8215), read as
# a /96 prefix as DNS64 synthesizes it.
_LAST_32_BITS_IPV4 = tuple(
    ipaddress.ip_network(n)
    for n in (
        "::ffff:0:0:0/96",
        "64:ff9b::/96",
        "64:ff9b:1::/48",
    )
)


def _embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries, in the forms that can lead to them:
    IPv4-compatible (::a.b.c.d), IPv4-mapped and -translated (::ffff:a.b.c.d,
    ::ffff:0:a.b.c.d), NAT64 (64:ff9b::/96, 64:ff9b:1::/48), 6to4 (2002::/16) and
    Teredo (server and client)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    value = int(address)
    found: list[ipaddress.IPv4Address] = []
    if 1 < value < 2**32:  # IPv4-compatible; not :: and ::1
        found.append(ipaddress.IPv4Address(value))
    if address.ipv4_mapped:
        found.append(address.ipv4_mapped)
    if any(address in network for network in _LAST_32_BITS_IPV4):
        found.append(ipaddress.IPv4Address(value & 0xFFFFFFFF))
    if address.sixtofour:
        found.append(address.sixtofour)
    if address.teredo:
        found += address.teredo
    return list(dict.fromkeys(found))


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _host_name(host: str) -> str:
    """A host name as the policy compares it: lower case, without the root's trailing dot."""
    return host.lower().rstrip(".")


def _lookup(host: str, port: int) -> list[IPAddress]:
    try:
        return [_normalized(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        pass
    found: list[IPAddress] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = _normalized(ipaddress.ip_address(sockaddr[0]))
        if address not in found:
            found.append(address)
    return found


def _service(label: str, host: str, port: int) -> _Service:
    try:
        addresses = frozenset(_lookup(host, port))
    except (OSError, UnicodeError):
        addresses = frozenset()  # still refused by name
    return _Service(label, _host_name(host), addresses, port)


def _own_services(
    databases: Iterable[tuple[str, str, str]], broker: str, others: Iterable[str] = ()
) -> list[_Service]:
    """Baton's own database and broker (TCP ones: a unix socket is beyond any http call), and
    the `others` named as host:port (`BATON_OWN_SERVICES`: a cache, a search index...)."""
    services = [_service("service", *_host_and_port(entry)) for entry in others]
    for engine, host, port in databases:
        # No host, or a directory, is a unix socket: nothing an http call can reach.
        if host and not host.startswith("/"):
            default = 5432 if "postgres" in engine else 0
            if port or default:
                services.append(_service("database", host, int(port or default)))
    for url in broker.split(";"):
        parts = urlsplit(url.strip())
        broker_port = parts.port or SERVICE_PORTS.get(parts.scheme, 0)
        if parts.hostname and broker_port:
            services.append(_service("broker", parts.hostname, broker_port))
    return services


def _split_entry(entry: str, setting: str) -> tuple[str, int | None]:
    """ "host", "host:port", "[v6]" or "[v6]:port" of a setting's list."""
    host, port = entry, ""
    if entry.startswith("["):  # [v6 address or network]:port
        host, _, rest = entry[1:].partition("]")
        port = rest.removeprefix(":")
    elif entry.count(":") == 1:  # host:port (a bare IPv6 entry has more colons)
        host, port = entry.split(":")
    if port and not port.isdigit():
        raise ImproperlyConfigured(f"{setting}: the port of {entry!r} is not a number")
    return host, int(port) if port else None


def _host_and_port(entry: str) -> tuple[str, int]:
    host, port = _split_entry(entry, "BATON_OWN_SERVICES")
    if port is None:
        raise ImproperlyConfigured(f"BATON_OWN_SERVICES: {entry!r} needs a port (host:port)")
    return host, port


def _allowed(entry: str) -> _Allowed:
    host, number = _split_entry(entry, "BATON_HTTP_ALLOW")
    try:
        network = ipaddress.ip_network(host, strict=False)
    except ValueError:
        return _Allowed(None, _host_name(host), number)
    return _Allowed(network, "", number)


@functools.lru_cache(maxsize=16)
def _build(key: tuple[Any, ...]) -> Policy:
    allow_private, allow, databases, broker, others, _epoch = key
    return Policy(
        allow_private=allow_private,
        allowed=tuple(_allowed(entry) for entry in allow),
        services=tuple(_own_services(databases, broker, others)),
    )


def current_policy() -> Policy:
    """The policy of the current settings (built once per setting values, services
    resolved again every SERVICE_REFRESH_SECONDS)."""
    allow = settings.BATON_HTTP_ALLOW
    if isinstance(allow, str):
        allow = allow.split(",")
    databases = tuple(
        (str(db.get("ENGINE") or ""), str(db.get("HOST") or ""), str(db.get("PORT") or ""))
        for db in settings.DATABASES.values()
    )
    others = getattr(settings, "BATON_OWN_SERVICES", ())
    return _build(
        (
            bool(settings.BATON_HTTP_ALLOW_PRIVATE),
            tuple(entry.strip() for entry in allow if entry.strip()),
            databases,
            # The limits' Redis (connections) is refused like the broker.
            ";".join(
                str(url)
                for url in (
                    settings.CELERY_BROKER_URL,
                    getattr(settings, "BATON_LIMITS_REDIS_URL", ""),
                )
                if url
            ),
            tuple(entry.strip() for entry in others if entry.strip()),
            int(time.monotonic() // SERVICE_REFRESH_SECONDS),
        )
    )


# -- checks -----------------------------------------------------------------------------------


def checked_addresses(host: str, port: int) -> list[str]:
    """The addresses of `host` to connect to on `port`: resolved once, every one of them
    checked. Connect to these, not to the name again. OutboundRefused if any is refused
    (a name with one refused address is refused), TransientError if the name does not
    resolve."""
    name = _host_name(host)
    if name in METADATA_NAMES:
        raise OutboundRefused(f"{host} is a cloud metadata service")
    try:
        addresses = _lookup(name, port)
    except (OSError, UnicodeError):
        raise TransientError(f"Could not resolve the host name {host}") from None
    policy = current_policy()
    for address in addresses:
        reason = policy.refusal(name, address, port)
        if reason:
            raise OutboundRefused(reason)
    if not addresses:
        raise TransientError(f"The host name {host} has no address")
    return [str(address) for address in addresses]


def check_url(url: str) -> None:
    """Refuse (OutboundRefused) a URL the policy does not allow, before any connection."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise BusinessError("HTTP_BAD_PARAMETERS", "The url is not a valid URL.") from None
    if parsed.scheme not in SCHEME_PORTS:
        raise OutboundRefused(
            f"the scheme {parsed.scheme or '(none)'!r} is not allowed (http and https only)"
        )
    host = parsed.raw_host.decode("ascii")
    if not host:
        raise OutboundRefused("the url names no host")
    checked_addresses(host, parsed.port or SCHEME_PORTS[parsed.scheme])


# -- an httpx client whose every connection passes the policy ----------------------------------


class _PolicyBackend(httpcore.SyncBackend):
    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = checked_addresses(host, port)
        except TransientError as exc:
            raise httpcore.ConnectError(str(exc)) from None
        failure = httpcore.ConnectError(f"Could not connect to {host}")
        for address in addresses:
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                failure = exc
        raise failure


class PolicyTransport(httpx.HTTPTransport):
    """httpx's transport, connecting only to addresses the policy checked. It uses no proxy
    from the environment: a proxy would hide the target from the policy."""

    def __init__(self) -> None:
        ssl_context = httpx.create_ssl_context()  # honours SSL_CERT_FILE / SSL_CERT_DIR
        super().__init__(verify=ssl_context)
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=5.0,
            network_backend=_PolicyBackend(),
        )


# Client options that would put in transports of their own, connecting without the policy.
BYPASSING_OPTIONS = ("proxy", "mounts", "transport")


def client(**options: Any) -> httpx.Client:
    """An httpx client for connectors: the outbound policy applies to every connection
    (redirects are not followed unless asked; each hop then opens its own checked one).
    OutboundRefused for a proxy, mounts or a transport: they would connect around it."""
    bypassing = [name for name in BYPASSING_OPTIONS if options.pop(name, None)]
    if bypassing:
        raise OutboundRefused(
            f"outbound.client() takes no {', '.join(bypassing)}: "
            "its connections would not pass the policy"
        )
    options.setdefault("follow_redirects", False)
    return httpx.Client(transport=PolicyTransport(), **options)
