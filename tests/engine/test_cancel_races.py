"""Cancel with compensation against what else happens to the instance (issue 24 review): a job
whose result arrives after the cancel, a handler that fails into an incident and is retried
by an operator, the repairs that are refused while the compensation runs, and a task
completed after the cancel. The jobs run here, in the test, as a worker would run them
(tests/conformance/runner.py); the trip example on real workers is in
tests/processes/test_trip_booking.py."""

from typing import Any

import pytest
from django.contrib.auth.models import User

from engine.connectors import BusinessError, ConnectorCall, TransientError, connector
from engine.exceptions import Conflict, EngineError
from engine.models import HumanTask, InstanceEvent, ProcessInstance, ServiceJob
from engine.services import (
    cancel_instance,
    complete_human_task,
    migrate_instance,
    reset_instance,
    resume_instance,
    retry_instance,
    skip_task,
    start_instance,
    suspend_instance,
)
from engine.services.job_operations import cancel_job
from engine.services.job_runs import execute_service_job
from tests.conformance.runner import run_jobs
from tests.engine.test_compensation import HEADER, _compensated, _script
from tests.helpers import deploy_document

pytestmark = pytest.mark.django_db

OPERATOR = "cancel_race_operator"


def _cancel_from_inside(call: ConnectorCall) -> None:
    """An operator's cancel that lands while the job's call is in flight (no lock is held
    during a call, so nothing stops it)."""
    operator = User.objects.get(username=OPERATOR)
    cancel_instance(instance_id=call.instance_id, actor=operator, reason="changed my mind")


@connector("review.cancelled_then_answers")
def cancelled_then_answers(parameters: dict[str, Any], call: ConnectorCall) -> Any:
    _cancel_from_inside(call)
    return {"confirmation": "late"}


@connector("review.cancelled_then_fails")
def cancelled_then_fails(parameters: dict[str, Any], call: ConnectorCall) -> Any:
    _cancel_from_inside(call)
    raise BusinessError("SUPPLIER_DOWN", "the supplier refused, after the cancel")


@connector("review.cancelled_then_times_out")
def cancelled_then_times_out(parameters: dict[str, Any], call: ConnectorCall) -> Any:
    _cancel_from_inside(call)
    raise TransientError("timed out, after the cancel")


def _service(element_id: str, topic: str, *, handler: bool = False) -> str:
    marker = ' isForCompensation="true"' if handler else ""
    return (
        f'<bpmn:serviceTask id="{element_id}"{marker} camunda:type="external" '
        f'camunda:topic="{topic}" />'
    )


def _booking(key: str, topic: str, *, version_note: str = "") -> str:
    """book (undone by the service task unbook), then a service task calling `topic`, then a
    user task that waits."""
    return (
        HEADER
        + f'<bpmn:process id="{key}" isExecutable="true"><bpmn:startEvent id="start" />'
        + _script("book", f"booked = True{version_note}")
        + _service("unbook", "conformance.echo", handler=True)
        + _service("call", topic)
        + f'<bpmn:userTask id="wait" camunda:assignee="{OPERATOR}" />'
        + """<bpmn:endEvent id="end" />
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="book" />
  <bpmn:sequenceFlow id="f2" sourceRef="book" targetRef="call" />
  <bpmn:sequenceFlow id="f3" sourceRef="call" targetRef="wait" />
  <bpmn:sequenceFlow id="f4" sourceRef="wait" targetRef="end" />"""
        + _compensated("book", "unbook")
        + "</bpmn:process></bpmn:definitions>"
    )


@pytest.fixture
def operator(make_user: Any) -> User:
    user: User = make_user(OPERATOR, "operators")
    return user


def _job(instance: ProcessInstance, element_id: str) -> ServiceJob:
    return ServiceJob.objects.get(instance=instance, element_id=element_id)


def _types(instance: ProcessInstance) -> list[str]:
    return list(
        InstanceEvent.objects.filter(instance=instance)
        .order_by("created_at", "id")
        .values_list("type", flat=True)
    )


