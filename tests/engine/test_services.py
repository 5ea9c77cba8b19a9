"""The engine's service functions, called as the edges call them, checked in the database."""

import pytest
from django.core.exceptions import PermissionDenied

from engine.exceptions import Conflict, InvalidInput, NotFound
from engine.models import HumanTask, InstanceEvent, ProcessInstance
from engine.services import claim_task, complete_human_task, start_instance, unclaim_task
from tests.helpers import build_bpmn, deploy_document

EXPENSE_VARIABLES = {"amount": 250, "description": "Taxi", "requester": "bob"}

# Two user tasks in parallel; finishing `urgent` reaches a terminate end event, which
# cancels `routine`.
TERMINATING_BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
    id="Definitions_race" targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="race" name="Race" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:parallelGateway id="fork" />
    <bpmn:userTask id="urgent" name="Urgent" camunda:candidateGroups="managers" />
    <bpmn:userTask id="routine" name="Routine" camunda:candidateGroups="managers" />
    <bpmn:endEvent id="stop_all" name="Stop all">
      <bpmn:terminateEventDefinition id="stop_all_definition" />
    </bpmn:endEvent>
    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="fork" />
    <bpmn:sequenceFlow id="f2" sourceRef="fork" targetRef="urgent" />
    <bpmn:sequenceFlow id="f3" sourceRef="fork" targetRef="routine" />
    <bpmn:sequenceFlow id="f4" sourceRef="urgent" targetRef="stop_all" />
    <bpmn:sequenceFlow id="f5" sourceRef="routine" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""


def event_types(instance: ProcessInstance) -> list[tuple[str, str]]:
    return list(
        InstanceEvent.objects.filter(instance=instance)
        .order_by("created_at", "id")
        .values_list("type", "element_id")
    )


@pytest.fixture
def requester(make_user):
    return make_user("bob_requester")


@pytest.fixture
def instance(expense_definition, requester) -> ProcessInstance:
    return start_instance(
        key="expense_approval", variables=EXPENSE_VARIABLES, business_key="E-1", actor=requester
    )


@pytest.fixture
def task(instance) -> HumanTask:
    return instance.human_tasks.get()


# --- starting ----------------------------------------------------------------------------


def test_start_runs_to_the_first_user_task(instance, requester, expense_definition):
    instance.refresh_from_db()
    assert instance.definition == expense_definition
    assert instance.status == ProcessInstance.Status.WAITING
    assert instance.business_key == "E-1"
    assert instance.started_by == requester
    assert instance.variables["category"] == "medium"
    assert instance.variables["amount"] == 250
    assert instance.state  # the serialized workflow
    assert "spec" not in instance.state

    (row,) = instance.human_tasks.all()
    assert row.element_id == "approve_expense"
    assert row.name == "Approve expense"
    assert row.status == HumanTask.Status.OPEN
    assert row.assignee is None
    assert row.candidate_groups == ["managers"]
    assert row.priority == 50
    assert [f["id"] for f in row.form["fields"]] == ["decision", "comment"]
    assert event_types(instance) == [("started", ""), ("task_created", "approve_expense")]


def test_start_keeps_its_own_copy_of_the_variables(db, bpmn_builder):
    deploy_document(bpmn_builder("tiny"))  # no start form: any variables are taken
    variables = {"order": {"tags": ["a"]}}
    instance = start_instance(key="tiny", variables=variables)
    variables["order"]["tags"].append("changed later")
    instance.refresh_from_db()
    assert instance.variables["order"]["tags"] == ["a"]


def test_a_start_form_holds_the_api_and_the_commands_too(expense_definition):
    with pytest.raises(InvalidInput) as refused:
        start_instance(
            key="expense_approval",
            variables={
                "amount": 5,
                "description": "Coffee",
                "requester": "bob",
                "decision": "approve",
            },
        )
    assert set(refused.value.errors) == {"decision"}
    with pytest.raises(InvalidInput):
        start_instance(key="expense_approval", variables={"amount": "five"})
    assert not ProcessInstance.objects.exists()


def test_start_of_an_unknown_key_raises_not_found(expense_definition):
    with pytest.raises(NotFound):
        start_instance(key="unknown_process", variables={})
    with pytest.raises(NotFound):
        start_instance(key="expense_approval", variables={}, version=2)
    assert not ProcessInstance.objects.exists()


def test_start_refuses_variables_that_are_not_an_object(expense_definition):
    with pytest.raises(InvalidInput):
        start_instance(key="expense_approval", variables=["amount", 5])  # type: ignore[arg-type]
    assert not ProcessInstance.objects.exists()


