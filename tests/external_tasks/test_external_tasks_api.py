"""External tasks through the API: fetch-and-lock, complete, failure, bpmn-error,
extend-lock, unlock; lock expiry; the lock holder rule; who may work them."""

import datetime
from typing import Any

import pytest
from rest_framework.test import APIClient

from engine.exceptions import InvalidInput
from engine.models import InstanceEvent, ProcessInstance, ServiceJob
from engine.services import retry_instance, start_instance
from engine.services.external_tasks import complete_external_task
from processes.services import deploy
from processes.validation import DeploymentInvalid, UploadedFile
from tests.external_tasks import diagrams

pytestmark = pytest.mark.django_db
FETCH = "/api/v1/external-tasks/fetch-and-lock/"


def deploy_xml(xml: str, name: str = "payment.bpmn") -> None:
    deploy(name=name, files=[UploadedFile(name, xml.encode())], actor=None)


def action(task_id: str, name: str) -> str:
    return f"/api/v1/external-tasks/{task_id}/{name}/"


@pytest.fixture
def worker(make_user, api_client_for) -> APIClient:
    client = api_client_for(make_user("wanda_worker", "external-workers"))
    client.default_format = "json"
    return client


@pytest.fixture
def payment(make_user) -> ProcessInstance:
    deploy_xml(diagrams.camunda7())
    return start_instance(key="payment", variables={"amount": 12}, actor=make_user("ann"))


def fetch(client: APIClient, worker_id: str = "w1", **extra: Any) -> list[dict[str, Any]]:
    body = {
        "worker_id": worker_id,
        "topics": [{"topic_name": "payments.charge", "lock_duration": 60_000}],
        **extra,
    }
    response = client.post(FETCH, body, format="json")
    assert response.status_code == 200, response.content
    tasks: list[dict[str, Any]] = response.json()
    return tasks


def test_an_unknown_topic_waits_for_a_worker_that_completes_it(payment, worker) -> None:
    assert payment.status == "waiting"  # waiting for the world, not for Baton's workers
    job = ServiceJob.objects.get(instance=payment)
    assert (job.kind, job.status, job.connector) == ("external", "pending", "payments.charge")

    [task] = fetch(worker)

    assert task["activity_id"] == "charge"
    assert task["process_instance_id"] == str(payment.pk)
    assert task["process_definition_key"] == "payment"
    assert task["variables"] == {"amount": 12, "cents": 1200, "currency": "EUR"}
    assert fetch(worker, "w2") == []  # locked: nobody else gets it
    response = worker.post(
        action(task["id"], "complete"), {"worker_id": "w1", "variables": {"receipt": "R-1"}}
    )
    assert response.status_code == 204, response.content
    payment.refresh_from_db()
    assert payment.status == "completed"
    assert payment.variables["receipt"] == "R-1"
    types = list(payment.events.values_list("type", flat=True))
    assert "external_task_locked" in types and "job_succeeded" in types


def test_fetch_sends_only_the_variables_asked_for(payment, worker) -> None:
    [task] = fetch(
        worker,
        topics=[{"topic_name": "payments.charge", "lock_duration": 1000, "variables": ["cents"]}],
    )
    assert task["variables"] == {"cents": 1200}


def test_a_camunda8_job_type_is_an_external_task(make_user, worker) -> None:
    deploy_xml(diagrams.camunda8(), "bench.bpmn")
    instance = start_instance(key="bench", variables={}, actor=make_user("ann"))
    body = {"worker_id": "w", "topics": [{"topic_name": "benchmark-task", "lock_duration": 500}]}
    [task] = worker.post(FETCH, body, format="json").json()
    assert task["retries"] == 2  # zeebe retries="3", one fetch made
    worker.post(action(task["id"], "complete"), {"worker_id": "w"}, format="json")
    instance.refresh_from_db()
    assert instance.status == "completed"


def test_only_the_lock_holder_may_complete(payment, worker) -> None:
    [task] = fetch(worker, "w1")
    response = worker.post(action(task["id"], "complete"), {"worker_id": "stranger"})
    assert response.status_code == 409
    assert response["Content-Type"] == "application/problem+json"
    assert "locked by another worker" in response.json()["detail"]
    payment.refresh_from_db()
    assert payment.status == "waiting"
    assert ServiceJob.objects.get(instance=payment).status == "running"


