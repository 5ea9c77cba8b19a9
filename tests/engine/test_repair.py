"""Operator repairs through the services: reset, skip, migrate, retry with fixed variables,
edit variables and delete finished instances (DESIGN section 7, issue 6)."""

from datetime import timedelta

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from engine.exceptions import Conflict, InvalidInput, NotFound
from engine.models import HumanTask, InstanceEvent, ProcessInstance, ServiceJob
from engine.services import (
    complete_human_task,
    delete_finished_instances,
    migrate_instance,
    plan_migration,
    reset_instance,
    retry_instance,
    set_variables,
    skip_task,
    start_instance,
    terminate_instance,
)
from engine.services.instance_store import load_workflow
from tests.engine.repair_diagrams import approval, approve, open_task
from tests.helpers import build_bpmn, deploy_document


@pytest.fixture
def operator(make_user):
    return make_user("olga_operator", "operators")


@pytest.fixture
def two_step(db):
    deploy_document(approval())
    return start_instance(key="two_step", variables={"amount": 10})


def snapshot(instance: ProcessInstance) -> tuple:
    instance.refresh_from_db()
    return (
        instance.status,
        instance.lock_version,
        instance.state,
        instance.definition_id,
        InstanceEvent.objects.filter(instance=instance).count(),
    )


# --- reset ---------------------------------------------------------------------------------


def test_reset_undoes_the_work_after_the_task_and_the_instance_completes_the_new_way(
    two_step, approver, operator
):
    approve(two_step, approver)
    paying = open_task(two_step, "pay")

    reset_instance(instance_id=two_step.pk, actor=operator, element_id="approve")

    two_step.refresh_from_db()
    paying.refresh_from_db()
    assert paying.status == HumanTask.Status.CANCELLED
    assert two_step.status == ProcessInstance.Status.WAITING
    assert "decision" not in two_step.variables  # the data it had before the approval
    event = InstanceEvent.objects.get(instance=two_step, type="reset")
    assert (event.element_id, event.actor) == ("approve", operator)
    assert event.payload["before"]["active"] == ["pay"]
    assert event.payload["after"]["active"] == ["approve"]

    approve(two_step, approver, decision="reject")
    two_step.refresh_from_db()
    assert two_step.status == ProcessInstance.Status.COMPLETED
    assert two_step.variables["outcome"] == "rejected"


def test_reset_refuses_an_element_the_instance_never_completed(two_step, operator):
    before = snapshot(two_step)
    with pytest.raises(Conflict, match="'pay' is not a completed task"):
        reset_instance(instance_id=two_step.pk, actor=operator, element_id="pay")
    assert snapshot(two_step) == before


def test_repairs_need_the_operators_group(two_step, approver):
    before = snapshot(two_step)
    task_id = str(load_workflow(two_step).get_tasks(manual=True)[0].id)
    with pytest.raises(PermissionDenied):
        reset_instance(instance_id=two_step.pk, actor=approver, element_id="start")
    with pytest.raises(PermissionDenied):
        skip_task(instance_id=two_step.pk, actor=approver, task_id=task_id)
    with pytest.raises(PermissionDenied):
        plan_migration(instance_id=two_step.pk, actor=approver, version=1)
    with pytest.raises(PermissionDenied):
        delete_finished_instances(actor=approver, finished_before=timezone.now())
    assert snapshot(two_step) == before


def test_a_completed_instance_cannot_be_repaired(two_step, approver, operator):
    approve(two_step, approver, decision="reject")
    before = snapshot(two_step)
    assert before[0] == ProcessInstance.Status.COMPLETED
    with pytest.raises(Conflict, match="completed; it cannot be changed"):
        reset_instance(instance_id=two_step.pk, actor=operator, element_id="approve")
    with pytest.raises(Conflict):
        skip_task(instance_id=two_step.pk, actor=operator, task_id=str(two_step.pk))
    with pytest.raises(Conflict):
        set_variables(instance_id=two_step.pk, actor=operator, variables={"x": 1})
    assert snapshot(two_step) == before


def test_terminate_needs_a_reason(two_step, operator):
    before = snapshot(two_step)
    for reason in ("", "   "):
        with pytest.raises(InvalidInput, match="Give a reason"):
            terminate_instance(instance_id=two_step.pk, actor=operator, reason=reason)
    assert snapshot(two_step) == before
    terminate_instance(instance_id=two_step.pk, actor=operator, reason="  a duplicate ")
    assert snapshot(two_step)[0] == ProcessInstance.Status.TERMINATED
    event = InstanceEvent.objects.get(instance=two_step, type="terminated")
    assert event.payload == {"reason": "a duplicate"}


# --- skip ----------------------------------------------------------------------------------


def test_skip_completes_a_user_task_with_the_operators_data(two_step, operator):
    approving = open_task(two_step, "approve")

    skip_task(
        instance_id=two_step.pk,
        actor=operator,
        task_id=str(approving.spiff_task_id),
        variables={"decision": "approve"},
    )

    approving.refresh_from_db()
    assert approving.status == HumanTask.Status.CANCELLED
    assert open_task(two_step, "pay")
    two_step.refresh_from_db()
    assert two_step.variables["decision"] == "approve"
    event = InstanceEvent.objects.get(instance=two_step, type="skipped")
    assert (event.element_id, event.actor, event.payload["variables"]) == (
        "approve",
        operator,
        {"decision": "approve"},
    )


