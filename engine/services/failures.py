"""What a failed task's incident says: the instance's `incident` field and its audit events."""

from typing import Any

from django.utils import timezone

from engine.bpmn.failures import failure_of
from engine.bpmn.types import WorkflowTask
from engine.models import ProcessInstance

from .audit import record_event


def script_incident(task: WorkflowTask) -> dict[str, Any]:
    """The instance's `incident` for a task whose script or expression failed."""
    failure = failure_of(task)
    return {
        "kind": "error" if failure.error_code else "script",
        "element_id": failure.element_id,
        "task": failure.task_id,
        "error": failure.message,
        "error_code": failure.error_code,
        "attempts": failure.attempts,
        "since": timezone.now().isoformat(),
    }


def record_script_incidents(instance: ProcessInstance, tasks: list[WorkflowTask]) -> None:
    """An `incident` audit event for each task that failed in this operation."""
    for task in tasks:
        failure = failure_of(task)
        record_event(
            instance,
            "incident",
            element_id=failure.element_id,
            payload={
                "kind": "error" if failure.error_code else "script",
                "task": failure.task_id,
                "error": failure.message,
                "error_code": failure.error_code,
                "attempts": failure.attempts,
            },
        )
