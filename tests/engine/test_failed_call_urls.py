"""Incidents of failed http calls name the URL that failed (issue 18), with the values of
credential-like query parameters masked."""

import socket

import pytest

from engine.models import ProcessInstance, ServiceJob
from engine.services import start_instance
from processes.services import deploy
from processes.validation import UploadedFile
from tests.engine.service_diagrams import sequence, service_task
from tests.engine.service_fixtures import FakeApi, Reply, Workers, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

TOKEN = "K-9f8e7d6c5b4a"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_to_incident(key: str, api: str) -> ProcessInstance:
    task = service_task(
        "lookup",
        f'api + "/customers/" + customer_id + "?api_key={TOKEN}&page=2"',
        retry_cycle="R1/PT0.1S",
    )
    deploy(
        name=key, files=[UploadedFile(f"{key}.bpmn", sequence(key, [task]).encode())], actor=None
    )
    instance = start_instance(key=key, variables={"api": api, "customer_id": "unknown-42"})

    def in_incident() -> bool:
        instance.refresh_from_db()
        return instance.status == "incident"

    wait_until(in_incident, what="the incident")
    return instance


def test_a_connection_failure_names_the_url(celery_workers: Workers) -> None:
    api = f"http://127.0.0.1:{closed_port()}"

    instance = run_to_incident("url_refused", api)

    assert instance.incident is not None
    error = instance.incident["error"]
    assert "Connection failed: ConnectError" in error
    assert f"GET {api}/customers/unknown-42?api_key=***&page=2" in error
    assert TOKEN not in error
    assert TOKEN not in ServiceJob.objects.get(instance=instance).last_error


def test_an_http_error_names_the_url(celery_workers: Workers, fake_api: FakeApi) -> None:
    fake_api.reply("/customers/unknown-42", Reply(404, {"detail": "no such customer"}))

    instance = run_to_incident("url_404", fake_api.base_url)

    assert instance.incident is not None
    error = instance.incident["error"]
    assert f"HTTP 404 from GET {fake_api.base_url}/customers/unknown-42?api_key=***&page=2" in error
    assert TOKEN not in error
