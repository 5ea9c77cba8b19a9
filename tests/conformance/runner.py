"""Running a conformance case: deployed, started and driven through the engine's services
against real Postgres; the instance's status, the elements that ran (in order) and its data
must be what the case says."""

import datetime
from collections import Counter
from typing import Any

import pytest
from django.contrib.auth.models import User
from lxml import etree

from engine.bpmn.inspection import element_trace
from engine.connectors import BusinessError, ConnectorCall, connector
from engine.models import (
    EventDelivery,
    HumanTask,
    ProcessInstance,
    ServiceJob,
    StartTrigger,
    Timer,
)
from engine.selectors.workflows import workflow_of
from engine.services import (
    broadcast_signal,
    complete_human_task,
    correlate_message,
    external_tasks,
    start_instance,
)
from engine.services.event_outbox import deliver_event
from engine.services.job_runs import execute_service_job
from engine.services.start_triggers import fire_due_start_timers
from engine.services.timers import fire_due_timers
from processes.services import deploy
from processes.validation import DeploymentInvalid, UploadedFile
from tests.conformance.cases import Case
from tests.conftest import MovableClock

BPMN = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"
ROUNDS = 20  # a case's events or jobs that lead to more of them end within this many rounds


@connector("conformance.echo")
def echo(parameters: dict[str, Any], call: ConnectorCall) -> Any:
    """What the conformance diagrams' service tasks call: answers with its parameters."""
    return dict(parameters)


@connector("conformance.headers")
def headers(parameters: dict[str, Any], call: ConnectorCall) -> Any:
    """Answers with the task headers of the call (Camunda 8 zeebe:taskHeaders)."""
    return dict(call.headers)


@connector("conformance.fail")
def fail(parameters: dict[str, Any], call: ConnectorCall) -> Any:
    """Fails for certain: throws the BPMN error `code` of its parameters."""
    raise BusinessError(str(parameters.get("code", "failed")), "conformance.fail was called")


def trace_of(instance: ProcessInstance) -> list[str]:
    """The element ids that completed in `instance`, in completion order."""
    return element_trace(workflow_of(instance))


def first_executable_process(case: Case) -> str:
    root = etree.fromstring(case.bpmn.read_bytes())
    for process in root.iter(f"{BPMN}process"):
        if process.get("isExecutable") == "true":
            return str(process.get("id"))
    raise AssertionError(f"{case.case_id}: no executable process")


def deliver_pending_events() -> None:
    """What the events worker does with deliveries written after commit."""
    for _ in range(ROUNDS):
        pending = list(
            EventDelivery.objects.filter(status=EventDelivery.Status.PENDING).values_list(
                "id", flat=True
            )
        )
        if not pending:
            return
        for delivery_id in pending:
            deliver_event(str(delivery_id))


def run_jobs(instance: ProcessInstance) -> None:
    """What the workers do with the instance's service jobs, until none is left to run."""
    for _ in range(ROUNDS):
        jobs = list(
            ServiceJob.objects.filter(
                instance=instance, status__in=ServiceJob.ACTIVE_STATUSES
            ).values_list("id", flat=True)
        )
        if not jobs:
            return
        for job_id in jobs:
            execute_service_job(str(job_id))
        deliver_pending_events()


def fire_next_timer(instance: ProcessInstance, clock: MovableClock) -> None:
    """Move the clock just past the instance's next timer, and fire what is due."""
    timer = Timer.objects.filter(instance=instance, fired=False).order_by("due_at").first()
    assert timer is not None, "no timer waits"
    if timer.due_at > clock.now():
        clock.advance(timer.due_at - clock.now() + datetime.timedelta(seconds=1))
    fire_due_timers()


def fire_start_timer(key: str, clock: MovableClock) -> None:
    """Move the clock just past the process's timer start event, and start what is due."""
    trigger = StartTrigger.objects.filter(
        definition__key=key, kind=StartTrigger.Kind.TIMER, active=True
    ).first()
    assert trigger is not None and trigger.next_due_at is not None, "no timer start waits"
    if trigger.next_due_at > clock.now():
        clock.advance(trigger.next_due_at - clock.now() + datetime.timedelta(seconds=1))
    fire_due_start_timers()


def complete(instance: ProcessInstance, element_id: str, data: Any, user: User) -> None:
    task = (
        HumanTask.objects.filter(
            instance=instance, element_id=element_id, status__in=HumanTask.ACTIVE_STATUSES
        )
        .order_by("created_at", "pk")
        .first()
    )
    assert task is not None, f"no open task {element_id!r}"
    complete_human_task(task_id=task.pk, user=user, variables=data or {})


