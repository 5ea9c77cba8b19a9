"""Observing Baton: Prometheus metrics at /metrics, OpenTelemetry traces, JSON log lines
with the ids of the work they are about (README, "Observing Baton")."""

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun
from django.db import connections
from django.test import Client, override_settings
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

from config.celery import app
from engine.connectors import ConnectorCall, connector
from engine.models import ProcessInstance, ServiceJob
from engine.observability import tracing
from engine.observability.context import LogContextFilter
from engine.observability.logs import JsonFormatter
from engine.services import start_instance
from engine.services.job_runs import execute_service_job
from processes.services import deploy
from processes.validation import UploadedFile
from tests.engine.service_diagrams import sequence, service_task
from tests.engine.service_fixtures import (
    FakeApi,
    Reply,
    Workers,
    jobs_for_no_worker,
    settle,
    wait_until,
)

TOKEN = "metrics-scrape-token-3f9a"


def deploy_xml(key: str, xml: str) -> None:
    deploy(name=key, files=[UploadedFile(f"{key}.bpmn", xml.encode())], actor=None)


def scrape(token: str | None = None) -> Any:
    headers = {"Authorization": token} if token else {}
    return Client().get("/metrics", headers=headers)


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples `name` whose labels include `labels` (0 when none)."""
    return sum(v for n, found, v in samples(text) if n == name and labels.items() <= found.items())


# --- who may scrape ----------------------------------------------------------------------


@pytest.mark.django_db
@override_settings(BATON_METRICS_TOKEN=TOKEN, BATON_METRICS_ALLOW=[])
def test_metrics_need_the_token() -> None:
    assert scrape().status_code == 403
    assert scrape("Bearer not-the-token").status_code == 403
    assert scrape(f"Token {TOKEN}").status_code == 403
    answer = scrape(f"Bearer {TOKEN}")
    assert answer.status_code == 200
    text = answer.content.decode()
    assert answer["Content-Type"].startswith("text/plain; version=")
    # The queue depths are read at the scrape; a fresh database has nothing waiting.
    assert value(text, "baton_jobs", status="pending") == 0
    assert value(text, "baton_timers_due") == 0


@pytest.mark.django_db
def test_metrics_from_an_allowed_network_need_no_token() -> None:
    # The test client connects from 127.0.0.1.
    with override_settings(BATON_METRICS_TOKEN="", BATON_METRICS_ALLOW=["127.0.0.0/8"]):
        assert scrape().status_code == 200
    with override_settings(BATON_METRICS_TOKEN="", BATON_METRICS_ALLOW=["10.0.0.0/8"]):
        assert scrape().status_code == 403
    with override_settings(BATON_METRICS_TOKEN="", BATON_METRICS_ALLOW=[]):
        assert scrape().status_code == 403


@pytest.mark.django_db(transaction=True)  # counted once the start has committed
@override_settings(BATON_METRICS_TOKEN=TOKEN, BATON_METRICS_DIR="")
def test_requests_and_starts_in_this_process_are_counted(designer, api_client_for) -> None:
    deploy_xml("obs_wait", sequence("obs_wait", []))
    before = scrape(f"Bearer {TOKEN}").content.decode()
    started = api_client_for(designer).post(
        "/api/v1/definitions/obs_wait/start/", {"variables": {}}, format="json"
    )
    assert started.status_code == 201, started.content
    text = scrape(f"Bearer {TOKEN}").content.decode()
    for name in ("baton_instances_started_total", "baton_instances_completed_total"):
        assert value(text, name, process="obs_wait") == value(before, name, process="obs_wait") + 1
    route = "api/v1/definitions/<str:key>/start/"
    name = "baton_http_request_duration_seconds_count"
    assert value(text, name, method="POST", route=route, status="201") == 1 + value(
        before, name, method="POST", route=route, status="201"
    )


# --- counters from worker processes -------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_metrics_add_up_what_worker_processes_counted(
    celery_workers: Workers, fake_api: FakeApi
) -> None:
    fake_api.reply("/score", Reply(503), Reply(body={"score": 1}))
    deploy_xml("obs_worker", sequence("obs_worker", [service_task("check", 'api + "/score"')]))
    instance = settle(start_instance(key="obs_worker", variables={"api": fake_api.base_url}))
    assert instance.status == "completed"
    with override_settings(BATON_METRICS_TOKEN=TOKEN, BATON_METRICS_DIR=celery_workers.metrics_dir):
        text = scrape(f"Bearer {TOKEN}").content.decode()
    host = f"127.0.0.1:{fake_api.server.server_port}"
    # The instance completed on a worker (the job's result was applied there).
    assert value(text, "baton_instances_completed_total", process="obs_worker") == 1
    attempts = "baton_job_attempts_total"
    assert value(text, attempts, connector="http", host=host, outcome="retry") == 1
    assert value(text, attempts, connector="http", host=host, outcome="succeeded") == 1
    assert value(text, "baton_job_errors_total", connector="http", host=host, kind="retry") == 1
    assert value(text, "baton_job_duration_seconds_count", connector="http", host=host) == 2
    assert value(text, "baton_job_wait_seconds_count", connector="http") >= 2
    assert (
        value(
            text,
            "baton_element_duration_seconds_count",
            process="obs_worker",
            element="check",
            type="serviceTask",
        )
        == 1
    )


# --- one trace from the API call to the called API -----------------------------------------


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.instrument(provider)
    try:
        yield exporter
    finally:
        tracing.uninstrument()
        provider.shutdown()


def _close_worker_connections(**kwargs: Any) -> None:
    connections.close_all()  # the in-process worker's thread leaves none open


@pytest.fixture
def worker_in_this_process() -> Iterator[None]:
    """A real Celery worker (solo pool) in a thread of the test process, so that the test's
    in-memory exporter sees its spans; it reads a queue of its own."""
    with jobs_for_no_worker():
        queue = app.conf.task_default_queue
        task_postrun.connect(_close_worker_connections)
        try:
            with start_worker(
                app, pool="solo", queues=[queue], perform_ping_check=False, shutdown_timeout=30
            ):
                yield
        finally:
            task_postrun.disconnect(_close_worker_connections)


def _named(spans: tuple[ReadableSpan, ...], prefix: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name.startswith(prefix)]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_one_trace_from_the_api_call_through_the_job_to_the_called_api(
    spans: InMemorySpanExporter,
    worker_in_this_process: None,
    fake_api: FakeApi,
    designer,
    api_client_for,
) -> None:
    fake_api.reply("/score", Reply(body={"score": 7}))
    deploy_xml("obs_trace", sequence("obs_trace", [service_task("check", 'api + "/score"')]))
    started = api_client_for(designer).post(
        "/api/v1/definitions/obs_trace/start/",
        {"variables": {"api": fake_api.base_url}},
        format="json",
    )
    assert started.status_code == 201, started.content
    instance = settle(ProcessInstance.objects.get(pk=started.json()["id"]))
    assert instance.status == "completed"
    job = ServiceJob.objects.get(instance=instance)
    wait_until(lambda: _named(spans.get_finished_spans(), "job http"), what="the job's span")
    finished = spans.get_finished_spans()

    [request] = [s for s in finished if s.kind == SpanKind.SERVER]
    trace_id = request.context.trace_id
    assert request.attributes is not None
    assert request.attributes["baton.instance_id"] == str(instance.pk)
    [job_span] = _named(finished, "job http")
    assert job_span.attributes is not None
    assert (
        job_span.attributes["baton.instance_id"],
        job_span.attributes["baton.element_id"],
        job_span.attributes["baton.job_id"],
    ) == (str(instance.pk), "check", str(job.pk))
    [call] = [s for s in finished if s.kind == SpanKind.CLIENT]
    celery_spans = [s for s in finished if s.kind in (SpanKind.PRODUCER, SpanKind.CONSUMER)]
    assert len(celery_spans) >= 2  # the message sent by the request and the task run
    # One trace: the request, the message, the task, the job, the outbound call.
    assert {s.context.trace_id for s in (request, job_span, call, *celery_spans)} == {trace_id}
    assert call.parent is not None and call.parent.span_id == job_span.context.span_id
    # The called API was told: W3C traceparent of the same trace, the call's span as parent.
    [seen] = fake_api.requests_to("/score")
    traceparent = {k.lower(): v for k, v in seen.headers.items()}["traceparent"]
    assert traceparent.split("-")[1] == format(trace_id, "032x")
    assert traceparent.split("-")[2] == format(call.context.span_id, "016x")


# --- log lines carry the ids ---------------------------------------------------------------


@connector("observability.broken")
def broken_connector(params: dict[str, Any], call: ConnectorCall) -> dict[str, Any]:
    raise RuntimeError("the connector has a bug")


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(LogContextFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("engine")
    logger.addHandler(handler)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


@pytest.mark.django_db(transaction=True)
def test_engine_log_lines_carry_instance_element_job_and_trace_ids(
    json_log: io.StringIO,
) -> None:
    task = service_task("call", '"http://127.0.0.1:9/"', topic="observability.broken")
    deploy_xml("obs_logs", sequence("obs_logs", [task]))
    provider = TracerProvider()
    with jobs_for_no_worker():
        instance = start_instance(key="obs_logs")
        job = ServiceJob.objects.get(instance=instance)
        with provider.get_tracer("test").start_as_current_span("a worker's task") as span:
            execute_service_job(str(job.pk))
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    [failed] = [
        line for line in lines if line["message"] == "Connector observability.broken failed"
    ]
    assert failed["level"] == "ERROR" and "RuntimeError" in failed["exception"]
    assert (failed["instance_id"], failed["element_id"], failed["job_id"]) == (
        str(instance.pk),
        "call",
        str(job.pk),
    )
    assert failed["trace_id"] == format(span.get_span_context().trace_id, "032x")
    # Only ids: the call's parameters (the URL here) are not in the line.
    assert "127.0.0.1:9" not in json_log.getvalue()


# --- the Grafana dashboard ---------------------------------------------------------------


def test_the_grafana_dashboard_uses_only_metrics_baton_exposes(db) -> None:
    from pathlib import Path

    from prometheus_client import REGISTRY

    from engine.selectors.queue_depths import QueueDepthCollector

    dashboard = json.loads(
        (Path(__file__).resolve().parents[2] / "docs/grafana/baton-dashboard.json").read_text()
    )
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {
        re.sub(r"_(bucket|count|sum|total)$", "", name)
        for expr in exprs
        for name in re.findall(r"\bbaton_[a-z_]+", expr)
    }
    exposed = {family.name for family in REGISTRY.collect()} | {
        family.name for family in QueueDepthCollector().collect()
    }
    assert used and used <= exposed, used - exposed


def test_an_outbound_call_span_shows_its_url_masked(
    spans: InMemorySpanExporter, fake_api: FakeApi
) -> None:
    """A connector's URL may carry a resolved secret: the span keeps it masked, as an
    incident would show it."""
    import httpx

    secret_path, secret_query = "SLACKWEBHOOKSECRET12345", "QSECRETVALUE1234567"
    url = f"{fake_api.base_url}/services/T0/B0/{secret_path}?token={secret_query}&page=2"
    httpx.get(url)
    [call] = [s for s in spans.get_finished_spans() if s.kind == SpanKind.CLIENT]
    assert call.attributes is not None
    shown = {str(call.attributes.get(name)) for name in ("http.url", "url.full")} - {"None"}
    assert shown, dict(call.attributes)
    for text in shown:
        assert secret_path not in text and secret_query not in text, text
        assert "page=2" in text
