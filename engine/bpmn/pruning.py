"""Which finished tasks leave an instance's stored state (issue 21).

SpiffWorkflow keeps every task it ever created: a loop adds its tasks again each round, so an
instance that loops a thousand times stores (and loads, and walks) thousands of tasks, most
of which can no longer influence the run. The element-run history (engine.models.ElementRun)
keeps what they were for people; the state keeps only:

- the root task (the workflow's `task_tree`);
- every task that is not finished (predicted, waiting, ready, started) or failed (ERROR: an
  operator retries it), with what waits beside them (boundary events, event subprocess
  starts, joins waiting for paths: all unfinished);
- the latest completed run of each element: what an operator can reset to
  (engine.bpmn.inspection.reset_targets lists exactly these) and what a later round reads;
- the arrivals a waiting join still counts: the finished tasks of its gateway (and their
  parents, whose state and data it reads) since the gateway last fired;
- `stays_for_later`: finished tasks a later operation reads (compensation, issue 24, goes
  there);
- above each of those, its nearest `BATON_STATE_HISTORY_DEPTH` ancestors: the parent, whose
  data a task takes back on a reset or a retry, and a short recent history (the admin's
  markers and the conformance trace read it).

Task data is copied forward (a task inherits its parent's data when it becomes ready), so no
task reads the data of an ancestor further up. A kept task whose parent leaves hangs under
its nearest kept ancestor and stores its data whole instead of as a delta against its
parent; it is never one of the tasks above (their parents stay), so no reset or retry reads
the data of its new parent.

This only decides; engine.bpmn.workflow's converters leave the other tasks out of what they
store. The workflow in memory stays whole for the rest of its operation: the element-run
history of the operation compares it with the states the operation began with.
"""

import heapq
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from SpiffWorkflow.specs.Join import Join
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

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
    """A finished task that a later operation reads, whatever its age. None yet: compensation
    (issue 24) will keep completed activities that have compensation handlers here."""
    return False


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


def must_stay(tasks: list[Task], root: Task) -> set[Task]:
    """The tasks a later operation may read (see the module's note), without the parents
    they read as well."""
    staying = {root, *_latest_runs(tasks), *_join_arrivals(tasks)}
    staying.update(_splits_of_waiting_joins(tasks))
    staying.update(t for t in tasks if t.has_state(STAYING_STATES) or stays_for_later(t))
    return staying


def kept_tasks(root: Task, tasks: dict[uuid.UUID, Task], history: int) -> list[KeptTask] | None:
    """The tasks of one workflow (or subprocess) that its stored state keeps, in tree order,
    each with its parent and children among them; None when every task stays."""
    every = list(tasks.values())
    staying = must_stay(every, root)
    kept = {task.id for task in staying}
    kept.update(task._parent for task in staying if task._parent is not None)
    recent = heapq.nlargest(history, every, key=lambda task: task.last_state_change)
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


def leave_out_finished(stored: dict[str, Any], workflow: Any, registry: Any) -> None:
    """Leave out of a workflow's (or subprocess's) stored form the tasks that do not stay."""
    kept = kept_tasks(workflow.task_tree, workflow.tasks, history_size())
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


def leave_out_subprocesses(stored: dict[str, Any]) -> None:
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
