"""Baton's workflow classes: the library's, with a listener for the events they throw and
task walks without a depth limit (engine.bpmn.depth).

Created for new instances (and their subprocesses) and restored by the serializer under the
library's type names (so stored states load as these classes), they let a `Run` collect the
signals a workflow throws without replacing methods on the workflow object.
"""

from collections.abc import Callable
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer.default.workflow import (
    BpmnSubWorkflowConverter,
    BpmnWorkflowConverter,
)
from SpiffWorkflow.bpmn.util.event import BpmnEvent
from SpiffWorkflow.bpmn.util.subworkflow import BpmnSubWorkflow
from SpiffWorkflow.task import Task

from .depth import UnboundedWalks, cancel_unfinished
from .error_events import interrupt_activities_that_caught_errors, throws_an_error


class BatonSubWorkflow(UnboundedWalks, BpmnSubWorkflow):
    def cancel(self, success: bool = False) -> list[Task]:
        return cancel_unfinished(self, success)


class BatonWorkflow(UnboundedWalks, BpmnWorkflow):
    # Called with every event the workflow (or one of its subprocesses) throws, before the
    # workflow itself delivers it inside (engine.bpmn.events.record_thrown_events sets it).
    thrown_listener: Callable[[BpmnEvent], None] | None = None

    def catch(self, event: BpmnEvent) -> None:
        if self.thrown_listener is not None:
            self.thrown_listener(event)
        super().catch(event)

    def do_engine_steps(
        self,
        will_complete_task: Callable[[Task], None] | None = None,
        did_complete_task: Callable[[Task], None] | None = None,
    ) -> None:
        def completed(task: Task) -> None:
            if throws_an_error(task):  # interrupts what caught it (engine.bpmn.error_events)
                interrupt_activities_that_caught_errors(task)
            if did_complete_task is not None:
                did_complete_task(task)

        super().do_engine_steps(will_complete_task, completed)

    def create_subprocess(self, my_task: Task, spec_name: str) -> BatonSubWorkflow:
        subprocess = BatonSubWorkflow(
            self.subprocess_specs[spec_name], parent_task_id=my_task.id, top_workflow=self
        )
        self.subprocesses[my_task.id] = subprocess
        return subprocess

    def cancel(self, workflow: BpmnSubWorkflow | None = None) -> list[Task]:
        """The library's, with `cancel_unfinished` for the base class's method it names."""
        cancelled = cancel_unfinished(workflow or self)
        cancelled_ids = {task.id for task in cancelled}
        inside = [sp for sp_id, sp in self.subprocesses.items() if sp_id in cancelled_ids]
        for subprocess in inside:
            cancelled.extend(self.cancel(subprocess))
        return cancelled


class BatonWorkflowConverter(BpmnWorkflowConverter):
    """Stores a BatonWorkflow as the library's workflow and restores that as a BatonWorkflow."""

    def __init__(self, target_class: type, registry: Any, typename: str | None = None) -> None:
        super().__init__(target_class, registry, typename or BpmnWorkflow.__name__)


class BatonSubWorkflowConverter(BpmnSubWorkflowConverter):
    """Stores a BatonSubWorkflow as the library's subprocess and restores that as Baton's."""

    def __init__(self, target_class: type, registry: Any, typename: str | None = None) -> None:
        super().__init__(target_class, registry, typename or BpmnSubWorkflow.__name__)


WORKFLOW_CONVERTERS = {
    BatonWorkflow: BatonWorkflowConverter,
    BatonSubWorkflow: BatonSubWorkflowConverter,
}
