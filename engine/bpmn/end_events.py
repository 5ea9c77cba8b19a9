"""End events that throw a BPMN error nothing catches.

SpiffWorkflow lets an error that reaches the top of the process without a catcher go (it is
kept among the workflow's outgoing events and dropped): the instance completes as if the
error end event were a none end event. BPMN 2.0 (10.5.1) has an error that no boundary event
or event subprocess catches end nothing gracefully, and Camunda 8 raises an incident for an
uncaught error. Baton's end event fails instead: the task stays in ERROR, the instance is in
an incident that names the error's code and name and the element, and an operator decides
(retry after a fix, skip the end event, or terminate).

`BatonEndEvent` is stored under the library's type name, so stored specs load as it.
"""

from typing import Any

from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.serializer.default.task_spec import EventConverter
from SpiffWorkflow.bpmn.specs.defaults import EndEvent
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import ErrorEventDefinition
from SpiffWorkflow.task import Task

from .compensating import CompensationThrowMixin


class UncaughtBpmnError(WorkflowTaskException):
    """A BPMN error that nothing caught; `error_code` goes into the incident."""

    def __init__(self, message: str, task: Task, error_code: str) -> None:
        super().__init__(message, task=task)
        self.error_code = error_code


def describe_bpmn_error(definition: ErrorEventDefinition) -> str:
    code = definition.code or ""
    name = definition.name or ""
    if code and name and name != code:
        return f"{code!r} ({name})"
    return repr(code or name)


class BatonEndEvent(CompensationThrowMixin, EndEvent):
    """Also compensates first when it is a compensation end event or a cancel end event in
    a transaction (engine.bpmn.compensating)."""

    def _run_hook(self, my_task: Task) -> Any:
        definition = self.event_definition
        if not isinstance(definition, ErrorEventDefinition):
            return super()._run_hook(my_task)
        top = my_task.workflow.top_workflow
        before = len(top.bpmn_events)
        result = super()._run_hook(my_task)
        escaped = [e for e in top.bpmn_events[before:] if e.event_definition is definition]
        if not escaped:
            return result
        for event in escaped:
            top.bpmn_events.remove(event)
        raise UncaughtBpmnError(
            f"The error end event {self.bpmn_id!r} threw the error "
            f"{describe_bpmn_error(definition)} and nothing catches it (no error boundary "
            "event or error event subprocess on the way up).",
            task=my_task,
            error_code=str(definition.code or definition.name or ""),
        )


class BatonEndEventConverter(EventConverter):
    def __init__(self, target_class: type, registry: Any, typename: str | None = None) -> None:
        super().__init__(target_class, registry, typename or EndEvent.__name__)


END_EVENT_CONVERTERS = {BatonEndEvent: BatonEndEventConverter}