def test_another_user_cannot_act_on_a_task_with_the_holders_worker_id(
    payment, make_user, api_client_for
) -> None:
    alice = make_user("alice", "external-workers")
    alice_client = api_client_for(alice)
    mallory = api_client_for(make_user("mallory", "external-workers"))
    [task] = fetch(alice_client, "alice-w")
    job = ServiceJob.objects.get(instance=payment)
    locked_until = job.locked_until

    attempts: list[tuple[str, dict[str, Any]]] = [
        ("complete", {"variables": {"receipt": "FORGED"}}),
        ("failure", {"error_message": "no", "retries": 0}),
        ("bpmn-error", {"error_code": "E"}),
        ("extend-lock", {"new_duration": 600_000}),
        ("unlock", {}),
    ]
    for name, extra in attempts:
        response = mallory.post(
            action(task["id"], name), {"worker_id": "alice-w", **extra}, format="json"
        )
        assert response.status_code == 409, (name, response.content)
        assert "alice-w" not in response.json()["detail"]  # the holder is not named

    payment.refresh_from_db()
    assert payment.status == "waiting"
    assert "receipt" not in payment.variables
    job.refresh_from_db()
    assert (job.status, job.worker_id, job.locked_until) == ("running", "alice-w", locked_until)

    response = alice_client.post(
        action(task["id"], "complete"),
        {"worker_id": "alice-w", "variables": {"receipt": "R-1"}},
        format="json",
    )
    assert response.status_code == 204, response.content
    payment.refresh_from_db()
    assert payment.status == "completed"
    assert payment.variables["receipt"] == "R-1"
    succeeded = payment.events.get(type="job_succeeded")
    assert succeeded.actor == alice


def test_a_lock_that_ran_out_returns_the_task_to_the_queue(payment, worker, clock) -> None:
    [first] = fetch(worker, "w1", topics=[{"topic_name": "payments.charge", "lock_duration": 500}])
    clock.advance(datetime.timedelta(seconds=2))

    [again] = fetch(worker, "w2")

    assert again["id"] == first["id"] and again["attempt"] == 2
    assert worker.post(action(first["id"], "complete"), {"worker_id": "w1"}).status_code == 409
    assert worker.post(action(first["id"], "complete"), {"worker_id": "w2"}).status_code == 204
    payment.refresh_from_db()
    assert payment.status == "completed"
    locked = payment.events.filter(type="external_task_locked").order_by("id")
    assert [e.payload["worker_id"] for e in locked] == ["w1", "w2"]
    assert locked[1].payload["lock_expired_of"] == "w1"


def test_a_failure_with_retries_returns_then_none_left_is_an_incident(
    payment, worker, make_user
) -> None:
    [task] = fetch(worker)
    response = worker.post(
        action(task["id"], "failure"),
        {"worker_id": "w1", "error_message": "gateway down", "retries": 1, "retry_timeout": 0},
        format="json",
    )
    assert response.status_code == 204
    [again] = fetch(worker)
    assert (again["retries"], again["error_message"]) == (0, "gateway down")

    worker.post(
        action(task["id"], "failure"),
        {"worker_id": "w1", "error_message": "still down", "error_details": "trace", "retries": 0},
        format="json",
    )

    payment.refresh_from_db()
    assert payment.status == "incident"
    assert payment.incident["element_id"] == "charge"
    assert "still down" in payment.incident["error"]
    assert ServiceJob.objects.get(instance=payment).status == "dead"
    assert fetch(worker) == []
    # An operator's retry gives it to the workers again.
    retry_instance(instance_id=payment.pk, actor=make_user("olga", "operators"))
    [third] = fetch(worker, "w3")
    assert third["id"] == task["id"]


def test_a_failure_later_than_its_retry_timeout_waits(payment, worker, clock) -> None:
    [task] = fetch(worker)
    worker.post(
        action(task["id"], "failure"),
        {"worker_id": "w1", "error_message": "busy", "retries": 2, "retry_timeout": 60_000},
        format="json",
    )
    assert fetch(worker) == []
    clock.advance(datetime.timedelta(minutes=2))
    assert [t["id"] for t in fetch(worker)] == [task["id"]]


def test_a_bpmn_error_is_caught_by_the_boundary_event(payment, worker) -> None:
    [task] = fetch(worker)
    response = worker.post(
        action(task["id"], "bpmn-error"),
        {
            "worker_id": "w1",
            "error_code": "CARD_DECLINED",
            "error_message": "insufficient funds",
            "variables": {"reason": "funds"},
        },
        format="json",
    )
    assert response.status_code == 204, response.content
    payment.refresh_from_db()
    assert payment.status == "completed"
    assert payment.variables["reason"] == "funds"
    ended = payment.events.filter(type="job_failed").get()
    assert ended.payload["caught"] is True
    assert ServiceJob.objects.get(instance=payment).status == "failed"


