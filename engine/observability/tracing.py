"""OpenTelemetry traces: on when the standard OTEL_* environment asks for an exporter, off
(the API's no-op spans only) when it does not.

On, a trace follows a piece of work from the REST call that starts or completes it (Django's
instrumentation), through the Celery message (the task headers carry the W3C trace context)
and the worker's run of the job, to the outbound HTTP call (httpx's instrumentation sends
`traceparent` to the called API). Spans carry `baton.instance_id`, `baton.element_id` and
`baton.job_id` (context.bind).

Which exporter: OTEL_TRACES_EXPORTER (`otlp`, meaning OTLP over HTTP/protobuf, or `console`,
comma-separated), or OTLP when only OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT is set. The exporter
itself reads the rest (endpoint, headers, timeout), the SDK the sampler
(OTEL_TRACES_SAMPLER) and the resource (OTEL_SERVICE_NAME, default `baton`,
OTEL_RESOURCE_ATTRIBUTES). OTEL_SDK_DISABLED=true turns it off.
"""

import os
import threading
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Tracer

_lock = threading.Lock()
_provider: Any = None
_EXPORTER_ALIASES = {"otlp": "otlp_proto_http"}


def tracing_configured(environ: Mapping[str, str]) -> bool:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def _exporters(environ: Mapping[str, str]) -> list[Any]:
    names = [
        name.strip().lower()
        for name in (environ.get("OTEL_TRACES_EXPORTER") or "otlp").split(",")
        if name.strip() and name.strip().lower() != "none"
    ]
    found = {point.name: point for point in entry_points(group="opentelemetry_traces_exporter")}
    exporters = []
    for name in names:
        point = found.get(_EXPORTER_ALIASES.get(name, name))
        if point is None:
            raise ValueError(
                f"OTEL_TRACES_EXPORTER names {name!r}; Baton has {', '.join(sorted(found))}."
            )
        exporters.append(point.load()())
    return exporters


def setup_tracing(environ: Mapping[str, str] | None = None) -> bool:
    """Start tracing in this process if the environment asks for it (once); whether it is on.
    Forked children (gunicorn and Celery pool processes) keep it: the SDK's batch processor
    restarts its thread after a fork."""
    environ = os.environ if environ is None else environ
    if not tracing_configured(environ):
        return False
    with _lock:
        if _provider is not None:
            return True
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        attributes = {} if environ.get("OTEL_SERVICE_NAME") else {"service.name": "baton"}
        provider = TracerProvider(resource=Resource.create(attributes))
        for exporter in _exporters(environ):
            provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        instrument(provider)
    return True


def instrument(provider: Any) -> None:
    """Trace Django requests, Celery messages and tasks, and httpx calls into `provider` (the
    tests give one with an in-memory exporter)."""
    global _provider
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    _provider = provider
    DjangoInstrumentor().instrument(tracer_provider=provider)
    CeleryInstrumentor().instrument(tracer_provider=provider)
    HTTPXClientInstrumentor().instrument(
        tracer_provider=provider, request_hook=_masked_url, async_request_hook=_async_masked_url
    )


def _masked_url(span: Any, request: Any) -> None:
    """An outbound call's span keeps its URL as an incident shows it (engine.connectors.http
    shown_url): a connector's URL may carry a resolved secret in its path or query, which
    must not reach the trace collector."""
    from engine.connectors.http import shown_url

    if span is None or not span.is_recording():
        return
    url = shown_url(str(getattr(request, "url", "") or ""))
    for attribute in ("http.url", "url.full"):
        span.set_attribute(attribute, url)


async def _async_masked_url(span: Any, request: Any) -> None:
    _masked_url(span, request)


def uninstrument() -> None:
    global _provider
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    for instrumentor in (DjangoInstrumentor(), CeleryInstrumentor(), HTTPXClientInstrumentor()):
        instrumentor.uninstrument()
    _provider = None


def tracer() -> Tracer:
    """Baton's own tracer: a no-op one while tracing is off."""
    provider = _provider
    if provider is None:
        return trace.get_tracer("baton")
    tracer_: Tracer = provider.get_tracer("baton")
    return tracer_
