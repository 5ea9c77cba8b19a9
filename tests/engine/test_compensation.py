"""Compensation in the engine (issue 24): cancelling with compensation, a workflow saved and
loaded while a handler waits for its job, state pruning that keeps what compensation needs,
and the audit events of each compensation with the operation's actor."""

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from SpiffWorkflow.util.task import TaskState

from engine.bpmn.compensation import begin_cancel_with_compensation, is_compensating
from engine.bpmn.inspection import element_trace
from engine.bpmn.run import start_run
from engine.bpmn.serialization import (
    new_workflow,
    spec_from_json,
    workflow_from_state,
    workflow_to_state,
)
from engine.models import ElementRun, InstanceEvent, ProcessDefinition, ProcessInstance, ServiceJob
from engine.services import complete_human_task, start_instance
from engine.services.human_tasks import HumanTask
from tests.conformance.runner import run_jobs, trace_of
from tests.helpers import deploy_document

pytestmark = pytest.mark.django_db

HEADER = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" '
    'targetNamespace="http://bpmn.io/schema/bpmn">\n'
)


def _script(element_id: str, script: str, *, handler: bool = False) -> str:
    marker = ' isForCompensation="true"' if handler else ""
    return (
        f'<bpmn:scriptTask id="{element_id}"{marker} scriptFormat="python">'
        f"<bpmn:script>{script}</bpmn:script></bpmn:scriptTask>"
    )


def _compensated(activity: str, handler: str) -> str:
    return (
        f'<bpmn:boundaryEvent id="{activity}_comp" attachedToRef="{activity}">'
        "<bpmn:compensateEventDefinition /></bpmn:boundaryEvent>"
        f'<bpmn:association id="{activity}_assoc" sourceRef="{activity}_comp" '
        f'targetRef="{handler}" />'
    )


# book (handler: a script), a subprocess with charge inside (handler: a service task), then a
# user task that waits: cancelling there compensates charge, then book.
CANCELLABLE = (
    HEADER
    + """<bpmn:process id="cancellable" isExecutable="true">
  <bpmn:startEvent id="start" />
  """
    + _script("book", "booked = True")
    + _script("cancel_book", "booked = False", handler=True)
    + """
  <bpmn:subProcess id="payment">
    <bpmn:startEvent id="p_start" />
    """
    + _script("charge", "charged = 30")
    + """
    <bpmn:serviceTask id="refund" name="Refund" isForCompensation="true"
        camunda:type="external" camunda:topic="conformance.echo">
      <bpmn:extensionElements><camunda:inputOutput>
        <camunda:inputParameter name="amount">${charged}</camunda:inputParameter>
        <camunda:outputParameter name="refunded">${result["amount"]}</camunda:outputParameter>
      </camunda:inputOutput></bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:endEvent id="p_end" />
    <bpmn:sequenceFlow id="p1" sourceRef="p_start" targetRef="charge" />
    <bpmn:sequenceFlow id="p2" sourceRef="charge" targetRef="p_end" />
    """
    + _compensated("charge", "refund")
    + """
  </bpmn:subProcess>
  <bpmn:userTask id="wait" />
  <bpmn:endEvent id="end" />
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="book" />
  <bpmn:sequenceFlow id="f2" sourceRef="book" targetRef="payment" />
  <bpmn:sequenceFlow id="f3" sourceRef="payment" targetRef="wait" />
  <bpmn:sequenceFlow id="f4" sourceRef="wait" targetRef="end" />
  """
    + _compensated("book", "cancel_book")
    + """
</bpmn:process>
</bpmn:definitions>"""
)


def _specs(key: str) -> tuple[str, Any, Any]:
    definition = ProcessDefinition.objects.get(key=key)
    spec, subprocess_specs = spec_from_json(definition.dialect, definition.spec)
    return definition.dialect, spec, subprocess_specs


def _saved_and_loaded(dialect: str, workflow: Any, spec: Any, subprocess_specs: Any) -> Any:
    return workflow_from_state(
        dialect, workflow_to_state(dialect, workflow), spec, subprocess_specs
    )


def _by_element(workflow: Any, element_id: str, state_name: str) -> Any:
    for scope in [workflow, *workflow.subprocesses.values()]:
        for task in scope.tasks.values():
            if (
                task.task_spec.bpmn_id == element_id
                and TaskState.get_name(task.state) == state_name
            ):
                return task
    return None