def work_external_task(step: dict[str, Any], user: User) -> None:
    """A worker fetches one task of the step's topic and answers as the step says:
    `{"external": topic, "variables": {...}}` completes it, with `"bpmn_error": code` it
    throws that error, with `"failure": message` (and `"retries"`) it reports a failure."""
    topic = external_tasks.TopicRequest(step["external"], lock_duration=60_000)
    locked = external_tasks.fetch_and_lock(
        actor=user, worker_id="conformance", topics=[topic], max_tasks=1
    )
    assert locked, f"no external task of topic {step['external']!r} waits"
    worker: dict[str, Any] = {"actor": user, "task_id": locked[0].id, "worker_id": "conformance"}
    if "bpmn_error" in step:
        external_tasks.handle_external_task_bpmn_error(
            **worker, error_code=step["bpmn_error"], variables=step.get("variables")
        )
    elif "failure" in step:
        external_tasks.handle_external_task_failure(
            **worker, error_message=step["failure"], retries=step.get("retries"), retry_timeout=0
        )
    else:
        external_tasks.complete_external_task(**worker, variables=step.get("variables"))


def take_step(
    step: dict[str, Any], instance: ProcessInstance, user: User, clock: MovableClock
) -> None:
    if "start" in step:
        start_instance(key=step["start"], variables=step.get("variables") or {}, actor=user)
    elif "complete" in step:
        complete(instance, step["complete"], step.get("data"), user)
    elif "message" in step:
        correlate_message(
            name=step["message"],
            actor=user,
            variables=step.get("payload"),
            correlation_keys=step.get("correlation"),
        )
    elif "signal" in step:
        broadcast_signal(name=step["signal"], actor=user, variables=step.get("payload"))
    elif "timers" in step:
        fire_next_timer(instance, clock)
    elif "jobs" in step:
        run_jobs(instance)
    elif "external" in step:
        work_external_task(step, user)
    deliver_pending_events()


def run_case(case: Case, operator: User, clock: MovableClock) -> ProcessInstance | None:
    """Deploy, start and drive `case`, and check what it must give; returns its instance
    (None for a case that must be refused)."""
    upload = UploadedFile(case.bpmn.name, case.bpmn.read_bytes())
    if case.refused is not None:
        with pytest.raises(DeploymentInvalid) as refused:
            deploy(name=case.case_id, files=[upload], actor=None)
        messages = " | ".join(problem.message for problem in refused.value.problems)
        assert case.refused in messages
        return None
    uploads = [upload, *(UploadedFile(f.name, f.read_bytes()) for f in case.extra_files)]
    deploy(name=case.case_id, files=uploads, actor=None)
    key = case.process or first_executable_process(case)
    instance = start(case, key, operator, clock)
    deliver_pending_events()
    for step in case.steps:
        instance.refresh_from_db()
        take_step(step, instance, operator, clock)
    instance.refresh_from_db()

    trace = trace_of(instance)
    assert (instance.status, trace if case.ordered else Counter(trace)) == (
        case.status,
        case.trace if case.ordered else Counter(case.trace),
    ), f"incident: {instance.incident}"
    for name, value in case.expect_variables.items():
        assert instance.variables.get(name) == value, name
    for name, text in case.incident.items():
        assert text in str((instance.incident or {}).get(name)), f"incident: {instance.incident}"
    for other in case.others:
        check_other(other, instance)
    return instance


def start(case: Case, key: str, user: User, clock: MovableClock) -> ProcessInstance:
    """The case's instance: started by hand, or by the message, signal or timer of `start`."""
    if case.start is None:
        return start_instance(key=key, variables=case.variables, actor=user)
    if "timers" in case.start:
        fire_start_timer(key, clock)
    elif "message" in case.start:
        correlate_message(
            name=case.start["message"],
            actor=user,
            variables=case.start.get("payload"),
            correlation_keys=case.start.get("correlation"),
        )
    else:
        broadcast_signal(name=case.start["signal"], actor=user, variables=case.start.get("payload"))
    deliver_pending_events()
    instance = ProcessInstance.objects.filter(definition__key=key).order_by("created_at").last()
    assert instance is not None, f"the start event of {key!r} started no instance"
    return instance


def check_other(other: dict[str, Any], main: ProcessInstance) -> None:
    """Another instance of the case (the newest of its process) ends as `other` says."""
    instance = (
        ProcessInstance.objects.filter(definition__key=other["process"])
        .exclude(pk=main.pk)
        .order_by("created_at")
        .last()
    )
    assert instance is not None, f"no instance of {other['process']!r}"
    trace = trace_of(instance)
    ordered = other.get("ordered", True)
    assert (instance.status, trace if ordered else Counter(trace)) == (
        other.get("status", "completed"),
        other.get("trace", []) if ordered else Counter(other.get("trace", [])),
    ), f"{other['process']}: incident: {instance.incident}"
    for name, value in other.get("expect_variables", {}).items():
        assert instance.variables.get(name) == value, f"{other['process']}: {name}"
