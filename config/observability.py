"""The web edge of observing Baton: the request middleware and the `/metrics` endpoint.

`/metrics` answers in Prometheus's text format to a scraper that shows the bearer token
BATON_METRICS_TOKEN, or that connects from a network BATON_METRICS_ALLOW lists; anyone else
gets 403. With PROMETHEUS_MULTIPROC_DIR set (BATON_METRICS_DIR) it adds up what every process
(gunicorn workers, Celery pool children) wrote there; without it, it shows this process's
own metrics only.
"""

import ipaddress
import secrets
import time
from collections.abc import Callable
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

from engine.observability import context, metrics
from engine.selectors.queue_depths import QueueDepthCollector


class ObservabilityMiddleware:
    """Each request starts about no instance (log context) and its server time is observed
    by method, route pattern (never the path itself: ids would explode the series) and status."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        context.clear()
        began = time.perf_counter()
        response = self.get_response(request)
        match = request.resolver_match
        route = match.route if match is not None else "(unmatched)"
        metrics.HTTP_REQUEST_DURATION.labels(
            method=request.method or "", route=route, status=str(response.status_code)
        ).observe(time.perf_counter() - began)
        return response


@lru_cache(maxsize=8)
def _networks(
    entries: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _admitted(request: HttpRequest) -> bool:
    token = settings.BATON_METRICS_TOKEN
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and secrets.compare_digest(given.strip(), token):
            return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in _networks(tuple(settings.BATON_METRICS_ALLOW)))


def _registry() -> CollectorRegistry:
    directory = settings.BATON_METRICS_DIR
    if not directory:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    return registry


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _admitted(request):
        return HttpResponse(
            "Metrics need the bearer token (BATON_METRICS_TOKEN) or an allowed network "
            "(BATON_METRICS_ALLOW).\n",
            status=403,
            content_type="text/plain; charset=utf-8",
        )
    output = generate_latest(_registry())
    depths = CollectorRegistry()
    depths.register(QueueDepthCollector())
    output += generate_latest(depths)
    return HttpResponse(output, content_type=CONTENT_TYPE_LATEST)
