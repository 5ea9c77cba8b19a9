"""Running the conformance cases of tests/conformance/cases/flows_and_events/ end to end
through the engine services, in the shared case format (see the brief's "Conformance
cases"), until the shared runner (tests/conformance/test_conformance.py) runs them too."""

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.contrib.auth.models import User
from lxml import etree

from engine.bpmn.inspection import every_task
from engine.bpmn.xml import BPMN_NS
from engine.models import EventDelivery, HumanTask, ProcessInstance
from engine.services import complete_human_task, start_instance
from engine.services.event_outbox import deliver_event
from engine.services.instance_store import load_workflow
from engine.services.messages import correlate_message
from engine.services.signals import broadcast_signal
from processes.models import ProcessDefinition
from processes.services import deploy
from processes.validation import DeploymentInvalid, UploadedFile

CASES_DIR = Path(__file__).resolve().parents[1] / "conformance" / "cases" / "flows_and_events"
# What a message meant for a modeller must never hold: a Python repr of XML, bytes or an error.
REPR_MARKS = ("<bpmn", "<Element ", "b'", 'b"', "Error(", "Exception(")
_COMPLETED = 64  # TaskState.COMPLETED


@dataclass
class Case:
    name: str
    bpmn: Path
    spec: dict[str, Any]


def all_cases() -> list[Case]:
    return [
        Case(path.stem, path, json.loads(path.with_suffix(".json").read_text()))
        for path in sorted(CASES_DIR.glob("*.bpmn"))
    ]


def trace_of(instance: ProcessInstance) -> list[str]:
    """The element ids that completed, in completion order."""
    workflow = load_workflow(instance)
    done = [
        t
        for t in every_task(workflow)
        if t.state == _COMPLETED and getattr(t.task_spec, "bpmn_id", None)
    ]
    done.sort(key=lambda t: t.last_state_change)
    return [t.task_spec.bpmn_id for t in done]


def deploy_case(case: Case) -> list[str]:
    """Deploy the case's diagram; the refusal's messages ([] when it deployed)."""
    upload = UploadedFile(case.bpmn.name, case.bpmn.read_bytes())
    try:
        deploy(name=case.name, files=[upload], actor=None)
    except DeploymentInvalid as exc:
        return [p.message for p in exc.problems]
    return []


def _process(case: Case) -> etree._Element:
    root = etree.fromstring(case.bpmn.read_bytes())
    return next(p for p in root.iter(f"{{{BPMN_NS}}}process") if p.get("isExecutable") == "true")


def _has_none_start(process: etree._Element) -> bool:
    """Whether the process is started by hand (a none start event); else an event starts it."""
    return any(
        not any(etree.QName(child).localname.endswith("EventDefinition") for child in start)
        for start in process.iterchildren(f"{{{BPMN_NS}}}startEvent")
    )


def _instance(key: str) -> ProcessInstance | None:
    return ProcessInstance.objects.filter(definition__key=key).order_by("created_at").last()


def deliver_pending() -> None:
    """What a worker does with the deliveries written after commit."""
    for _ in range(5):
        pending = list(EventDelivery.objects.filter(status="pending").values_list("id", flat=True))
        if not pending:
            return
        for delivery_id in pending:
            deliver_event(str(delivery_id))


def _apply(step: dict[str, Any], instance: ProcessInstance | None, actor: User) -> None:
    if "complete" in step:
        assert instance is not None, "no instance to complete a task of"
        task = instance.human_tasks.filter(
            element_id=step["complete"], status__in=HumanTask.ACTIVE_STATUSES
        ).first()
        assert task is not None, f"no open task {step['complete']!r}"
        complete_human_task(task_id=task.id, user=actor, variables=step.get("data") or {})
    elif "message" in step:
        correlate_message(
            name=step["message"],
            actor=actor,
            variables=step.get("payload") or {},
            correlation_keys=step.get("correlation"),
        )
    elif "signal" in step:
        broadcast_signal(name=step["signal"], actor=actor, variables=step.get("payload") or {})
    else:
        raise AssertionError(f"unknown step {step!r}")
    deliver_pending()


def run_case(case: Case, actor: User) -> None:
    spec = case.spec
    messages = deploy_case(case)
    for message in messages:
        assert not any(mark in message for mark in REPR_MARKS), message
    if spec.get("refused"):
        assert any(spec["refused"] in m for m in messages), messages
        return
    assert not messages, messages
    process = _process(case)
    key = process.get("id") or ""
    steps = list(spec.get("steps") or [])
    if _has_none_start(process):
        start_instance(key=key, variables=spec.get("variables") or {}, actor=actor)
    for step in steps:
        _apply(step, _instance(key), actor)
    instance = _instance(key)
    assert instance is not None
    instance.refresh_from_db()
    assert instance.status == spec["status"], (instance.status, instance.incident)
    trace = trace_of(instance)
    if spec.get("ordered", True):
        assert trace == spec["trace"]
    else:
        assert Counter(trace) == Counter(spec["trace"]), trace
    for name, value in (spec.get("expect_variables") or {}).items():
        assert instance.variables.get(name) == value, (name, instance.variables)
    assert ProcessDefinition.objects.filter(key=key).exists()
