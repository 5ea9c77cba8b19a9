"""Baton's workflow classes: the library's, with a listener for the events they throw,
task walks without a depth limit (engine.bpmn.depth), and event subprocesses and conditional
events as BPMN runs them (engine.bpmn.event_subprocesses).

Created for new instances (and their subprocesses) and restored by the serializer under the
library's type names (so stored states load as these classes), they let a `Run` collect the
signals a workflow throws without replacing methods on the workflow object.
"""

from collections.abc import Callable
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.serializer.default.workflow import (
    BpmnSubWorkflowConverter,
    BpmnWorkflowConverter,
)
from SpiffWorkflow.bpmn.util.event import BpmnEvent
from SpiffWorkflow.bpmn.util.subworkflow import BpmnSubWorkflow
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from .budget import check_call_depth
from .compensating import CompensationStart, cancelled_with_compensation, refresh_compensations
from .depth import UnboundedWalks, cancel_unfinished
from .error_events import interrupt_activities_that_caught_errors, throws_an_error
from .event_subprocesses import interrupt_scope, is_event_subprocess_start, refresh_conditions
from .pruning import leave_out_finished
from .stored_tasks import expand_all

# How often one `do_engine_steps` runs again because a condition came true: conditions that
# keep flipping each other stop there (the next operation goes on).
MAX_CONDITION_ROUNDS = 100

# What an expression the library evaluates without naming a task (a message's correlation
# properties, read as a message is thrown or caught) raises when the data lacks a name or
# holds another type; a task that raises one while it runs fails (an incident), as a script.
EXPRESSION_ERRORS = (ArithmeticError, AttributeError, LookupError, NameError, TypeError, ValueError)


class BatonSubWorkflow(UnboundedWalks, BpmnSubWorkflow):
    def cancel(self, success: bool = False) -> list[Task]:
        return cancel_unfinished(self, success)


