"""Walking a workflow's task tree at any depth.

SpiffWorkflow 3.2's `TaskIterator` stops descending 1,000 tasks below where it starts
(`max_depth=1000`), and the workflow builds one wherever it looks for work: whether it is
completed, which tasks are ready (`do_engine_steps`), which wait, what to cancel. A loop
adds a few tasks in depth every round, so past about 250 rounds the unfinished tasks lie
below the limit: the workflow stops running them and reports itself completed.

The joins (the process's end, parallel and inclusive gateways) walk the tree the same way,
and check ancestry with `Task.is_descendant_of`, which recurses once per level and so fails
past Python's recursion limit (about 1,000 levels) when a join runs below a long loop; so
does `Workflow._remove_task`, when a reset removes a deep subtree.

`UnboundedWalks` gives the workflow methods the library's own iterators without the limit,
and the join specs below do the same for theirs, with an ancestry check that loops instead
of recursing; the serializer restores the library's specs as these (`JOIN_CONVERTERS`).
It is all kept in this one place, written against the library's extension points only (a
workflow subclass, task spec subclasses, serializer converters), so it can be offered
upstream as it is: there the fix is `max_depth=None` (no limit) as the default of
`TaskIterator` and loops in `Task.is_descendant_of` and `Workflow._remove_task`.

A walk visits the whole tree, finished tasks included, so it costs time in proportion to the
depth; `_few_matches` spares most of them (a run's steps look for one ready task, and
usually nothing waits), and the rest stay until finished parts of the tree leave the state.
"""

import logging
import math
from collections.abc import Iterator
from typing import Any

from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.serializer.default.task_spec import (
    BpmnTaskSpecConverter,
    ConditionalGatewayConverter,
    ParallelGatewayConverter,
)
from SpiffWorkflow.bpmn.specs.control import _EndJoin
from SpiffWorkflow.bpmn.specs.defaults import InclusiveGateway, ParallelGateway
from SpiffWorkflow.bpmn.util.subworkflow import BpmnBaseWorkflow
from SpiffWorkflow.bpmn.util.task import BpmnTaskIterator
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.deep_merge import DeepMerge
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

    def get_tasks_iterator(self, first_task: Task | None = None, **kwargs: Any) -> Iterator[Task]:
        # Behind get_tasks and get_next_task, so behind do_engine_steps, the task specs'
        # joins and end events, and Baton's own queries.
        kwargs.setdefault("max_depth", NO_DEPTH_LIMIT)
        walk = BpmnTaskIterator(first_task or self.task_tree, **kwargs)
        few = self._few_matches(walk)
        return walk if few is None else iter(few)

    def is_completed(self) -> bool:
        if not self.completed:
            unfinished = unbounded_tasks(self.task_tree, state=TaskState.NOT_FINISHED_MASK)
            few = self._few_matches(unfinished)
            self.completed = not few if few is not None else next(unfinished, None) is None
        return self.completed

    def manual_input_required(self) -> bool:
        ready = unbounded_tasks(self.task_tree, state=TaskState.READY, manual=False)
        return next(ready, None) is None

    def update_waiting_tasks(self) -> None:
        waiting = unbounded_tasks(self.task_tree, state=TaskState.WAITING)
        if self._few_matches(waiting) == []:
            return  # called after every completed task: most of the time, nothing waits
        # The walk itself, lazily as the library's: an update may make tasks further on wait.
        for task in waiting:
            task.task_spec._update(task)

    def _few_matches(self, walk: TaskIterator) -> list[Task] | None:
        """What `walk` (just built) would yield, found without walking, when the walk's order
        cannot matter: it starts at the root and stops nowhere, looks for unfinished tasks
        only (the library never puts one below a predicted task, so it reaches them all),
        cannot step into a subprocess, and at most one task matches. None otherwise: then
        the walk must be taken. Without this, each step of a run walks every task it ran
        before, and a long loop slows down with every round."""
        if (
            walk.task_list != [self.task_tree]
            or walk.end_at_spec is not None
            or not walk.depth_first
            or walk.task_filter.state & TaskState.FINISHED_MASK
            or self.top_workflow.subprocesses
        ):
            return None
        state = walk.task_filter.state
        matches = [
            task
            for task in self.tasks.values()
            if task._state & state and walk.task_filter.matches(task)
        ]
        return matches if len(matches) <= 1 else None

    def _remove_task(self, task_id: Any) -> None:
        """The library's removal of a task and everything below it (a reset), in the same
        order (children first), with a stack instead of one recursion per level."""
        stack: list[tuple[Task, bool]] = [(self.tasks[task_id], False)]
        while stack:
            task, children_removed = stack.pop()
            if not children_removed:
                stack.append((task, True))
                stack.extend((child, False) for child in reversed(task.children))
                continue
            task.parent._children.remove(task.id)
            self.tasks.pop(task.id)
            self._task_removed_notify(task)


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