def test_a_script_failing_at_start_leaves_the_instance_in_incident(db):
    deploy_document(build_bpmn("divides", script="x = 1/0"))
    instance = start_instance(key="divides", variables={"n": 1})

    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.INCIDENT
    assert instance.incident is not None
    assert instance.incident["kind"] == "script"
    assert instance.incident["element_id"] == "prepare"
    assert "ZeroDivisionError: division by zero" in instance.incident["error"]
    # Nothing half-done: the failed script left no variable, and nothing after it started.
    assert instance.variables == {"n": 1}
    assert not HumanTask.objects.exists()
    assert event_types(instance) == [("started", ""), ("incident", "prepare")]
    incident = InstanceEvent.objects.get(instance=instance, type="incident")
    assert incident.payload["kind"] == "script"
    assert "division by zero" in incident.payload["error"]


def test_a_script_failing_after_a_task_keeps_the_completion_in_incident(db, approver):
    deploy_document(build_bpmn("divides_later", script_after="y = 1/0"))
    instance = start_instance(key="divides_later", variables={"n": 1})
    row = instance.human_tasks.get()

    completed = complete_human_task(task_id=row.pk, user=approver, variables={"note": "go"})
    assert completed.status == HumanTask.Status.COMPLETED

    row.refresh_from_db()
    instance.refresh_from_db()
    assert row.status == HumanTask.Status.COMPLETED
    assert row.completed_by == approver
    assert instance.status == ProcessInstance.Status.INCIDENT
    assert instance.incident is not None
    assert instance.incident["element_id"] == "finish"
    assert instance.variables == {"n": 1, "note": "go"}
    assert [t for t, _ in event_types(instance)][-2:] == ["task_completed", "incident"]
    # A person cannot work on an instance in incident; the operator repairs it.
    assert not HumanTask.objects.filter(status__in=HumanTask.ACTIVE_STATUSES).exists()


# --- claiming ----------------------------------------------------------------------------


def test_a_claimed_task_belongs_to_its_assignee(task, approver, approver2):
    claimed = claim_task(task_id=task.pk, user=approver)
    assert claimed.assignee == approver.username
    task.refresh_from_db()
    assert task.status == HumanTask.Status.CLAIMED
    assert task.assignee == approver.username

    with pytest.raises(Conflict):
        claim_task(task_id=task.pk, user=approver2)
    with pytest.raises(PermissionDenied):
        complete_human_task(task_id=task.pk, user=approver2, variables={"decision": "approve"})
    with pytest.raises(PermissionDenied):
        unclaim_task(task_id=task.pk, user=approver2)

    task.refresh_from_db()
    assert task.status == HumanTask.Status.CLAIMED
    assert task.assignee == approver.username
    assert task.instance.status == ProcessInstance.Status.WAITING

    # Claiming again is a no-op, not a second audit event.
    claim_task(task_id=task.pk, user=approver)
    assert [t for t, _ in event_types(task.instance)].count("task_claimed") == 1


def test_unclaim_gives_the_task_back_to_the_group(task, approver, approver2):
    claim_task(task_id=task.pk, user=approver)
    unclaimed = unclaim_task(task_id=task.pk, user=approver)
    assert unclaimed.assignee is None
    task.refresh_from_db()
    assert task.status == HumanTask.Status.OPEN
    assert task.assignee is None

    claim_task(task_id=task.pk, user=approver2)
    complete_human_task(task_id=task.pk, user=approver2, variables={"decision": "approve"})
    task.refresh_from_db()
    assert task.status == HumanTask.Status.COMPLETED
    assert task.completed_by == approver2
    assert task.assignee == approver2.username


def test_outsiders_neither_claim_nor_complete(task, outsider, legal_user):
    for user in (outsider, legal_user):
        with pytest.raises(PermissionDenied):
            claim_task(task_id=task.pk, user=user)
        with pytest.raises(PermissionDenied):
            complete_human_task(task_id=task.pk, user=user, variables={"decision": "approve"})
    task.refresh_from_db()
    assert task.status == HumanTask.Status.OPEN
    assert task.assignee is None


def test_unknown_task_raises_not_found(instance, approver):
    with pytest.raises(NotFound):
        claim_task(task_id="00000000-0000-0000-0000-000000000000", user=approver)


# --- completing --------------------------------------------------------------------------


