"""Moving tokens by hand (an operator's reset or skip) and ending a workflow where it stands."""

import copy
import uuid
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from .failures import attempt, forget_failure
from .inspection import every_task
from .run import Run
from .walks import workflow_variables


def forget_removed_tasks(workflow: BpmnWorkflow, removed: list[Task]) -> None:
    """Stop the event listening of tasks a reset or migration took out of the tree, so that
    a timer refresh does not bring them back as waiting."""
    for task in removed:
        workflow.event_manager.remove_task(task)


def reset_to_task(workflow: BpmnWorkflow, task_id: str) -> None:
    """Take the workflow back to the completed task `task_id` (it runs again)."""
    before = every_task(workflow)
    workflow.reset_from_task_id(uuid.UUID(task_id))
    # Not the list the library returns: it stops 1,000 tasks below the reset task.
    remaining = {task.id for task in every_task(workflow)}
    forget_removed_tasks(workflow, [task for task in before if task.id not in remaining])


def _complete_without_running(task: Task) -> None:
    """Mark the task completed and move its token on, without the task's own completion work
    (post-script, data outputs): what `Task.complete` does minus the spec's hook. A catching
    event stops listening, or the workflow's next timer refresh would make it wait again."""
    if isinstance(task.task_spec, CatchingEvent):
        task.workflow.top_workflow.event_manager.remove_task(task)
        task.task_spec.event_definition.reset(task)
    task._set_state(TaskState.COMPLETED)
    for child in task.children:
        if not child.has_state(TaskState.FINISHED_MASK):
            child.task_spec._update(child)
    task.workflow._task_completed_notify(task)


def skip(run: Run, task: Task, variables: dict[str, Any] | None) -> None:
    """Complete an active task without running it (no form, no connector call, no
    post-script, no retry of its failed script), with `variables` merged into its data.
    Call inside the services' `running_as`; the engine steps after it are the caller's."""
    forget_failure(task)
    task.data.update(copy.deepcopy(variables or {}))
    attempt(run, lambda: _complete_without_running(task))


def cancel(workflow: BpmnWorkflow) -> None:
    """End the workflow where it stands (terminate), keeping the variables it held: the data
    of its active tasks would otherwise go with them, and an operator reading a terminated
    instance (or compensation handlers that run after) needs what it had reached."""
    variables = workflow_variables(workflow)
    workflow.cancel()
    workflow.data.update(variables)