def test_skip_a_failed_script_ends_the_incident(db, operator):
    deploy_document(build_bpmn("divides", script="x = 1/0"))
    instance = start_instance(key="divides", variables={"n": 1})
    assert instance.status == ProcessInstance.Status.INCIDENT
    failed = next(
        t for t in load_workflow(instance).get_tasks() if t.task_spec.bpmn_id == "prepare"
    )

    skip_task(instance_id=instance.pk, actor=operator, task_id=str(failed.id), variables={"x": 0})

    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.WAITING
    assert instance.incident is None
    assert instance.variables["x"] == 0
    assert open_task(instance, "review")


def test_skip_refuses_finished_and_unknown_tasks(two_step, approver, operator):
    approve(two_step, approver)
    done = next(t for t in load_workflow(two_step).get_tasks() if t.task_spec.bpmn_id == "approve")
    before = snapshot(two_step)
    with pytest.raises(Conflict, match="only an active task can be skipped"):
        skip_task(instance_id=two_step.pk, actor=operator, task_id=str(done.id))
    with pytest.raises(NotFound):
        skip_task(instance_id=two_step.pk, actor=operator, task_id="not-a-task")
    with pytest.raises(InvalidInput):
        skip_task(instance_id=two_step.pk, actor=operator, task_id=str(done.id), variables=[1])  # type: ignore[arg-type]
    assert snapshot(two_step) == before


# --- migrate -------------------------------------------------------------------------------


def test_migrate_dry_run_then_real_run_to_a_version_with_an_extra_task(
    two_step, approver, operator
):
    approve(two_step, approver)
    deploy_document(approval(extra_task=True))

    plan = plan_migration(instance_id=two_step.pk, actor=operator, version=2)
    assert plan.possible
    assert (plan.from_version, plan.to_version, plan.added) == (1, 2, ["audit"])
    assert plan.tokens == [{"element_id": "pay", "state": "READY", "maps_to": "pay"}]
    two_step.refresh_from_db()
    assert two_step.definition.version == 1  # a dry run changes nothing

    migrate_instance(instance_id=two_step.pk, actor=operator, version=2)
    two_step.refresh_from_db()
    assert two_step.definition.version == 2
    event = InstanceEvent.objects.get(instance=two_step, type="migrated")
    assert event.payload["before"] == {"version": 1} and event.payload["after"] == {"version": 2}

    pay = open_task(two_step, "pay")
    complete_human_task(task_id=pay.pk, user=approver)
    audit = open_task(two_step, "audit")
    complete_human_task(task_id=audit.pk, user=approver)
    two_step.refresh_from_db()
    assert two_step.status == ProcessInstance.Status.COMPLETED


def test_migrate_refuses_when_an_active_task_has_no_counterpart(two_step, approver, operator):
    approve(two_step, approver)
    deploy_document(approval(drop_pay=True))

    plan = plan_migration(instance_id=two_step.pk, actor=operator, version=2)
    assert not plan.possible
    assert plan.tokens == [{"element_id": "pay", "state": "READY", "maps_to": None}]
    assert "'pay' has no counterpart in version 2" in plan.blocking[0]
    before = snapshot(two_step)
    with pytest.raises(Conflict, match="no counterpart"):
        migrate_instance(instance_id=two_step.pk, actor=operator, version=2)
    assert snapshot(two_step) == before
    with pytest.raises(NotFound):
        plan_migration(instance_id=two_step.pk, actor=operator, version=9)
    with pytest.raises(Conflict, match="already runs version 1"):
        plan_migration(instance_id=two_step.pk, actor=operator, version=1)


# --- variables and retry -------------------------------------------------------------------


def test_retry_after_fixing_the_variables_in_one_step(db, operator):
    deploy_document(build_bpmn("divides_by", script="x = 1/y"))
    instance = start_instance(key="divides_by", variables={"y": 0})
    assert instance.status == ProcessInstance.Status.INCIDENT

    retry_instance(instance_id=str(instance.pk), actor=operator, variables={"y": 4})

    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.WAITING
    assert (instance.variables["y"], instance.variables["x"]) == (4, 0.25)
    changed = InstanceEvent.objects.get(instance=instance, type="variables_changed")
    assert changed.payload["before"] == {"y": 0} and changed.payload["after"] == {"y": 4}


def test_set_variables_can_remove_names_and_refuses_bad_input(two_step, operator):
    set_variables(
        instance_id=two_step.pk, actor=operator, variables={"note": "x"}, remove=["amount"]
    )
    two_step.refresh_from_db()
    assert two_step.variables == {"note": "x"}
    before = snapshot(two_step)
    with pytest.raises(InvalidInput):
        set_variables(instance_id=two_step.pk, actor=operator, variables=["not", "an", "object"])  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="both set and remove"):
        set_variables(instance_id=two_step.pk, actor=operator, variables={"a": 1}, remove=["a"])
    assert snapshot(two_step) == before


