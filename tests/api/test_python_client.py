"""The Python client (clients/python) against a live Baton server on 127.0.0.1: start,
query, list and complete tasks, jobs, schedules, batches and webhook subscriptions, and a
POST whose answer was lost sent again with the same Idempotency-Key (the server carries it
out once)."""

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token

from engine.models import ProcessInstance, StartTrigger
from processes.services import deploy
from processes.validation import UploadedFile
from tests.engine import event_diagrams
from tests.engine.service_fixtures import Workers, celery_workers, wait_until
from tests.external_tasks import diagrams

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "clients" / "python"))

from baton_client import ApiError, BatonClient

__all__ = ["celery_workers"]  # the fixture, for this module

pytestmark = pytest.mark.django_db(transaction=True)


def token_of(user: User) -> str:
    return Token.objects.get_or_create(user=user)[0].key


@pytest.fixture
def client_for(live_server: Any) -> Iterator[Any]:
    made: list[BatonClient] = []

    def make(user: User, **options: Any) -> BatonClient:
        client = BatonClient(live_server.url, token=token_of(user), backoff=0.01, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def test_start_query_and_complete_a_task(
    client_for: Any, example_definitions: Any, make_user: Any
) -> None:
    requester = client_for(make_user("rita", "requesters"))
    approver = client_for(make_user("alice", "managers"))
    started = requester.start(
        "expense_approval",
        {"amount": 250, "description": "Taxi", "requester": "rita"},
        business_key="E-7",
    )
    assert started["status"] == "waiting" and started["business_key"] == "E-7"
    [task] = [t for t in approver.tasks() if t["instance"] == started["id"]]
    assert task["element_id"] and task["status"] == "open"
    approver.complete_task(task["id"], {"decision": "approve", "comment": "ok"})
    assert approver.get_instance(started["id"])["status"] == "completed"
    with pytest.raises(ApiError) as refused:
        approver.complete_task(task["id"], {"decision": "reject"})
    assert refused.value.status == 409


class LoseFirstAnswer(httpx.HTTPTransport):
    """Sends every request; the answer to the first start is lost on its way back."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.url.path.endswith("/start/"):
            self.keys.append(request.headers["Idempotency-Key"])
            if len(self.keys) == 1:
                response.read()
                raise httpx.ReadTimeout("the answer was lost", request=request)
        return response


def test_a_post_whose_answer_was_lost_is_carried_out_once(
    client_for: Any, example_definitions: Any, make_user: Any
) -> None:
    transport = LoseFirstAnswer()
    client = client_for(make_user("rita", "requesters"), transport=transport)
    started = client.start(
        "expense_approval", {"amount": 5, "description": "Pen", "requester": "rita"}
    )
    assert len(transport.keys) == 2 and transport.keys[0] == transport.keys[1]
    assert ProcessInstance.objects.filter(definition__key="expense_approval").count() == 1
    assert ProcessInstance.objects.get().pk.hex == started["id"].replace("-", "")


def test_jobs_and_schedules_for_operators(client_for: Any, make_user: Any) -> None:
    deploy(name="p.bpmn", files=[UploadedFile("p.bpmn", diagrams.camunda7().encode())], actor=None)
    timer = event_diagrams.timer_start("R/P1D")
    deploy(name="t.bpmn", files=[UploadedFile("t.bpmn", timer.encode())], actor=None)
    operator = client_for(make_user("olga", "operators"))
    instance = operator.start("payment", {"amount": 3})
    [job] = list(operator.jobs(instance=instance["id"]))
    assert (job["connector"], job["status"]) == ("payments.charge", "pending")
    assert operator.cancel_job(job["id"], "test")["status"] == "dead"
    assert operator.get_instance(instance["id"])["status"] == "incident"
    assert operator.requeue_job(job["id"])["status"] == "pending"
    assert {q["role"] for q in operator.queues()} == {"jobs", "events"}
    [schedule] = list(operator.schedules(definition="scheduled"))
    assert schedule["id"] == StartTrigger.objects.get(kind="timer").pk
    assert operator.pause_schedule(schedule["id"])["paused"] is True
    assert operator.change_schedule(schedule["id"], "R/PT2H")["expression"] == "R/PT2H"
    assert operator.run_schedule(schedule["id"])["definition"] == "scheduled"
    with pytest.raises(ApiError) as refused:
        operator.change_schedule(schedule["id"], "whenever")
    assert refused.value.status == 400


@pytest.mark.slow
def test_batches_for_operators(
    celery_workers: Workers, client_for: Any, example_definitions: Any, make_user: Any
) -> None:
    operator = client_for(make_user("otto", "operators"))
    started = [
        operator.start("expense_approval", {"amount": n, "description": "Tea"}, business_key="B")
        for n in (1, 2)
    ]
    preview = operator.preview_batch("suspend", {"business_key": "B"}, {"reason": "audit"})
    assert (preview["dry_run"], preview["matched"], preview["targets"]) == (True, 2, 2)
    assert sorted(preview["sample"]) == sorted(i["id"] for i in started)
    assert all(i.status == "waiting" for i in ProcessInstance.objects.all())  # a dry run

    batch = operator.create_batch("suspend", {"business_key": "B"}, {"reason": "audit"})
    assert (batch["operation"], batch["total"], batch["actor"]) == ("suspend", 2, "otto")
    assert operator.get_batch(batch["id"])["id"] == batch["id"]
    assert [b["id"] for b in operator.batches()] == [batch["id"]]
    items = list(operator.batch_items(batch["id"]))
    assert sorted(item["instance"] for item in items) == sorted(i["id"] for i in started)
    assert list(operator.batch_items(batch["id"], outcome="failed")) == []
    wait_until(lambda: operator.get_batch(batch["id"])["status"] == "completed", what="the batch")
    assert {i.status for i in ProcessInstance.objects.all()} == {"suspended"}
    # A finished batch cannot be cancelled: the client raises the API's problem.
    with pytest.raises(ApiError) as finished:
        operator.cancel_batch(batch["id"])
    assert finished.value.status == 409
    with pytest.raises(ApiError) as refused:
        operator.create_batch("suspend", {"colour": "red"})
    assert refused.value.status == 400
    with pytest.raises(ApiError) as forbidden:
        client_for(make_user("rita", "requesters")).get_batch(batch["id"])
    assert forbidden.value.status == 403


def test_webhook_subscriptions_for_operators(
    client_for: Any, example_definitions: Any, make_user: Any
) -> None:
    operator = client_for(make_user("otto", "operators"))
    subscription = operator.create_webhook_subscription(
        "crm", "http://127.0.0.1:9/hooks", "CRM_TOKEN", ["started"], process_key="expense_approval"
    )
    assert (subscription["event_types"], subscription["enabled"]) == (["started"], True)
    assert [s["id"] for s in operator.webhook_subscriptions()] == [subscription["id"]]
    instance = operator.start("expense_approval", {"amount": 5, "description": "Tea"})
    [delivery] = list(operator.webhook_deliveries(subscription["id"]))
    assert (delivery["event_type"], delivery["instance"]) == ("started", instance["id"])
    assert delivery["payload"]["instance"]["id"] == instance["id"]
    with pytest.raises(ApiError) as refused:
        operator.create_webhook_subscription("x", "ftp://example.org", "CRM_TOKEN", ["started"])
    assert refused.value.status == 400

    operator.delete_webhook_subscription(subscription["id"])
    assert list(operator.webhook_subscriptions()) == []
    with pytest.raises(ApiError) as gone:
        list(operator.webhook_deliveries(subscription["id"]))
    assert gone.value.status == 404
