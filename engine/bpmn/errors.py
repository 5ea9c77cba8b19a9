"""Throwing a BPMN error from a task, so that a boundary error event can catch it."""

from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import (
    ErrorEventDefinition as BpmnErrorEventDefinition,
)
from SpiffWorkflow.bpmn.util.event import BpmnEvent
from SpiffWorkflow.spiff.specs.event_definitions import (
    ErrorEventDefinition as SpiffErrorEventDefinition,
)
from SpiffWorkflow.task import Task


def throw_bpmn_error(
    task: Task,
    dialect: str,
    code: str,
    message: str,
    details: Any = None,
    variables: dict[str, Any] | None = None,
) -> None:
    """Throw error `code` at `task`. After the next engine steps, a caught error has
    cancelled the task (error boundary events interrupt); an uncaught one left it STARTED.

    A catching boundary event receives `{"code", "message", "details"}`: Camunda diagrams get
    it as the variable `error`, SpiffArena diagrams in the event's own variable. `variables`
    (an external worker's, Camunda dialects) are set beside it.
    """
    error = {"code": code, "message": message, "details": details}
    if dialect == "spiff":
        definition: Any = SpiffErrorEventDefinition(code, code=code)
        payload: Any = error
    else:
        definition = BpmnErrorEventDefinition(code, code=code)
        payload = {**(variables or {}), "error": error}
    task.workflow.top_workflow.catch(BpmnEvent(definition, payload, target=task.workflow))