# --- delete --------------------------------------------------------------------------------


def test_delete_removes_only_finished_instances_older_than_the_date(db, operator, approver):
    deploy_document(approval())
    old = start_instance(key="two_step")
    terminate_instance(instance_id=old.pk, actor=operator, reason="test")
    ProcessInstance.objects.filter(pk=old.pk).update(
        completed_at=timezone.now() - timedelta(days=40)
    )
    recent = start_instance(key="two_step")
    terminate_instance(instance_id=recent.pk, actor=operator, reason="test")
    running = start_instance(key="two_step")
    ProcessInstance.objects.filter(pk=running.pk).update(
        created_at=timezone.now() - timedelta(days=60)
    )

    deleted = delete_finished_instances(
        actor=operator, finished_before=timezone.now() - timedelta(days=30)
    )

    assert deleted == 1
    assert set(ProcessInstance.objects.values_list("pk", flat=True)) == {recent.pk, running.pk}
    assert not InstanceEvent.objects.filter(instance_id=old.pk).exists()
    entry = LogEntry.objects.get(object_id=str(old.pk))
    assert (entry.action_flag, entry.user) == (DELETION, operator)


def approval_then_call() -> str:
    from tests.engine.service_diagrams import HEADER, service_task

    return (
        HEADER
        + """  <bpmn:process id="approve_call" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:userTask id="approve" camunda:candidateGroups="managers" />
"""
        + service_task("call", '"http://127.0.0.1:9/never"')
        + """    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="approve" />
    <bpmn:sequenceFlow id="f2" sourceRef="approve" targetRef="call" />
    <bpmn:sequenceFlow id="f3" sourceRef="call" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""
    )


def test_reset_cancels_the_job_of_a_removed_service_task(db, approver, operator):
    deploy_document(approval_then_call())
    instance = start_instance(key="approve_call")
    complete_human_task(task_id=open_task(instance, "approve").pk, user=approver)
    job = instance.jobs.get()
    assert job.status == ServiceJob.Status.PENDING

    reset_instance(instance_id=instance.pk, actor=operator, element_id="approve")

    job.refresh_from_db()
    assert job.status == ServiceJob.Status.CANCELLED
    assert open_task(instance, "approve")
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.WAITING


def test_skip_a_service_task_cancels_its_job_and_uses_the_given_result(db, approver, operator):
    deploy_document(approval_then_call())
    instance = start_instance(key="approve_call")
    complete_human_task(task_id=open_task(instance, "approve").pk, user=approver)
    job = instance.jobs.get()
    call = next(t for t in load_workflow(instance).get_tasks() if t.task_spec.bpmn_id == "call")

    skip_task(instance_id=instance.pk, actor=operator, task_id=str(call.id), variables={"score": 5})

    job.refresh_from_db()
    instance.refresh_from_db()
    assert job.status == ServiceJob.Status.CANCELLED
    assert (instance.status, instance.variables["score"]) == ("completed", 5)


REVIEW_THEN_WAIT = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    id="Definitions_review_wait" targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="review_then_wait" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:userTask id="review" camunda:candidateGroups="managers" />
    <bpmn:intermediateCatchEvent id="a_day">
      <bpmn:timerEventDefinition>
        <bpmn:timeDuration xsi:type="bpmn:tFormalExpression">"P1D"</bpmn:timeDuration>
      </bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="review" />
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="a_day" />
    <bpmn:sequenceFlow id="f3" sourceRef="a_day" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""


def test_reset_before_a_waiting_timer_removes_the_timer(db, approver, operator):
    deploy_document(REVIEW_THEN_WAIT)
    instance = start_instance(key="review_then_wait")
    complete_human_task(task_id=open_task(instance, "review").pk, user=approver)
    assert instance.timers.filter(fired=False).count() == 1

    reset_instance(instance_id=instance.pk, actor=operator, element_id="review")

    assert not instance.timers.filter(fired=False).exists()
    complete_human_task(task_id=open_task(instance, "review").pk, user=approver)
    assert instance.timers.filter(fired=False).count() == 1
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.WAITING


PAY_ONLY = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
    id="Definitions_pay_only" targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="two_step" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:userTask id="pay" name="Pay" camunda:candidateGroups="managers" />
    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="pay" />
    <bpmn:sequenceFlow id="f2" sourceRef="pay" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""


def test_migrate_refuses_a_version_without_an_element_the_instance_has_run(
    two_step, approver, operator
):
    approve(two_step, approver)
    deploy_document(PAY_ONLY)  # no `approve`, which the instance completed

    plan = plan_migration(instance_id=two_step.pk, actor=operator, version=2)
    assert not plan.possible
    assert "'pay'" not in " ".join(plan.blocking)  # the token itself has a counterpart
    assert any("approve" in reason and "no longer has" in reason for reason in plan.blocking)
    before = snapshot(two_step)
    with pytest.raises(Conflict):
        migrate_instance(instance_id=two_step.pk, actor=operator, version=2)
    assert snapshot(two_step) == before
    assert load_workflow(two_step)  # still loads on its own version