def test_begin_cancel_with_compensation_runs_handlers_and_completes() -> None:
    deploy_document(CANCELLABLE)
    dialect, spec, subprocess_specs = _specs("cancellable")
    workflow = new_workflow(spec, subprocess_specs)
    workflow.do_engine_steps()
    assert _by_element(workflow, "wait", "READY") is not None

    # An operation of its own, on the workflow as stored: cancel with compensation.
    run = start_run(_saved_and_loaded(dialect, workflow, spec, subprocess_specs))
    assert begin_cancel_with_compensation(run) == 2
    run.workflow.do_engine_steps()
    assert _by_element(run.workflow, "wait", "CANCELLED") is not None
    refund = _by_element(run.workflow, "refund", "STARTED")  # parked: it waits for its job
    assert refund is not None
    assert is_compensating(run.workflow) and not run.workflow.is_completed()
    assert [(c.activity_id, c.handler_id, c.reason) for c in run.compensations] == [
        ("charge", "refund", "cancel")
    ]

    # Saved and loaded while the service task handler waits; then its job's result applies.
    run = start_run(_saved_and_loaded(dialect, run.workflow, spec, subprocess_specs))
    refund = _by_element(run.workflow, "refund", "STARTED")
    refund.data["refunded"] = 30
    refund.complete()
    run.workflow.do_engine_steps()
    assert [(c.activity_id, c.handler_id) for c in run.compensations] == [("book", "cancel_book")]
    assert run.workflow.is_completed()
    assert not is_compensating(run.workflow)
    assert run.workflow.data["booked"] is False
    assert run.workflow.data["refunded"] == 30
    trace = element_trace(run.workflow)
    assert trace.index("refund") < trace.index("cancel_book")


def test_begin_cancel_with_nothing_to_compensate_is_a_cancel() -> None:
    deploy_document(
        HEADER
        + """<bpmn:process id="plain" isExecutable="true">
  <bpmn:startEvent id="start" />
  <bpmn:userTask id="wait" />
  <bpmn:endEvent id="end" />
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait" />
  <bpmn:sequenceFlow id="f2" sourceRef="wait" targetRef="end" />
</bpmn:process></bpmn:definitions>"""
    )
    _, spec, subprocess_specs = _specs("plain")
    workflow = new_workflow(spec, subprocess_specs)
    workflow.do_engine_steps()
    run = start_run(workflow)
    assert begin_cancel_with_compensation(run) == 0
    assert run.workflow.is_completed()


def test_a_compensated_activity_is_not_compensated_again() -> None:
    deploy_document(
        HEADER
        + """<bpmn:process id="twice" isExecutable="true">
  <bpmn:startEvent id="start" />"""
        + _script("book", "booked = True")
        + _script("cancel_book", "cancellations = cancellations + 1", handler=True)
        + """
  <bpmn:intermediateThrowEvent id="undo1">
    <bpmn:compensateEventDefinition /></bpmn:intermediateThrowEvent>
  <bpmn:intermediateThrowEvent id="undo2">
    <bpmn:compensateEventDefinition /></bpmn:intermediateThrowEvent>
  <bpmn:endEvent id="end" />
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="book" />
  <bpmn:sequenceFlow id="f2" sourceRef="book" targetRef="undo1" />
  <bpmn:sequenceFlow id="f3" sourceRef="undo1" targetRef="undo2" />
  <bpmn:sequenceFlow id="f4" sourceRef="undo2" targetRef="end" />"""
        + _compensated("book", "cancel_book")
        + "</bpmn:process></bpmn:definitions>"
    )
    instance = start_instance(key="twice", variables={"cancellations": 0}, actor=None)
    assert instance.status == ProcessInstance.Status.COMPLETED
    assert trace_of(instance) == ["start", "book", "cancel_book", "undo1", "undo2", "end"]
    assert instance.variables["cancellations"] == 1


LOOPING = (
    HEADER
    + """<bpmn:process id="looping" isExecutable="true">
  <bpmn:startEvent id="start" />"""
    + _script("book", "rounds = rounds + 1")
    + _script("cancel_book", "undone = rounds", handler=True)
    + """
  <bpmn:exclusiveGateway id="again" default="done" />
  <bpmn:userTask id="wait" />
  <bpmn:intermediateThrowEvent id="undo">
    <bpmn:compensateEventDefinition /></bpmn:intermediateThrowEvent>
  <bpmn:endEvent id="end" />
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="book" />
  <bpmn:sequenceFlow id="f2" sourceRef="book" targetRef="again" />
  <bpmn:sequenceFlow id="loop" sourceRef="again" targetRef="book">
    <bpmn:conditionExpression>rounds &lt; 3</bpmn:conditionExpression></bpmn:sequenceFlow>
  <bpmn:sequenceFlow id="done" sourceRef="again" targetRef="wait" />
  <bpmn:sequenceFlow id="f3" sourceRef="wait" targetRef="undo" />
  <bpmn:sequenceFlow id="f4" sourceRef="undo" targetRef="end" />"""
    + _compensated("book", "cancel_book")
    + "</bpmn:process></bpmn:definitions>"
)


