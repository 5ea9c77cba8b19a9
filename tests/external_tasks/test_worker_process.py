"""An external task done by a worker process that knows only the REST API (through the
Python client), against a real HTTP server on 127.0.0.1."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token

from engine.models import ProcessInstance
from engine.services import start_instance
from processes.services import deploy
from processes.validation import UploadedFile
from tests.external_tasks import diagrams
from tests.faults.stack import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
HERE = Path(__file__).parent
CLIENT = HERE.parents[1] / "clients" / "python"


@pytest.fixture
def worker_token(make_user) -> str:
    user: User = make_user("wanda_worker", "external-workers")
    return Token.objects.create(user=user).key


@pytest.fixture
def start_worker(live_server, worker_token) -> Iterator:
    started: list[subprocess.Popen[str]] = []

    def start(worker_id: str, tasks: int) -> subprocess.Popen[str]:
        env = {**os.environ, "PYTHONPATH": str(CLIENT)}
        process = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "worker_process.py"),
                live_server.url,
                worker_token,
                worker_id,
                str(tasks),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


def status_of(instance: ProcessInstance) -> str:
    instance.refresh_from_db()
    return instance.status


def test_a_worker_process_completes_and_declines_external_tasks(start_worker, make_user):
    deploy(
        name="payment.bpmn",
        files=[UploadedFile("payment.bpmn", diagrams.camunda7().encode())],
        actor=None,
    )
    ann = make_user("ann")
    worker = start_worker("proc-1", 2)  # waits (long-polls) before any task exists

    small = start_instance(key="payment", variables={"amount": 12}, actor=ann)
    large = start_instance(key="payment", variables={"amount": 5000}, actor=ann)

    wait_until(lambda: status_of(small) == "completed", 30, "the small charge to complete")
    wait_until(lambda: status_of(large) == "completed", 30, "the large charge to be declined")
    out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert "handled 2" in out
    assert small.variables["receipt"] == "R-1200-EUR"
    assert small.variables["charged_by"] == "proc-1"
    assert large.variables["declined_cents"] == 500000
    assert large.variables["error"]["code"] == "CARD_DECLINED"
    assert "receipt" not in large.variables