def test_an_uncaught_bpmn_error_is_an_incident(payment, worker) -> None:
    [task] = fetch(worker)
    worker.post(
        action(task["id"], "bpmn-error"),
        {"worker_id": "w1", "error_code": "SOMETHING_ELSE"},
        format="json",
    )
    payment.refresh_from_db()
    assert payment.status == "incident"
    assert "SOMETHING_ELSE" in payment.incident["error"]


def test_extend_lock_keeps_it_and_unlock_gives_it_back(payment, worker, clock) -> None:
    [task] = fetch(worker, topics=[{"topic_name": "payments.charge", "lock_duration": 1000}])
    response = worker.post(
        action(task["id"], "extend-lock"), {"worker_id": "w1", "new_duration": 600_000}
    )
    assert response.status_code == 200
    clock.advance(datetime.timedelta(seconds=30))
    assert fetch(worker, "w2") == []  # still held

    assert worker.post(action(task["id"], "unlock"), {"worker_id": "w1"}).status_code == 204

    [again] = fetch(worker, "w2")
    assert again["id"] == task["id"]
    assert InstanceEvent.objects.filter(type="external_task_unlocked").count() == 1


def test_a_done_or_unknown_task_is_a_conflict_or_not_found(payment, worker) -> None:
    [task] = fetch(worker)
    worker.post(action(task["id"], "complete"), {"worker_id": "w1"})
    assert worker.post(action(task["id"], "complete"), {"worker_id": "w1"}).status_code == 409
    unknown = "00000000-0000-0000-0000-000000000000"
    assert worker.post(action(unknown, "complete"), {"worker_id": "w1"}).status_code == 404


def test_a_suspended_instance_gives_no_tasks(payment, worker, make_user) -> None:
    from engine.services import suspend_instance

    suspend_instance(instance_id=payment.pk, actor=make_user("olga", "operators"))
    assert fetch(worker) == []


def test_only_workers_may_fetch(payment, api_client_for, outsider, anonymous_client) -> None:
    body = {"worker_id": "w", "topics": [{"topic_name": "payments.charge", "lock_duration": 9}]}
    response = api_client_for(outsider).post(FETCH, body, format="json")
    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"
    assert anonymous_client.post(FETCH, body, format="json").status_code == 401
    assert ServiceJob.objects.get(instance=payment).status == "pending"


def test_invalid_requests_are_problems(worker) -> None:
    response = worker.post(FETCH, {"worker_id": "w", "topics": []}, format="json")
    assert response.status_code == 400
    body = {
        "worker_id": "w",
        "async_response_timeout": 60_000,
        "topics": [{"topic_name": "t", "lock_duration": 9}],
    }
    assert worker.post(FETCH, body, format="json").status_code == 400


def test_a_long_poll_with_nothing_there_answers_empty(payment, worker) -> None:
    body = {
        "worker_id": "w",
        "async_response_timeout": 50,
        "topics": [{"topic_name": "nobody.publishes", "lock_duration": 9}],
    }
    response = worker.post(FETCH, body, format="json")
    assert (response.status_code, response.json()) == (200, [])


@pytest.mark.parametrize(
    ("attribute", "shown"),
    [
        ('camunda:class="com.acme.ChargeDelegate"', "camunda:class"),
        ('camunda:delegateExpression="${chargeDelegate}"', "camunda:delegateExpression"),
        ('camunda:expression="${charger.charge(execution)}"', "camunda:expression"),
    ],
)
def test_java_delegates_are_refused_pointing_to_external_tasks(attribute, shown) -> None:
    xml = diagrams.camunda7().replace(
        'camunda:type="external"\n        camunda:topic="payments.charge"', attribute
    )
    with pytest.raises(DeploymentInvalid) as refused:
        deploy_xml(xml)
    [problem] = refused.value.problems
    assert problem.element_id == "charge"
    assert f"Baton runs no Java delegates ({shown})" in problem.message
    assert "external task" in problem.message


def test_the_service_refuses_variables_nested_too_deep(payment, make_user) -> None:
    """The depth rule holds for every edge that calls the service, not only the API's parser."""
    worker_user = make_user("deep_worker", "external-workers")
    client = APIClient()
    client.force_authenticate(worker_user)
    [task] = fetch(client, "w1")
    deep: dict[str, Any] = {}
    for _ in range(200):
        deep = {"x": deep}
    with pytest.raises(InvalidInput):
        complete_external_task(
            actor=worker_user, task_id=task["id"], worker_id="w1", variables={"v": deep}
        )
    payment.refresh_from_db()
    assert payment.status == "waiting"
    assert ServiceJob.objects.get(instance=payment).status == "running"