def test_pruning_keeps_completed_activities_that_can_be_compensated(
    settings: Any, operator: User
) -> None:
    settings.BATON_STATE_HISTORY_SIZE = 0  # only what must stay stays
    deploy_document(LOOPING)
    instance = start_instance(key="looping", variables={"rounds": 0}, actor=operator)
    stored = [t for t in instance.state["tasks"].values() if t["task_spec"] == "book"]
    assert len(stored) == 3  # each run of book, with the data it left
    task = HumanTask.objects.get(instance=instance, element_id="wait")
    complete_human_task(task_id=task.pk, user=operator, variables={})
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.COMPLETED
    # (The stored trace keeps only what stays: with no history, not each handler's run.)
    # The last handler to run compensates the first run of book (reverse order).
    assert instance.variables["undone"] == 1
    events = InstanceEvent.objects.filter(instance=instance, type="compensation_started")
    assert events.count() == 3
    assert {event.actor for event in events} == {operator}


def test_compensation_started_events_name_activity_handler_and_reason(operator: User) -> None:
    deploy_document(
        HEADER
        + """<bpmn:process id="audited" isExecutable="true">
  <bpmn:startEvent id="start" />
  <bpmn:scriptTask id="charge" name="Charge card" scriptFormat="python">
    <bpmn:script>amount = 5</bpmn:script></bpmn:scriptTask>
  <bpmn:serviceTask id="refund" name="Refund card" isForCompensation="true"
      camunda:type="external" camunda:topic="conformance.echo" />
  <bpmn:endEvent id="end"><bpmn:compensateEventDefinition /></bpmn:endEvent>
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="charge" />
  <bpmn:sequenceFlow id="f2" sourceRef="charge" targetRef="end" />"""
        + _compensated("charge", "refund")
        + "</bpmn:process></bpmn:definitions>"
    )
    instance = start_instance(key="audited", variables={}, actor=operator)
    assert instance.status != ProcessInstance.Status.COMPLETED
    job = ServiceJob.objects.get(instance=instance)
    assert job.element_id == "refund" and job.status == ServiceJob.Status.PENDING
    event = InstanceEvent.objects.get(instance=instance, type="compensation_started")
    assert event.element_id == "charge"
    assert event.actor == operator
    assert event.payload == {
        "handler": "refund",
        "activity_name": "Charge card",
        "handler_name": "Refund card",
        "reason": "throw",
    }
    assert event.description == "Compensating Charge card (handler Refund card)"
    run_jobs(instance)
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.COMPLETED
    assert trace_of(instance) == ["start", "charge", "refund", "end"]


NOT_WAITING = Path(__file__).resolve().parents[1] / (
    "conformance/cases/compensation/wait_for_completion_false_subprocess.bpmn"
)


def test_a_handler_that_was_not_waited_for_keeps_the_instance_from_completing(
    operator: User,
) -> None:
    # The throw event goes on at once; the handler runs in the payment subprocess, which had
    # completed: the process reaches its end event but completes only after the handler.
    deploy_document(NOT_WAITING.read_text())
    instance = start_instance(
        key="wait_for_completion_false_subprocess", variables={}, actor=operator
    )
    assert instance.status == ProcessInstance.Status.RUNNING
    assert trace_of(instance)[-3:] == ["undo", "after", "end"]
    job = ServiceJob.objects.get(instance=instance)
    assert job.element_id == "refund" and job.status == ServiceJob.Status.PENDING
    run_jobs(instance)
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.COMPLETED
    assert trace_of(instance)[-1] == "refund"
    # What the handler set is merged into the process's data, as a waiting handler's is.
    assert instance.variables["refund_result"] == 100
    assert instance.variables["went_on"] is True


HANDLER_WITH_BOUNDARY = Path(__file__).resolve().parents[1] / (
    "conformance/cases/compensation/handler_error_boundary.bpmn"
)


def test_handler_runs_are_element_runs_like_any_task(operator: User) -> None:
    # The history (and the insights built on it) shows each handler's run, the boundary
    # event of a handler that failed and the path it took, with their outcomes.
    deploy_document(HANDLER_WITH_BOUNDARY.read_text())
    instance = start_instance(key="handler_error_boundary", variables={}, actor=operator)
    run_jobs(instance)
    task = HumanTask.objects.get(instance=instance, element_id="refund_by_hand")
    complete_human_task(task_id=task.pk, user=operator, variables={})
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.COMPLETED
    runs = {
        (run.element_id, run.outcome)
        for run in ElementRun.objects.filter(instance=instance).exclude(element_id="")
    }
    assert {
        ("charge", "completed"),
        ("refund", "error"),
        ("refund_failed", "completed"),
        ("refund_by_hand", "completed"),
        ("end", "completed"),
    } <= runs


@pytest.fixture
def operator(make_user: Any) -> User:
    user: User = make_user("compensation_operator")
    user.is_superuser = True
    user.save(update_fields=["is_superuser"])
    return user
