"""BPMN 2.0 conformance (issue 17): every case of `cases/` deployed, started and driven
through the engine's services against real Postgres; the instance's status, the elements
that ran (in order) and its data must be what the specification says."""

import datetime
from collections import Counter
from typing import Any

import pytest
from django.contrib.auth.models import User
from lxml import etree

from engine.bpmn.inspection import element_trace
from engine.models import EventDelivery, HumanTask, ProcessInstance, ServiceJob, Timer
from engine.selectors.workflows import workflow_of
from engine.services import (
    broadcast_signal,
    complete_human_task,
    correlate_message,
    start_instance,
)
from engine.services.event_outbox import deliver_event
from engine.services.job_runs import execute_service_job
from engine.services.timers import fire_due_timers
from processes.services import deploy
from processes.validation import DeploymentInvalid, UploadedFile
from tests.conformance.cases import Case, all_cases
from tests.conftest import MovableClock

CASES = all_cases()
BPMN = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"
ROUNDS = 20  # a case's events or jobs that lead to more of them end within this many rounds


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


def take_step(
    step: dict[str, Any], instance: ProcessInstance, user: User, clock: MovableClock
) -> None:
    if "complete" in step:
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
    deliver_pending_events()


@pytest.mark.parametrize("case", CASES, ids=[case.case_id for case in CASES])
def test_conformance(case: Case, operator: User, clock: MovableClock) -> None:
    upload = UploadedFile(case.bpmn.name, case.bpmn.read_bytes())
    if case.refused is not None:
        with pytest.raises(DeploymentInvalid) as refused:
            deploy(name=case.case_id, files=[upload], actor=None)
        messages = " | ".join(problem.message for problem in refused.value.problems)
        assert case.refused in messages
        return
    deploy(name=case.case_id, files=[upload], actor=None)
    key = case.process or first_executable_process(case)
    instance = start_instance(key=key, variables=case.variables, actor=operator)
    deliver_pending_events()
    for step in case.steps:
        instance.refresh_from_db()
        take_step(step, instance, operator, clock)
    instance.refresh_from_db()

    trace = element_trace(workflow_of(instance))
    assert (instance.status, trace if case.ordered else Counter(trace)) == (
        case.status,
        case.trace if case.ordered else Counter(case.trace),
    ), f"incident: {instance.incident}"
    for name, value in case.expect_variables.items():
        assert instance.variables.get(name) == value, name
