"""Idempotency-Key beyond the basics in test_endpoints: the first response is stored, not
rendered again; retries that race each other act once; a response lost after its operation
committed is a 409, never a second operation."""

import threading

import pytest
from django.db import connection

from api.models import IdempotentResponse
from engine.models import InstanceEvent, OperationKey, ProcessInstance
from tests.helpers import build_bpmn, deploy_document

START = "/api/v1/definitions/expense_approval/start/"
BODY = {
    "variables": {"amount": 250, "description": "Taxi", "requester": "bob"},
    "business_key": "E-1",
}


@pytest.mark.django_db
def test_a_replay_is_the_first_response_even_after_the_instance_moved_on(
    expense_definition, api_client_for, approver
):
    client = api_client_for(approver)
    first = client.post(START, BODY, format="json", HTTP_IDEMPOTENCY_KEY="order-1")
    task_id = first.json()["open_tasks"][0]["id"]
    done = client.post(
        f"/api/v1/tasks/{task_id}/complete/", {"variables": {"decision": "approve"}}, format="json"
    )
    assert done.status_code == 200
    again = client.post(START, BODY, format="json", HTTP_IDEMPOTENCY_KEY="order-1")
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert ProcessInstance.objects.count() == 1


@pytest.mark.django_db
def test_a_key_whose_response_was_lost_is_a_conflict_not_a_second_start(
    expense_definition, api_client_for, approver
):
    client = api_client_for(approver)
    assert client.post(START, BODY, format="json", HTTP_IDEMPOTENCY_KEY="k").status_code == 201
    IdempotentResponse.objects.all().delete()  # as if the server died before storing it
    again = client.post(START, BODY, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert again.status_code == 409
    assert again["Content-Type"].startswith("application/problem+json")
    assert "response was lost" in again.json()["detail"]
    assert ProcessInstance.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_racing_retries_with_one_key_act_once(expense_definition, api_client_for, approver):
    clients = [api_client_for(approver) for _ in range(3)]
    ready = threading.Barrier(len(clients))
    answers: list = [None] * len(clients)

    def send(index: int) -> None:
        try:
            ready.wait()
            answers[index] = clients[index].post(
                START, BODY, format="json", HTTP_IDEMPOTENCY_KEY="race-1"
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [201] * len(clients)
    assert len({a.json()["id"] for a in answers}) == 1
    assert sorted(a.get("Idempotent-Replayed", "") for a in answers) == ["", "true", "true"]
    assert ProcessInstance.objects.count() == 1
    assert InstanceEvent.objects.filter(type="started").count() == 1
    assert OperationKey.objects.get().key == "race-1"


@pytest.mark.django_db
def test_a_start_that_ends_in_an_incident_is_kept_and_replayed(api_client_for, approver):
    # The incident's details carry datetimes: the kept response must still be stored as JSON.
    deploy_document(build_bpmn("failing", script="x = 1 / 0"))
    client = api_client_for(approver)
    url = "/api/v1/definitions/failing/start/"
    first = client.post(url, {"variables": {}}, format="json", HTTP_IDEMPOTENCY_KEY="fail-1")
    assert first.status_code == 201, first.content
    assert first.json()["status"] == "incident"
    again = client.post(url, {"variables": {}}, format="json", HTTP_IDEMPOTENCY_KEY="fail-1")
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert ProcessInstance.objects.get().status == "incident"
