"""Implicit splits and the smaller BPMN constructs (issue 17): each conformance case of
tests/conformance/cases/flows_and_events/ run end to end through the engine services, and
the outcomes a case file cannot state."""

from collections import Counter
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from engine.connectors import ConnectorCall, connector
from engine.models import ProcessInstance, ServiceJob
from engine.services import complete_human_task, start_instance
from engine.services.job_runs import execute_service_job
from processes.validation import DeploymentInvalid, UploadedFile, parse_deployment
from tests.conformance.cases import Case, all_cases
from tests.conformance.runner import run_case, trace_of
from tests.conftest import MovableClock
from tests.engine.service_fixtures import jobs_for_no_worker
from tests.helpers import BPMN_HEADER, deploy_document, line_containing, open_task_elements

CASES = [case for case in all_cases() if case.case_id.startswith("flows_and_events/")]
REPR_MARKS = ("<bpmn", "<Element ", "b'", 'b"', "Error(", "Exception(")


@pytest.fixture
def superuser(db) -> User:
    return User.objects.create_superuser("sam_super", password="not-used-here")


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 25


def _case(name: str) -> Case:
    return next(c for c in CASES if c.case_id == f"flows_and_events/{name}")


def test_no_flow_to_take_is_an_incident_at_the_task(superuser: User, clock: MovableClock) -> None:
    run_case(_case("conditional_flows_none_true_without_default"), superuser, clock)
    incident = ProcessInstance.objects.get().incident
    assert incident is not None and incident["element_id"] == "s"
    assert "No outgoing sequence flow of 's' can be taken" in incident["error"]


def test_an_uncaught_error_end_event_is_an_incident_naming_the_error(
    superuser: User, clock: MovableClock
) -> None:
    run_case(_case("error_end_event_uncaught"), superuser, clock)
    instance = ProcessInstance.objects.get()
    assert instance.completed_at is None
    incident = instance.incident
    assert incident is not None
    assert (incident["kind"], incident["element_id"], incident["error_code"]) == (
        "error",
        "fail",
        "ORDER_BAD",
    )
    assert "'ORDER_BAD' (Bad order)" in incident["error"]
    event = instance.events.get(type="incident")
    assert (event.element_id, event.payload["error_code"]) == ("fail", "ORDER_BAD")

    # The operator sees it on the instance page, the instance not finished.
    client = Client()
    client.force_login(superuser)
    page = client.get(reverse("admin:engine_processinstance_change", args=[instance.pk]))
    assert page.status_code == 200
    incident_box = page.content.decode()
    assert 'Incident at <code class="baton-id">fail</code>' in incident_box
    assert "ORDER_BAD" in incident_box
    assert "Bad order" in incident_box


# Compensation's refusals (issue 24) replaced the flows' "not supported yet" ones.
REFUSED = [
    c
    for c in all_cases()
    if c.refused and c.case_id.startswith(("flows_and_events/", "compensation/"))
]


def test_every_refusal_names_the_element_and_its_line_in_words(superuser: User) -> None:
    """Each unsupported construct deploys to a message a modeller reads: the element, its
    line, and no Python repr of an exception, bytes or XML."""
    assert len(REFUSED) >= 8
    for case in REFUSED:
        upload = UploadedFile(case.bpmn.name, case.bpmn.read_bytes())
        with pytest.raises(DeploymentInvalid) as refusal:
            parse_deployment([upload])
        text = case.bpmn.read_text()
        for problem in refusal.value.problems:
            assert not any(mark in problem.message for mark in REPR_MARKS), problem
            assert problem.element_id, (case.case_id, problem)
            assert problem.line == line_containing(text, f'id="{problem.element_id}"'), problem
        assert any(str(case.refused) in p.message for p in refusal.value.problems)


@connector("flows_and_events.double")
def _double(params: dict[str, Any], call: ConnectorCall) -> dict[str, Any]:
    return {"value": params["amount"] * 2}


SERVICE_SPLIT = (
    BPMN_HEADER.format(process_id="service_split")
    + """
  <bpmn:process id="service_split" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:serviceTask id="call" camunda:type="external" camunda:topic="flows_and_events.double">
      <bpmn:extensionElements><camunda:inputOutput>
        <camunda:inputParameter name="amount">${amount}</camunda:inputParameter>
        <camunda:outputParameter name="doubled">${result["value"]}</camunda:outputParameter>
      </camunda:inputOutput></bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:userTask id="check" camunda:candidateGroups="managers" />
    <bpmn:scriptTask id="book" scriptFormat="python">
      <bpmn:script>booked = doubled</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:endEvent id="end_check" />
    <bpmn:endEvent id="end_book" />
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="call" />
    <bpmn:sequenceFlow id="f1" sourceRef="call" targetRef="check" />
    <bpmn:sequenceFlow id="f2" sourceRef="call" targetRef="book" />
    <bpmn:sequenceFlow id="f3" sourceRef="check" targetRef="end_check" />
    <bpmn:sequenceFlow id="f4" sourceRef="book" targetRef="end_book" />
  </bpmn:process>
</bpmn:definitions>
"""
)


@pytest.mark.django_db(transaction=True)
def test_a_service_task_splits_its_flows_after_its_job(superuser: User) -> None:
    """Two flows out of a connector task: both branches start when the job's result is
    applied, and the user task branch is saved and loaded with the split behind it."""
    deploy_document(SERVICE_SPLIT)
    with jobs_for_no_worker():
        instance = start_instance(key="service_split", variables={"amount": 21})
    execute_service_job(str(ServiceJob.objects.get(instance=instance).id))
    instance.refresh_from_db()
    assert instance.status == "waiting" and instance.variables["doubled"] == 42
    assert open_task_elements(instance) == {"check"}
    complete_human_task(task_id=instance.human_tasks.get().id, user=superuser, variables={})
    instance.refresh_from_db()
    assert instance.status == "completed" and instance.variables["booked"] == 42
    assert Counter(trace_of(instance)) == Counter(
        ["start", "call", "check", "book", "end_check", "end_book"]
    )