@pytest.mark.parametrize(
    "topic",
    [
        "review.cancelled_then_answers",
        "review.cancelled_then_fails",
        "review.cancelled_then_times_out",
    ],
)
def test_a_result_arriving_after_the_cancel_changes_nothing(operator: User, topic: str) -> None:
    deploy_document(_booking("late_result", topic))
    instance = start_instance(key="late_result")
    call = _job(instance, "call")
    execute_service_job(str(call.pk))  # the cancel lands during the call

    call.refresh_from_db()
    instance.refresh_from_db()
    # The cancel cancelled the job; its answer (a result, an error, a timeout) was dropped:
    # no incident, no retry, the instance did not move on to "wait".
    assert call.status == ServiceJob.Status.CANCELLED
    assert instance.is_cancelling and instance.status == ProcessInstance.Status.RUNNING
    assert instance.incident is None
    assert not HumanTask.objects.filter(instance=instance).exists()
    assert _job(instance, "unbook").status == ServiceJob.Status.PENDING
    assert "job_succeeded" not in _types(instance) and "incident" not in _types(instance)

    run_jobs(instance)  # the compensation handler
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.TERMINATED
    assert _job(instance, "unbook").status == ServiceJob.Status.SUCCEEDED
    assert _types(instance).count("terminated") == 1 and "completed" not in _types(instance)


def test_a_failed_handler_retried_by_an_operator_ends_terminated(operator: User) -> None:
    deploy_document(_booking("retried_handler", "conformance.echo"))
    instance = start_instance(key="retried_handler")
    run_jobs(instance)
    assert HumanTask.objects.filter(
        instance=instance, status__in=HumanTask.ACTIVE_STATUSES
    ).exists()
    cancel_instance(instance_id=instance.pk, actor=operator, reason="duplicate order")
    # The supplier's cancellation fails for good: the handler's job is dead, an incident.
    cancel_job(job_id=_job(instance, "unbook").pk, actor=operator, reason="supplier down")
    instance.refresh_from_db()
    assert (instance.status, instance.is_cancelling) == ("incident", True)

    retry_instance(instance_id=str(instance.pk), actor=operator)
    run_jobs(instance)
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.TERMINATED
    assert instance.incident is None and instance.completed_at is not None
    terminated = InstanceEvent.objects.get(instance=instance, type="terminated")
    assert terminated.actor == operator
    assert terminated.payload["reason"] == "duplicate order"
    assert "completed" not in _types(instance)


def test_reset_and_migrate_are_refused_while_the_compensation_runs(operator: User) -> None:
    deploy_document(_booking("rewind", "conformance.echo"))
    instance = start_instance(key="rewind")
    run_jobs(instance)
    deploy_document(_booking("rewind", "conformance.echo", version_note="; v = 2"))
    cancel_instance(instance_id=instance.pk, actor=operator, reason="customer withdrew")
    instance.refresh_from_db()
    before = (instance.status, instance.state, instance.definition_id, len(_types(instance)))

    with pytest.raises(Conflict, match="being cancelled"):
        reset_instance(instance_id=instance.pk, actor=operator, element_id="book")
    with pytest.raises(Conflict, match="being cancelled"):
        migrate_instance(instance_id=instance.pk, actor=operator, version=2)
    instance.refresh_from_db()
    after = (instance.status, instance.state, instance.definition_id, len(_types(instance)))
    assert after == before

    # Suspend and resume still work, and the compensation goes on after them.
    suspend_instance(instance_id=instance.pk, actor=operator, reason="look first")
    with pytest.raises(Conflict, match="already being cancelled"):
        cancel_instance(instance_id=instance.pk, actor=operator, reason="again")
    resume_instance(instance_id=instance.pk, actor=operator)
    run_jobs(instance)
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.TERMINATED


def test_a_stuck_handler_can_be_skipped_and_the_instance_terminates(operator: User) -> None:
    deploy_document(_booking("skipped_handler", "conformance.echo"))
    instance = start_instance(key="skipped_handler")
    run_jobs(instance)
    cancel_instance(instance_id=instance.pk, actor=operator, reason="duplicate order")
    handler = _job(instance, "unbook")
    skip_task(instance_id=instance.pk, actor=operator, task_id=handler.spiff_task_id)
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.TERMINATED
    handler.refresh_from_db()
    assert handler.status == ServiceJob.Status.CANCELLED


def test_a_task_completed_after_the_cancel_is_refused(operator: User) -> None:
    deploy_document(_booking("late_completion", "conformance.echo"))
    instance = start_instance(key="late_completion")
    run_jobs(instance)
    task = HumanTask.objects.get(instance=instance, status__in=HumanTask.ACTIVE_STATUSES)
    cancel_instance(instance_id=instance.pk, actor=operator, reason="customer withdrew")
    with pytest.raises(EngineError):
        complete_human_task(task_id=task.id, user=operator, variables={})
    task.refresh_from_db()
    assert task.status == HumanTask.Status.CANCELLED
    assert "task_completed" not in _types(instance)
