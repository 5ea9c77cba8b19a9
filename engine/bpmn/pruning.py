"""Which finished tasks leave an instance's stored state (issue 21).

SpiffWorkflow keeps every task it ever created: a loop adds its tasks again each round, so an
instance that loops a thousand times stores (and loads, and walks) thousands of tasks, most
of which can no longer influence the run. The element-run history (engine.models.ElementRun)
keeps what they were for people; the state keeps only:

- the root task of the workflow and of each subprocess kept;
- every task that is not finished (predicted, waiting, ready, started) or failed (ERROR: an
  operator retries it), which covers what waits beside a running activity or scope
  (boundary events, event subprocess starts) and joins waiting for paths;
- the latest completed run of each element, across the subprocesses: what an operator can
  reset to (engine.bpmn.inspection.reset_targets lists exactly these), with the boundary
  events beside it (a reset to an activity resets them too); and the latest task of each
  task spec of each workflow;
- the arrivals a waiting join still counts: the finished tasks of its gateway since it last
  fired, and their parents (the library's joins read their state and data); and the split
  that a structured join (an activity's boundary events) looks up, with its children;
- `stays_for_later`: finished tasks a later operation reads (compensation, issue 24, goes
  there);
- the parents of all of these: a task takes its parent's data back on a reset or a retry;
- the task of each subprocess holding one of the tasks that stay for their own sake
  (unfinished, failed, latest run of an element), outwards; the other subprocesses leave
  with their task;
- the latest `BATON_STATE_HISTORY_SIZE` tasks of each workflow (by their last change): a
  short recent history, which the admin's markers and the conformance trace read.

Task data is copied forward (a task inherits its parent's data when it becomes ready), so no
task reads the data of an ancestor further up. A kept task whose parent leaves hangs under
its nearest kept ancestor and stores its data whole instead of as a delta against its
parent; it is never one of the tasks whose parent stays, so no reset or retry reads the data
of its new parent. Ancestry among kept tasks is as it was, which the joins compare.

This only decides; engine.bpmn.workflow's converter leaves the other tasks out of what it
stores. The workflow in memory stays whole for the rest of its operation: the element-run
history of the operation compares it with the states the operation began with (which were
loaded without the tasks that left, all finished before, so none is taken for a lost run).
"""

import heapq
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from SpiffWorkflow.bpmn.specs.control import BoundaryEventSplit
from SpiffWorkflow.specs.Join import Join
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from .compensating import needed_for_compensation
from .depth import is_descendant
from .stored_tasks import store_whole_data

DEFAULT_HISTORY_SIZE = 50
# Tasks that stay whatever their age: not finished, or failed and waiting for a retry.
STAYING_STATES = TaskState.NOT_FINISHED_MASK | TaskState.ERROR


def history_size() -> int:
    """How many of its latest tasks (by their last change) a workflow's state keeps besides."""
    from django.conf import settings

    return max(0, int(getattr(settings, "BATON_STATE_HISTORY_SIZE", DEFAULT_HISTORY_SIZE)))


@dataclass(frozen=True)
class KeptTask:
    """A task that stays, with its parent and children among the tasks that stay."""

    task: Task
    parent: uuid.UUID | None
    children: list[uuid.UUID]

    @property
    def moved(self) -> bool:
        """Whether its parent left (it hangs under a kept ancestor further up)."""
        return self.parent != self.task._parent


def stays_for_later(task: Task) -> bool:
    """A finished task that a later operation reads, whatever its age: a completed activity
    that can still be compensated, with the data it left, and a task whose compensation
    handlers are still running (engine.bpmn.compensating)."""
    return needed_for_compensation(task)


def _latest_runs(tasks: Iterable[Task]) -> list[Task]:
    """The latest completed task of each task spec (of each element)."""
    latest: dict[str, Task] = {}
    for task in tasks:
        if task.state != TaskState.COMPLETED:
            continue
        seen = latest.get(task.task_spec.name)
        if seen is None or task.last_state_change >= seen.last_state_change:
            latest[task.task_spec.name] = task
    return list(latest.values())


