"""An error caught by an interrupting boundary event on a subprocess interrupts it (BPMN 2.0
10.5.6, Camunda 7): the subprocess is cancelled, not completed, and nothing after the throwing
element inside it runs, also when the error comes from a subprocess nested inside it. A cancel
end event inside a transaction subprocess, caught by the transaction's cancel boundary event,
interrupts it the same way.

The library delivers the error to the boundary event while the error end event runs; the end
event then completes, which completes its (sub)process and lets the enclosing flow run on,
and only the boundary event's join, reached later, cancels the activity that has by then
completed. So once an error end event has completed, Baton cancels each activity whose
interrupting error boundary event has caught the error (it is READY: caught, not yet run).
"""

from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import ErrorEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.simple import CancelEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import ThrowingEvent
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import BoundaryEvent
from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import SubWorkflowTask
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

# The events whose catching boundary event ends the activity they were thrown inside.
INTERRUPTING_DEFINITIONS = (ErrorEventDefinition, CancelEventDefinition)


def throws_an_error(task: Task) -> bool:
    spec = task.task_spec
    return isinstance(spec, ThrowingEvent) and isinstance(
        spec.event_definition, INTERRUPTING_DEFINITIONS
    )


def _caught_error(task: Task) -> bool:
    spec = task.task_spec
    return (
        task.state == TaskState.READY
        and isinstance(spec, BoundaryEvent)
        and spec.cancel_activity
        and isinstance(spec.event_definition, INTERRUPTING_DEFINITIONS)
    )


def interrupt_activities_that_caught_errors(thrower: Task) -> None:
    """Cancel each subprocess whose interrupting error (or cancel) boundary event caught the
    event, from the workflows enclosing the end event `thrower` (which has just completed)."""
    workflow = thrower.workflow
    while workflow is not None:
        for boundary in workflow.get_tasks(state=TaskState.READY):
            if not _caught_error(boundary) or boundary.parent is None:
                continue
            for activity in boundary.parent.children:
                if isinstance(activity.task_spec, SubWorkflowTask) and not activity.has_state(
                    TaskState.FINISHED_MASK
                ):
                    activity.cancel()
        workflow = getattr(workflow, "parent_workflow", None)
