"""Walking a workflow's task tree at any depth.

SpiffWorkflow 3.2's `TaskIterator` stops descending 1,000 tasks below where it starts
(`max_depth=1000`), and the workflow builds one wherever it looks for work: whether it is
completed, which tasks are ready (`do_engine_steps`), which wait, what to cancel. A loop
adds a few tasks in depth every round, so past about 250 rounds the unfinished tasks lie
below the limit: the workflow stops running them and reports itself completed.

`UnboundedWalks` gives those methods the library's own iterators without the limit. It is
kept in this one place, written against the library's extension points only (a workflow
subclass), so it can be offered upstream as it is: there the fix is `max_depth=None` (no
limit) as the default of `TaskIterator`.
"""

import logging
import math
from typing import Any

from SpiffWorkflow.bpmn.util.subworkflow import BpmnBaseWorkflow
from SpiffWorkflow.bpmn.util.task import BpmnTaskIterator
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskIterator, TaskState

# A depth no tree reaches: the iterators compare their depth with it, so it must be a number.
NO_DEPTH_LIMIT = math.inf

_logger = logging.getLogger("spiff.workflow")


def unbounded_tasks(first_task: Task, **kwargs: Any) -> TaskIterator:
    """The library's plain iterator (the top workflow's tree only) at any depth."""
    return TaskIterator(first_task, max_depth=kwargs.pop("max_depth", NO_DEPTH_LIMIT), **kwargs)


class UnboundedWalks(BpmnBaseWorkflow):
    """Mixed into a workflow (or subprocess) class, before the library's class: each method
    is the library's own, with the iterator it builds given no depth limit."""

    completed: bool  # set by the library's __init__

    def get_tasks_iterator(self, first_task: Task | None = None, **kwargs: Any) -> TaskIterator:
        # Behind get_tasks and get_next_task, so behind do_engine_steps, the task specs'
        # joins and end events, and Baton's own queries.
        kwargs.setdefault("max_depth", NO_DEPTH_LIMIT)
        return BpmnTaskIterator(first_task or self.task_tree, **kwargs)

    def is_completed(self) -> bool:
        if not self.completed:
            unfinished = unbounded_tasks(self.task_tree, state=TaskState.NOT_FINISHED_MASK)
            self.completed = next(unfinished, None) is None
        return self.completed

    def manual_input_required(self) -> bool:
        ready = unbounded_tasks(self.task_tree, state=TaskState.READY, manual=False)
        return next(ready, None) is None

    def update_waiting_tasks(self) -> None:
        for task in unbounded_tasks(self.task_tree, state=TaskState.WAITING):
            task.task_spec._update(task)


def cancel_unfinished(workflow: BpmnBaseWorkflow, success: bool = False) -> list[Task]:
    """`Workflow.cancel` for one workflow (not its subprocesses), at any depth. The library's
    `BpmnWorkflow.cancel` calls the base class's method by name for each subprocess, so a
    subclass cannot reach it through an override."""
    workflow.success = success
    workflow.completed = True
    _logger.info("Workflow cancelled", extra=workflow.collect_log_extras())
    cancelled = list(unbounded_tasks(workflow.task_tree, state=TaskState.NOT_FINISHED_MASK))
    for task in cancelled:
        task.cancel()
    return cancelled