class BatonWorkflow(UnboundedWalks, BpmnWorkflow):
    # Called with every event the workflow (or one of its subprocesses) throws, before the
    # workflow itself delivers it inside (engine.bpmn.events.record_thrown_events sets it).
    thrown_listener: Callable[[BpmnEvent], None] | None = None
    # Called with every compensation handler the workflow starts (a Run collects them for the
    # audit trail: engine.bpmn.run.start_run).
    compensation_listener: Callable[[CompensationStart], None] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Interrupting event subprocesses started whose scope is not cancelled yet (it is as
        # soon as no task of the workflow is running: see `_do_engine_steps`).
        self.pending_interruptions: list[Task] = []
        super().__init__(*args, **kwargs)

    def is_completed(self) -> bool:
        """The library's, but a workflow cancelled with compensation completes only once its
        last handler has finished (a handler may run inside a subprocess's workflow)."""
        if cancelled_with_compensation(self):
            self.completed = False
            return False
        return super().is_completed()

    def note_compensation(self, started: CompensationStart) -> None:
        if self.compensation_listener is not None:
            self.compensation_listener(started)

    def interrupt_later(self, started: Task) -> None:
        self.pending_interruptions.append(started)

    def apply_interruptions(self) -> None:
        while self.pending_interruptions:
            interrupt_scope(self.pending_interruptions.pop(0))

    def do_engine_steps(
        self, will_complete_task: Any = None, did_complete_task: Any = None
    ) -> None:
        """The library's, then again while a conditional event fires, an event subprocess
        interrupts its scope or a compensation handler finished (engine.bpmn.compensating:
        the next one starts, or what waited for them goes on)."""
        for _ in range(MAX_CONDITION_ROUNDS):
            self.apply_interruptions()
            super().do_engine_steps(will_complete_task, did_complete_task)
            compensated = refresh_compensations(self)
            if not refresh_conditions(self) and not self.pending_interruptions and not compensated:
                return

    def _do_engine_steps(
        self, will_complete_task: Any = None, did_complete_task: Any = None
    ) -> bool:
        """The library's, but a task is run only while it is still READY (an interruption may
        have cancelled it since the step began), and a pending interruption is applied as
        soon as the task that caused it has finished.

        A copy of `BpmnWorkflow._do_engine_steps` in SpiffWorkflow 3.2.0
        (SpiffWorkflow/bpmn/workflow.py, lines 141-166): the library offers no hook inside
        its loop. What differs is only inside `update_workflow`: the `task.state != READY`
        check before running a task, `interrupt_activities_that_caught_errors` after a task
        that throws an error, and `apply_interruptions()` after each task; the subprocess
        loop and the return value are the library's as they are. On upgrading SpiffWorkflow,
        compare the library's method with this one and carry its changes over."""

        def update_workflow(wf: BpmnSubWorkflow | BpmnWorkflow) -> int:
            count = 0
            for task in wf.get_tasks(state=TaskState.READY):
                if task.state != TaskState.READY or task.task_spec.manual:
                    continue
                if will_complete_task is not None:
                    will_complete_task(task)
                try:
                    task.run()
                except EXPRESSION_ERRORS as exc:
                    raise WorkflowTaskException(
                        f"{type(exc).__name__}: {exc}", task=task, exception=exc
                    ) from exc
                count += 1
                if throws_an_error(task):  # interrupts what caught it (engine.bpmn.error_events)
                    interrupt_activities_that_caught_errors(task)
                if did_complete_task is not None:
                    did_complete_task(task)
                self.apply_interruptions()
            return count

        active_subprocesses = self.get_active_subprocesses()
        for subprocess in sorted(active_subprocesses, key=lambda v: v.depth, reverse=True):
            count = None
            while count is None or count > 0:
                count = update_workflow(subprocess)
            if subprocess.parent_task_id is not None:
                task = self.get_task_from_id(subprocess.parent_task_id)
                task.task_spec._update(task)

        count = update_workflow(self)
        return count > 0 or len(self.get_active_subprocesses()) > len(active_subprocesses)

    def catch(self, event: BpmnEvent) -> None:
        if self.thrown_listener is not None:
            self.thrown_listener(event)
        if event.target is not None and self._catch_innermost(event):
            return
        super().catch(event)

    def _catch_innermost(self, event: BpmnEvent) -> bool:
        """An error or escalation goes to the scope it was thrown in, then outwards, as the
        library's event manager sends it; but where a scope has both a boundary event of the
        activity it came from and an event subprocess that match, the boundary event (the
        closer one) takes it alone. False if nothing in any scope catches it."""
        target = event.target
        while target is not None:
            catching = [
                task
                for task in list(self.event_manager.tasks.values())
                if task.workflow == target and task.task_spec.event_definition.catches(task, event)
            ]
            if catching:
                closer = [t for t in catching if not is_event_subprocess_start(t)]
                for task in closer or catching:
                    task.task_spec.catch(task, event)
                    task.task_spec._update(task)
                return True
            target = target.parent_workflow
        event.target = None  # the library's way on: to every task that waits for it
        return False

    def create_subprocess(self, my_task: Task, spec_name: str) -> BatonSubWorkflow:
        check_call_depth(my_task)
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
    """Stores a BatonWorkflow as the library's workflow and restores that as a BatonWorkflow;
    finished tasks that can no longer influence the run, and the subprocesses they ran, are
    left out (engine.bpmn.pruning), and tasks are stored compactly (engine.bpmn.stored_tasks).
    """

    def __init__(self, target_class: type, registry: Any, typename: str | None = None) -> None:
        super().__init__(target_class, registry, typename or BpmnWorkflow.__name__)

    def to_dict(self, workflow: BpmnWorkflow) -> dict[str, Any]:
        stored: dict[str, Any] = super().to_dict(workflow)
        leave_out_finished(stored, workflow, self.registry)  # its subprocesses' tasks too
        return stored

    def from_dict(self, dct: dict[str, Any]) -> BpmnWorkflow:
        return super().from_dict({**dct, "tasks": expand_all(dct["tasks"])})


class BatonSubWorkflowConverter(BpmnSubWorkflowConverter):
    """Stores a BatonSubWorkflow as the library's subprocess and restores that as Baton's
    (the workflow's converter leaves out its finished tasks, engine.bpmn.pruning)."""

    def __init__(self, target_class: type, registry: Any, typename: str | None = None) -> None:
        super().__init__(target_class, registry, typename or BpmnSubWorkflow.__name__)

    def from_dict(self, dct: dict[str, Any], task: Task, top_workflow: Any) -> BpmnSubWorkflow:
        return super().from_dict({**dct, "tasks": expand_all(dct["tasks"])}, task, top_workflow)


WORKFLOW_CONVERTERS = {
    BatonWorkflow: BatonWorkflowConverter,
    BatonSubWorkflow: BatonSubWorkflowConverter,
}