def is_descendant(task: Task, ancestor: Task) -> bool:
    """`Task.is_descendant_of`, in a loop instead of one recursion per level."""
    current = task.parent
    while current is not None:
        if current == ancestor:
            return True
        current = current.parent
    return False


def merge_finished_inputs(join: Any, my_task: Task) -> None:
    """`UnstructuredJoin._run_hook` (merge the data of the branches that reached the join
    before), with `is_descendant` for its recursive ancestry check."""
    earlier = [
        task
        for task in my_task.workflow.tasks.values()
        if task.task_spec == join
        and task.has_state(TaskState.FINISHED_MASK)
        and not is_descendant(my_task, task)
    ]
    for task in sorted(earlier, key=lambda t: t.last_state_change):
        # From the parent: the data the branch brought, not what was merged before.
        DeepMerge.merge(my_task.data, task.parent.data)
        # After a reset inside a parallel branch, a branch completed before keeps its tasks.
        if task.has_state(TaskState.COMPLETED):
            task._drop_children(force=True)
    my_task._inherit_data()


def _ends_with_scope(task: Task) -> bool:
    """Whether the task waits only while its scope is active, and does not keep it active
    (the start of an event subprocess: engine.bpmn.event_subprocesses)."""
    return bool(getattr(task.task_spec, "ends_with_scope", False))


class EndJoin(_EndJoin):
    """The process's end: waits until no other task is unfinished, at any depth (but those
    that end with the scope, which it cancels), and no compensation handler the scope
    started runs."""

    def _check_threshold_unstructured(self, my_task: Task) -> bool:
        # Imported here: engine.bpmn.compensating builds on this module.
        from .compensating import holds_running_compensation

        unfinished = unbounded_tasks(
            my_task.workflow.task_tree, state=TaskState.NOT_FINISHED_MASK, end_at_spec=self.name
        )
        if not all(task == my_task or _ends_with_scope(task) for task in unfinished):
            return False
        # Compensation handlers the scope started run on (one may run in the workflow of a
        # subprocess that had completed, outside this tree): the scope ends after them.
        return not holds_running_compensation(my_task.workflow)

    def _run_hook(self, my_task: Task) -> bool:
        waiting = unbounded_tasks(my_task.workflow.task_tree, state=TaskState.WAITING)
        for task in [t for t in waiting if _ends_with_scope(t) and t.workflow is my_task.workflow]:
            task.cancel()
        merge_finished_inputs(self, my_task)
        my_task.workflow.data.update(my_task.data)
        return True


class DeepParallelGateway(ParallelGateway):
    def _check_threshold_unstructured(self, my_task: Task) -> bool:
        waiting_inputs = set(self.inputs)

        def remove_ancestor_input(task: Task) -> None:
            # The nearest ancestor that is one of the inputs (a loop, where the library recurses).
            current: Task | None = task
            while current is not None and current.task_spec not in waiting_inputs:
                current = current.parent
            if current is not None:
                waiting_inputs.remove(current.task_spec)

        for task in my_task.workflow.get_tasks(spec_name=self.name):
            if is_descendant(task, my_task):
                # The first round of a loop through this join: not reached before it fires.
                remove_ancestor_input(task)
            elif is_descendant(my_task, task):
                # A later round: the inputs of earlier rounds do not count.
                continue
            elif (
                task.parent.state == TaskState.COMPLETED and task.parent.task_spec in waiting_inputs
            ):
                waiting_inputs.remove(task.parent.task_spec)
        return not waiting_inputs

    def _run_hook(self, my_task: Task) -> bool:
        merge_finished_inputs(self, my_task)
        return True


class DeepInclusiveGateway(InclusiveGateway):
    def _run_hook(self, my_task: Task) -> bool:
        merge_finished_inputs(self, my_task)
        matches, defaults = self._get_matching_outputs(my_task)
        if len(matches + defaults) == 0:
            raise WorkflowTaskException("No conditions satisfied on gateway", task=my_task)
        my_task._sync_children(matches or defaults, TaskState.FUTURE)
        for child in my_task.children:
            child.task_spec._predict(child, mask=TaskState.FUTURE | TaskState.PREDICTED_MASK)
        return True


class _StoredAsLibraryClass:
    """A converter that stores its spec under the library class's type name, and restores
    that name (in specs stored before, too) as Baton's subclass."""

    def __init__(self, target_class: type, registry: Any, typename: str | None = None) -> None:
        library_name = target_class.__mro__[1].__name__
        super().__init__(target_class, registry, typename or library_name)  # type: ignore[call-arg]


class EndJoinConverter(_StoredAsLibraryClass, BpmnTaskSpecConverter):
    pass


class DeepParallelGatewayConverter(_StoredAsLibraryClass, ParallelGatewayConverter):
    pass


class DeepInclusiveGatewayConverter(_StoredAsLibraryClass, ConditionalGatewayConverter):
    pass


JOIN_CONVERTERS = {
    EndJoin: EndJoinConverter,
    DeepParallelGateway: DeepParallelGatewayConverter,
    DeepInclusiveGateway: DeepInclusiveGatewayConverter,
}
