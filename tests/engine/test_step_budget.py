"""The step budget (engine.bpmn.budget): an operation that would run without end stops at
the element where it is, the instance goes to incident there, and the request answers."""

import pytest

from engine.models import InstanceEvent, ProcessInstance
from engine.services import retry_instance, start_instance
from engine.services.instance_store import load_workflow
from tests.engine.budget_diagrams import calls_itself, endless_loop
from tests.helpers import deploy_document

START = "/api/v1/definitions/endless/start/"


@pytest.fixture
def operator(make_user):
    return make_user("olga_operator", "operators")


def test_an_endless_loop_stops_in_incident_and_the_start_answers_201(db, api_client_for, make_user):
    deploy_document(endless_loop(stepLimit=50))
    client = api_client_for(make_user("bob"))
    response = client.post(START, {"variables": {"n": 0, "stop": False}}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "incident"
    assert body["incident"]["element_id"] in {"count", "again"}
    assert "50 automatic steps" in body["incident"]["error"]
    instance = ProcessInstance.objects.get(pk=body["id"])
    event = InstanceEvent.objects.get(instance=instance, type="incident")
    assert event.element_id == body["incident"]["element_id"]
    assert 20 <= instance.variables["n"] <= 30  # two steps a round: count and again


def test_a_stopped_loop_is_stored_consistently_and_an_operator_retry_resumes_it(db, operator):
    deploy_document(endless_loop(stepLimit=50))
    instance = start_instance(key="endless", variables={"n": 0, "stop": False})
    assert instance.status == ProcessInstance.Status.INCIDENT
    workflow = load_workflow(ProcessInstance.objects.get(pk=instance.pk))
    assert not workflow.is_completed()

    # Retried as it is, it loops on for another budget and stops again.
    again = retry_instance(instance_id=str(instance.pk), actor=operator).instance
    assert again.status == ProcessInstance.Status.INCIDENT
    assert again.variables["n"] > instance.variables["n"]

    # Fixed, it leaves the loop and waits at the user task after it.
    fixed = retry_instance(instance_id=str(instance.pk), actor=operator, variables={"stop": True})
    assert fixed.instance.status == ProcessInstance.Status.WAITING
    assert fixed.instance.incident is None
    assert set(fixed.instance.human_tasks.values_list("element_id", flat=True)) == {"done"}


def test_the_time_budget_stops_a_loop_too(db):
    deploy_document(endless_loop(script=False, stepTimeLimit=0.001))
    instance = start_instance(key="endless", variables={"stop": False})
    assert instance.status == ProcessInstance.Status.INCIDENT
    assert instance.incident is not None
    assert "s of automatic steps" in instance.incident["error"]


def test_the_default_budget_stops_a_loop_without_a_limit_of_its_own(db, settings):
    settings.BATON_STEP_LIMIT = 300
    deploy_document(endless_loop(script=False))
    instance = start_instance(key="endless", variables={"stop": False})
    assert instance.status == ProcessInstance.Status.INCIDENT
    assert instance.incident is not None
    assert "300 automatic steps" in instance.incident["error"]


def test_a_conditional_recursion_runs_within_the_call_depth_limit(db):
    deploy_document(calls_itself(conditional=True))
    instance = start_instance(key="recursive", variables={"depth": 0, "limit": 5})
    assert instance.status == ProcessInstance.Status.COMPLETED


def test_a_recursion_deeper_than_the_limit_stops_in_incident_at_the_call_activity(
    db, settings, api_client_for, make_user
):
    settings.BATON_MAX_CALL_DEPTH = 4
    deploy_document(calls_itself(conditional=True))
    response = api_client_for(make_user("bob")).post(
        "/api/v1/definitions/recursive/start/",
        {"variables": {"depth": 0, "limit": 10}},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "incident"
    assert body["incident"]["element_id"] == "again"
    assert "5 levels deep, more than the limit of 4" in body["incident"]["error"]


def test_a_recursion_stopped_at_the_limit_completes_on_retry_under_a_higher_one(
    db, settings, operator
):
    settings.BATON_MAX_CALL_DEPTH = 4
    deploy_document(calls_itself(conditional=True))
    instance = start_instance(key="recursive", variables={"depth": 0, "limit": 6})
    assert instance.status == ProcessInstance.Status.INCIDENT
    settings.BATON_MAX_CALL_DEPTH = 20
    retried = retry_instance(instance_id=str(instance.pk), actor=operator).instance
    assert retried.status == ProcessInstance.Status.COMPLETED