def _nearest_ancestor(task: Task, spec_name: str) -> Task | None:
    """`Task.find_ancestor`, in a loop instead of one recursion per level."""
    current = task.parent
    while current is not None and current.task_spec.name != spec_name:
        current = current.parent
    return current


def _join_arrivals(tasks: Iterable[Task]) -> set[Task]:
    """The finished tasks of each join with an unfinished task, since the join last fired,
    and their parents: the library's joins count them as the paths that arrived."""
    by_join: dict[str, list[Task]] = {}
    for task in tasks:
        if isinstance(task.task_spec, Join):
            by_join.setdefault(task.task_spec.name, []).append(task)
    found: set[Task] = set()
    for group in by_join.values():
        for waiting in [t for t in group if t.has_state(TaskState.NOT_FINISHED_MASK)]:
            # Where the join fired in an earlier round of a loop.
            fired = _nearest_ancestor(waiting, waiting.task_spec.name)
            for task in group:
                if (
                    task.has_state(TaskState.FINISHED_MASK)
                    and (fired is None or is_descendant(task, fired))
                    and not is_descendant(waiting, task)
                ):
                    found.add(task)
                    if task.parent is not None:
                        found.add(task.parent)
    return found


def _splits_of_waiting_joins(tasks: Iterable[Task]) -> set[Task]:
    """For each unfinished task of a structured join (an activity's boundary events, a
    process's start events), the split it looks up among its ancestors, and the split's
    children (the paths the join waits for)."""
    found: set[Task] = set()
    for task in tasks:
        spec = task.task_spec
        if not isinstance(spec, Join) or spec.split_task is None:
            continue
        if task.has_state(TaskState.NOT_FINISHED_MASK):
            split = _nearest_ancestor(task, spec.split_task)
            if split is not None:
                found.add(split)
                found.update(child for child in split.children if child is not None)
    return found


def _with_boundary_siblings(staying: set[Task]) -> set[Task]:
    """A reset to an activity with boundary events resets its events too (the library resets
    every child of the activity's split): they stay beside it."""
    siblings: set[Task] = set()
    for task in staying:
        parent = task.parent
        if parent is not None and isinstance(parent.task_spec, BoundaryEventSplit):
            siblings.update(child for child in parent.children if child is not None)
    return staying | siblings


def must_stay(tasks: list[Task], root: Task) -> set[Task]:
    """The tasks of one workflow (or subprocess) a later operation may read (see the
    module's note), without the parents they read as well."""
    staying = {root, *_latest_runs(tasks), *_join_arrivals(tasks)}
    staying.update(_splits_of_waiting_joins(tasks))
    staying.update(t for t in tasks if t.has_state(STAYING_STATES) or stays_for_later(t))
    return staying


def _latest_elements(workflows: list[Any]) -> list[Task]:
    """The latest completed run of each element, across the workflow and its subprocesses:
    what an operator may reset to (engine.bpmn.inspection.reset_targets)."""
    latest: dict[str, Task] = {}
    for workflow in workflows:
        for task in workflow.tasks.values():
            element = getattr(task.task_spec, "bpmn_id", None)
            if not element or task.state != TaskState.COMPLETED:
                continue
            seen = latest.get(element)
            if seen is None or task.last_state_change >= seen.last_state_change:
                latest[element] = task
    return list(latest.values())