def test_approve_path(task, approver, requester):
    done = complete_human_task(
        task_id=task.pk, user=approver, variables={"decision": "approve", "comment": "fine"}
    )
    assert done.status == HumanTask.Status.COMPLETED
    instance = ProcessInstance.objects.get(pk=task.instance_id)
    assert instance.status == ProcessInstance.Status.COMPLETED
    assert instance.completed_at is not None
    assert instance.variables["outcome"] == "approved"
    assert instance.variables["comment"] == "fine"

    task.refresh_from_db()
    assert task.status == HumanTask.Status.COMPLETED
    assert task.completed_by == approver
    assert task.completed_at is not None
    assert task.assignee == approver.username
    assert task.submitted_data == {"decision": "approve", "comment": "fine"}


def test_reject_path(task, approver):
    complete_human_task(task_id=task.pk, user=approver, variables={"decision": "reject"})
    instance = ProcessInstance.objects.get(pk=task.instance_id)
    assert instance.status == ProcessInstance.Status.COMPLETED
    assert instance.variables["outcome"] == "rejected"
    assert instance.variables["comment"] is None  # an optional field left empty


def test_audit_events_are_written_in_order(task, approver, requester):
    claim_task(task_id=task.pk, user=approver)
    unclaim_task(task_id=task.pk, user=approver)
    claim_task(task_id=task.pk, user=approver)
    complete_human_task(task_id=task.pk, user=approver, variables={"decision": "approve"})

    events = list(InstanceEvent.objects.filter(instance_id=task.instance_id).order_by("id"))
    assert [(e.type, e.element_id) for e in events] == [
        (InstanceEvent.Type.STARTED, ""),
        (InstanceEvent.Type.TASK_CREATED, "approve_expense"),
        (InstanceEvent.Type.TASK_CLAIMED, "approve_expense"),
        (InstanceEvent.Type.TASK_UNCLAIMED, "approve_expense"),
        (InstanceEvent.Type.TASK_CLAIMED, "approve_expense"),
        (InstanceEvent.Type.TASK_COMPLETED, "approve_expense"),
        (InstanceEvent.Type.COMPLETED, ""),
    ]
    # Ordering by time gives the same sequence as ordering by insertion.
    assert events == list(InstanceEvent.objects.filter(instance_id=task.instance_id))
    assert events[0].actor == requester
    assert events[0].payload == {"version": 1, "business_key": "E-1"}
    assert all(e.actor == approver for e in events[2:6])
    assert events[5].payload["variables"] == {"decision": "approve", "comment": None}
    assert events[5].payload["task"] == str(task.pk)


def test_completing_twice_is_a_conflict_and_changes_nothing(task, approver):
    complete_human_task(task_id=task.pk, user=approver, variables={"decision": "approve"})
    instance = ProcessInstance.objects.get(pk=task.instance_id)
    events = InstanceEvent.objects.count()
    with pytest.raises(Conflict):
        complete_human_task(task_id=task.pk, user=approver, variables={"decision": "reject"})
    with pytest.raises(Conflict):
        claim_task(task_id=task.pk, user=approver)
    after = ProcessInstance.objects.get(pk=task.instance_id)
    assert after.variables == instance.variables
    assert after.lock_version == instance.lock_version
    assert InstanceEvent.objects.count() == events


def test_form_errors_change_nothing(task, approver):
    with pytest.raises(InvalidInput) as raised:
        complete_human_task(task_id=task.pk, user=approver, variables={"comment": "?"})
    assert set(raised.value.errors) == {"decision"}
    with pytest.raises(InvalidInput) as raised:
        complete_human_task(task_id=task.pk, user=approver, variables={"decision": "perhaps"})
    assert set(raised.value.errors) == {"decision"}
    task.refresh_from_db()
    assert task.status == HumanTask.Status.OPEN
    assert task.submitted_data is None
    assert event_types(task.instance)[-1] == ("task_created", "approve_expense")


def test_a_task_left_behind_by_a_terminate_end_event_is_cancelled(db, approver):
    deploy_document(TERMINATING_BPMN, "race.bpmn")
    instance = start_instance(key="race", variables={})
    rows = {row.element_id: row for row in instance.human_tasks.all()}
    assert {key: row.status for key, row in rows.items()} == {"urgent": "open", "routine": "open"}

    complete_human_task(task_id=rows["urgent"].pk, user=approver, variables={})

    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.COMPLETED
    statuses = dict(instance.human_tasks.values_list("element_id", "status"))
    assert statuses == {"urgent": "completed", "routine": "cancelled"}
    assert event_types(instance) == [
        ("started", ""),
        ("task_created", "urgent"),
        ("task_created", "routine"),
        ("task_completed", "urgent"),
        ("task_cancelled", "routine"),
        ("completed", ""),
    ]
    with pytest.raises(Conflict):
        complete_human_task(task_id=rows["routine"].pk, user=approver, variables={})
