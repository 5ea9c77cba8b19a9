"""POST /api/v1/instances/{id}/cancel/: cancel with compensation from outside (issue 24).

These cases need no compensation handler to run (an instance that completed nothing with a
handler ends at once); the trip example's saga, with handlers on real workers, is in
tests/processes/test_trip_booking.py."""

import uuid

import pytest
from django.utils import timezone

from engine.exceptions import InvalidInput
from engine.models import HumanTask, InstanceEvent, ProcessInstance
from engine.services import cancel_instance, terminate_instance
from tests.api.test_endpoints import START, VARIABLES, problem

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(make_user):
    return make_user("olga_operator", "operators")


@pytest.fixture
def started(expense_definition, api_client_for, approver, make_user) -> dict:
    requester = make_user("rita_requester")
    response = api_client_for(requester).post(START, {"variables": VARIABLES}, format="json")
    assert response.status_code == 201
    return response.json()


def _url(instance_id: str) -> str:
    return f"/api/v1/instances/{instance_id}/cancel/"


def test_cancel_with_nothing_to_compensate_terminates_at_once(
    started, api_client_for, approver, operator
) -> None:
    response = api_client_for(operator).post(
        _url(started["id"]), {"reason": "customer withdrew"}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "terminated" and body["open_tasks"] == []
    assert body["completed_at"] is not None
    assert body["variables"] == started["variables"]  # kept: what it had reached
    assert not HumanTask.objects.filter(instance_id=started["id"], status="open").exists()
    assert api_client_for(approver).get("/api/v1/tasks/").json()["count"] == 0
    events = list(
        InstanceEvent.objects.filter(instance_id=started["id"])
        .order_by("created_at", "id")
        .values_list("type", "actor__username", "payload")
    )
    requested = [e for e in events if e[0] == "cancel_requested"]
    assert len(requested) == 1
    assert requested[0][1] == "olga_operator"
    assert requested[0][2]["reason"] == "customer withdrew"
    assert requested[0][2]["handlers"] == 0
    assert "no compensation needed" in requested[0][2]["detail"]
    # The open task is cancelled with its token, then the instance ends.
    assert [e[0] for e in events][-3:] == ["cancel_requested", "task_cancelled", "terminated"]
    terminated = events[-1]
    assert terminated[1] == "olga_operator"
    assert terminated[2]["reason"] == "customer withdrew"
    assert not [e for e in events if e[0] == "completed"]
    instance = ProcessInstance.objects.get(pk=started["id"])
    assert instance.cancel_reason == "customer withdrew"
    assert instance.cancel_requested_by is not None
    # The history API shows it in order, with the asker.
    history = api_client_for(operator).get(f"/api/v1/instances/{started['id']}/history/")
    types = [e["type"] for e in history.json()["results"]]
    assert types[-3:] == ["cancel_requested", "task_cancelled", "terminated"]


def test_cancel_refusals_change_nothing(started, api_client_for, approver, operator) -> None:
    url = _url(started["id"])
    problem(api_client_for(approver).post(url, {"reason": "no"}, format="json"), 403)
    missing = problem(api_client_for(operator).post(url, {}, format="json"), 400)
    assert "Give a reason to cancel" in missing["detail"]
    problem(api_client_for(operator).post(url, {"reason": "   "}, format="json"), 400)
    problem(api_client_for(operator).post(url, {"reason": ["x"]}, format="json"), 400)
    problem(
        api_client_for(operator).post(_url(str(uuid.uuid4())), {"reason": "x"}, format="json"), 404
    )
    instance = ProcessInstance.objects.get(pk=started["id"])
    assert (instance.status, instance.cancel_requested_at) == ("waiting", None)
    assert not InstanceEvent.objects.filter(
        instance=instance, type__in=["cancel_requested", "terminated"]
    ).exists()


def test_cancel_of_a_finished_instance_is_a_conflict(started, api_client_for, operator) -> None:
    client = api_client_for(operator)
    assert client.post(_url(started["id"]), {"reason": "one"}, format="json").status_code == 200
    again = problem(client.post(_url(started["id"]), {"reason": "two"}, format="json"), 409)
    assert "terminated" in again["detail"]
    assert InstanceEvent.objects.filter(instance_id=started["id"], type="terminated").count() == 1


def test_a_second_cancel_while_compensating_is_a_conflict(
    started, api_client_for, operator
) -> None:
    # What an instance whose compensation still runs looks like (tests/processes has it live).
    ProcessInstance.objects.filter(pk=started["id"]).update(
        status="running", cancel_requested_at=timezone.now(), cancel_reason="first"
    )
    again = problem(
        api_client_for(operator).post(_url(started["id"]), {"reason": "second"}, format="json"),
        409,
    )
    assert "already being cancelled" in again["detail"]
    assert ProcessInstance.objects.get(pk=started["id"]).cancel_reason == "first"


def test_cancel_of_a_suspended_instance_asks_to_resume_first(
    started, api_client_for, operator
) -> None:
    client = api_client_for(operator)
    client.post(f"/api/v1/instances/{started['id']}/suspend/", {"reason": "hold"}, format="json")
    refused = problem(client.post(_url(started["id"]), {"reason": "x"}, format="json"), 409)
    assert "resume it" in refused["detail"]
    assert ProcessInstance.objects.get(pk=started["id"]).status == "suspended"


def test_cancel_is_in_the_openapi_schema(api_client_for, operator) -> None:
    schema = api_client_for(operator).get("/api/schema/?format=json").json()
    operation = schema["paths"]["/api/v1/instances/{id}/cancel/"]["post"]
    assert "compensation" in operation["summary"]
    assert {"200", "400", "403", "404", "409"} <= set(operation["responses"])
    body = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body.endswith("/Reason") or body.endswith("/ReasonRequest")
    batch_operations = schema["components"]["schemas"]
    assert "CancelBatchRequest" in batch_operations


def test_a_huge_or_odd_reason_is_refused_by_every_entry_point(
    started, api_client_for, operator
) -> None:
    client = api_client_for(operator)
    for reason in ["x" * 2001, 42, {"why": "x"}, None]:
        problem(client.post(_url(started["id"]), {"reason": reason}, format="json"), 400)
    # The service itself holds the rule, for callers that are not the API (admin, batch).
    for odd in ["x" * 2001, 42]:
        with pytest.raises(InvalidInput, match="at most 2000 characters"):
            cancel_instance(instance_id=started["id"], actor=operator, reason=odd)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="at most 2000 characters"):
            terminate_instance(instance_id=started["id"], actor=operator, reason=odd)  # type: ignore[arg-type]
    for odd_id in ["not-a-uuid", "1", "%00"]:
        response = client.post(f"/api/v1/instances/{odd_id}/cancel/", {"reason": "x"})
        problem(response, 404)
    instance = ProcessInstance.objects.get(pk=started["id"])
    assert (instance.status, instance.cancel_requested_at) == ("waiting", None)


def test_reset_and_migrate_of_an_instance_being_cancelled_are_conflicts(
    started, api_client_for, operator
) -> None:
    ProcessInstance.objects.filter(pk=started["id"]).update(
        status="running", cancel_requested_at=timezone.now(), cancel_reason="first"
    )
    client = api_client_for(operator)
    base = f"/api/v1/instances/{started['id']}"
    reset = problem(client.post(f"{base}/reset/", {"element_id": "start"}, format="json"), 409)
    assert "being cancelled" in reset["detail"]
    migrate = problem(client.post(f"{base}/migrate/", {"version": 2}, format="json"), 409)
    assert "being cancelled" in migrate["detail"]
    assert not InstanceEvent.objects.filter(
        instance_id=started["id"], type__in=["reset", "migrated"]
    ).exists()