def staying_tasks(top: Any) -> dict[uuid.UUID, set[Task]]:
    """Per workflow (the top one and each subprocess, by its task's id; the top one under
    its root's), the tasks that must stay. A subprocess holding a task that stays for its
    own sake (unfinished, failed, the latest run of an element, `stays_for_later`) keeps its
    task in the workflow around it, and so on outwards; the others leave with their task."""
    workflows = [top, *top.subprocesses.values()]
    key = {id(wf): wf.parent_task_id if wf is not top else top.task_tree.id for wf in workflows}
    staying = {key[id(wf)]: must_stay(list(wf.tasks.values()), wf.task_tree) for wf in workflows}
    for_their_sake = _latest_elements(workflows)
    for workflow in workflows:
        for_their_sake.extend(
            t for t in workflow.tasks.values() if t.has_state(STAYING_STATES) or stays_for_later(t)
        )
    pending = []
    for task in for_their_sake:
        staying[key[id(task.workflow)]].add(task)
        pending.append(task)
    while pending:
        inner = pending.pop().workflow
        if inner is top:
            continue
        task = top.get_task_from_id(inner.parent_task_id)
        outer = staying.get(key.get(id(task.workflow))) if task is not None else None
        if outer is not None and task not in outer:
            outer.add(task)
            pending.append(task)
    return {key: _with_boundary_siblings(tasks) for key, tasks in staying.items()}


def kept_tasks(
    root: Task, tasks: dict[uuid.UUID, Task], staying: set[Task], history: int
) -> list[KeptTask] | None:
    """The tasks of one workflow (or subprocess) that its stored state keeps (`staying`, their
    parents and the `history` latest), in tree order, each with its parent and children
    among them; None when every task stays."""
    kept = {task.id for task in staying}
    kept.update(task._parent for task in staying if task._parent is not None)
    recent = heapq.nlargest(history, tasks.values(), key=lambda task: task.last_state_change)
    kept.update(task.id for task in recent)
    if len(kept) >= len(tasks):
        return None
    order: list[tuple[Task, uuid.UUID | None]] = []
    children: dict[uuid.UUID, list[uuid.UUID]] = {}
    pending: list[tuple[Task, uuid.UUID | None]] = [(root, None)]
    reached = 0
    while pending:
        task, kept_above = pending.pop()
        reached += 1
        if task.id in kept:
            order.append((task, kept_above))
            children[task.id] = []
            if kept_above is not None:
                children[kept_above].append(task.id)
            kept_above = task.id
        below = [child for child in task.children if child is not None]
        pending.extend((child, kept_above) for child in reversed(below))
    if reached != len(tasks):
        return None  # tasks the tree does not reach: leave such a state as it is
    return [KeptTask(task, parent, children[task.id]) for task, parent in order]


def leave_out_finished(stored: dict[str, Any], top: Any, registry: Any) -> None:
    """Leave out of a workflow's stored form (`stored`, what the library's converter made of
    `top`) the tasks that do not stay, in it and in its subprocesses, and the subprocesses
    whose task left."""
    staying = staying_tasks(top)
    history = history_size()
    _leave_out(stored, top, staying[top.task_tree.id], history, registry)
    for task_id, sub in stored.get("subprocesses", {}).items():
        workflow = top.subprocesses.get(uuid.UUID(task_id))
        if workflow is not None:
            _leave_out(sub, workflow, staying[workflow.parent_task_id], history, registry)
    _leave_out_subprocesses(stored)


def _leave_out(
    stored: dict[str, Any], workflow: Any, staying: set[Task], history: int, registry: Any
) -> None:
    kept = kept_tasks(workflow.task_tree, workflow.tasks, staying, history)
    if kept is None:
        return
    records = stored["tasks"]
    tasks = {}
    for entry in kept:
        record = records[str(entry.task.id)]
        record["children"] = [str(child) for child in entry.children]
        if entry.moved:
            store_whole_data(record, registry.convert(registry.clean(entry.task.data)))
        tasks[str(entry.task.id)] = record
    stored["tasks"] = tasks
    if stored.get("last_task") not in tasks:
        stored["last_task"] = None


def _leave_out_subprocesses(stored: dict[str, Any]) -> None:
    """Leave out the stored subprocesses whose task (in the workflow or a subprocess kept)
    was left out, and those inside them."""
    subprocesses: dict[str, Any] = stored.get("subprocesses", {})
    while True:
        tasks = set(stored["tasks"])
        for sub in subprocesses.values():
            tasks.update(sub["tasks"])
        gone = [task_id for task_id in subprocesses if task_id not in tasks]
        if not gone:
            return
        for task_id in gone:
            del subprocesses[task_id]
