"""Compensation as BPMN 2.0 runs it (10.5.6 "Compensation", 10.2.2 "Transaction"), on top of
SpiffWorkflow 3.2, which has none.

What the diagram says (read by engine.bpmn.parsing):
- an activity with a compensation boundary event has a compensation handler: the activity
  (`isForCompensation="true"`) the boundary event is associated with. The process spec of the
  activity's level keeps `compensation_handlers` (activity task spec name -> handler task spec
  name); the handler is a task spec of that level without incoming or outgoing flows;
- a subprocess may hold an event subprocess with a compensation start event
  (`compensation_event_subprocess` of its process spec): when the subprocess is compensated it
  runs instead of the handlers inside;
- intermediate throw and end events with a `CompensateEventDefinition` compensate every
  completed activity of their scope, or the one named by `activityRef`, and wait for the
  handlers (`waitForCompletion`, default true); a cancel end event inside a transaction
  compensates the transaction's completed activities before the transaction is left.

How it runs: the task that starts compensation (the owner: the throw or end event, or the
root task when an instance is cancelled with compensation) lists what to compensate once, in
reverse order of completion (a completed subprocess in its place, by its inner activities,
innermost in reverse order too), and keeps that queue in its internal data. Handlers run one
at a time: each is added to the task tree beside the task of the activity it compensates,
with a deep copy of the data that activity left (a multi-instance activity: the activity's
data with what each completed instance changed, kept when the instance was merged, since
instances leave the tree), and started as the engine starts any task (a service task handler
parks and gets a job, a user task waits for a person), as the whole activity: its boundary
events armed, its loop or multi-instance marker making its rounds; it has finished when
nothing under it runs any more (the path a boundary event took included). When a handler has
finished, the next one starts; a throw event that waits goes on when the queue is empty, with
the variables the handlers changed. One that does not wait (`waitForCompletion="false"`) goes
on at once; what its handlers change goes into its scope as it is then, and the scope does not
complete while they run. A handler inside a subprocess that had completed runs in that
subprocess's workflow, reopened while it runs.
An activity is compensated at most once (`COMPENSATED`).

The queue is plain JSON in the owner's internal data, so a workflow saved and loaded while a
handler waits for its job goes on where it was. `refresh_compensations` (called by the
workflow after each round of engine steps) moves the queues on.
"""

import copy
import uuid
from dataclasses import dataclass
from typing import Any

from SpiffWorkflow.bpmn.serializer.default.task_spec import EventConverter
from SpiffWorkflow.bpmn.serializer.helpers.spec import EventDefinitionConverter
from SpiffWorkflow.bpmn.specs.control import BoundaryEventSplit
from SpiffWorkflow.bpmn.specs.defaults import IntermediateThrowEvent
from SpiffWorkflow.bpmn.specs.event_definitions.base import EventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.simple import CancelEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import SubWorkflowTask
from SpiffWorkflow.bpmn.util.event import BpmnEvent
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from .depth import EndJoin, unbounded_tasks

# Internal data of an owner task: its compensation queue (see the module's note).
QUEUE = "baton_compensation"
# Internal data of an activity task that was compensated (it never is again).
COMPENSATED = "baton_compensated"
# Internal data of a handler task (a handler that is a subprocess is not compensated itself).
HANDLER = "baton_compensation_handler"
# Internal data of a multi-instance activity task: its completed instances' data.
INSTANCES = "baton_compensable_instances"
# Internal data of a handler task while it (its boundary events' paths, its instances) runs:
# the stored state keeps it, and its queue looks under it for what still runs.
RUNNING = "baton_compensation_running"

THROW = "throw"
TRANSACTION_CANCEL = "transaction_cancel"
CANCEL = "cancel"


class CompensateEventDefinition(EventDefinition):
    """`compensateEventDefinition`: on a throw or end event, which activity to compensate
    (`activity_ref`, None for all of the scope) and whether to wait for the handlers."""

    def __init__(
        self,
        activity_ref: str | None = None,
        wait_for_completion: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.activity_ref = activity_ref
        self.wait_for_completion = wait_for_completion

    def catches(self, my_task: Task, event: BpmnEvent) -> bool:
        return False  # compensation is started by the throwing task, never delivered

    def throw(self, my_task: Task) -> None:
        pass  # the throwing task spec started the handlers before it ran


@dataclass(frozen=True)
class CompensationStart:
    """One activity whose compensation handler started (the services audit it)."""

    activity_id: str
    activity_name: str
    handler_id: str
    handler_name: str
    reason: str


# -- what a process spec says -----------------------------------------------------------------


def handlers_of(process_spec: Any) -> dict[str, str]:
    """Activity task spec name -> its compensation handler's task spec name, of one level."""
    return dict(getattr(process_spec, "compensation_handlers", None) or {})


def event_subprocess_of(process_spec: Any) -> str | None:
    """The task spec name of the level's event subprocess with a compensation start event."""
    return getattr(process_spec, "compensation_event_subprocess", None)


def _spec_compensates(process_spec: Any, subprocess_specs: dict[str, Any], seen: set[str]) -> bool:
    """Whether compensating a subprocess of `process_spec` has anything to run."""
    if handlers_of(process_spec) or event_subprocess_of(process_spec):
        return True
    for task_spec in process_spec.task_specs.values():
        inner = str(getattr(task_spec, "spec", ""))
        if isinstance(task_spec, SubWorkflowTask) and inner not in seen:
            seen.add(inner)
            if inner in subprocess_specs and _spec_compensates(
                subprocess_specs[inner], subprocess_specs, seen
            ):
                return True
    return False


def _name(task_spec: Any) -> str:
    return str(getattr(task_spec, "bpmn_name", None) or getattr(task_spec, "bpmn_id", "") or "")


# -- which activities to compensate -----------------------------------------------------------


def _key(workflow: Any) -> str:
    return "" if workflow is workflow.top_workflow else str(workflow.parent_task_id)


def _workflow(top: Any, key: str) -> Any:
    return top if key == "" else top.subprocesses.get(uuid.UUID(key))


def _entry(task: Task, handler: str, kind: str, index: int = 0) -> dict[str, Any]:
    return {
        "wf": _key(task.workflow),
        "activity": str(task.id),
        "handler": handler,
        "kind": kind,
        "index": index,
    }


def compensable_entries(
    scope: Any, *, only: str | None = None, cancelled_scopes: bool = False
) -> list[dict[str, Any]]:
    """What compensating the workflow `scope` runs, in order: the handlers of its completed
    activities (only the element `only`, if given) in reverse order of completion, a completed
    subprocess by its compensation event subprocess or else by its inner activities.
    `cancelled_scopes`: subprocesses cancelled while running count too (an instance cancelled
    with compensation compensates what completed inside them)."""
    top = scope.top_workflow
    handlers = handlers_of(scope.spec)
    found: list[tuple[float, list[dict[str, Any]]]] = []
    for task in list(scope.tasks.values()):
        spec = task.task_spec
        element = getattr(spec, "bpmn_id", None)
        if not element or (only is not None and element != only):
            continue
        if task.internal_data.get(COMPENSATED) or task.internal_data.get(HANDLER):
            continue
        handler = handlers.get(spec.name)
        instances = task.internal_data.get(INSTANCES)
        if handler and instances:  # a multi-instance activity: each completed instance
            for index, instance in enumerate(instances):
                if not instance.get("compensated"):
                    found.append((float(instance["at"]), [_entry(task, handler, "mi", index)]))
            continue
        if task.state == TaskState.COMPLETED and handler:
            found.append((task.last_state_change, [_entry(task, handler, "task")]))
            continue
        inner = top.subprocesses.get(task.id)
        finished = task.state == TaskState.COMPLETED or (
            cancelled_scopes and task.state == TaskState.CANCELLED
        )
        if not isinstance(spec, SubWorkflowTask) or inner is None or not finished:
            continue
        esp = event_subprocess_of(inner.spec)
        if task.state == TaskState.COMPLETED and esp:
            found.append((task.last_state_change, [_entry(task, esp, "esp")]))
            continue
        nested = compensable_entries(inner, cancelled_scopes=cancelled_scopes)
        if nested:
            found.append((task.last_state_change, nested))
    found.sort(key=lambda item: item[0], reverse=True)
    return [entry for _, group in found for entry in group]


def _pending_queue(task: Task) -> dict[str, Any] | None:
    """The compensation queue `task` owns while it still has handlers to run, else None."""
    queue = task.internal_data.get(QUEUE)
    return queue if queue and not queue.get("finished") else None


def needed_for_compensation(task: Task) -> bool:
    """Whether a finished task must stay in the stored state for compensation: an owner whose
    queue is not done, or a completed activity that can still be compensated (it has a
    handler, or is a subprocess with something to compensate inside) while its instance runs."""
    if _pending_queue(task) is not None or task.internal_data.get(RUNNING):
        return True
    if task.state != TaskState.COMPLETED or task.internal_data.get(COMPENSATED):
        return False
    top = task.workflow.top_workflow
    if top.completed or task.internal_data.get(HANDLER):
        return False
    spec = task.task_spec
    if spec.name in handlers_of(task.workflow.spec):
        return True
    if isinstance(spec, SubWorkflowTask) and task.id in top.subprocesses:
        return _spec_compensates(top.subprocess_specs.get(spec.spec), top.subprocess_specs, set())
    return False


def instance_changes(activity_data: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """What a multi-instance activity keeps of one completed instance's `data` for its
    handler: the variables the instance has other than the activity's `activity_data` (its
    loopCounter, its element, what it wrote), and the names it removed."""
    return {
        "changes": _changed(activity_data, data),
        "removed": sorted(k for k in activity_data if k not in data),
    }


def instance_data(activity_data: dict[str, Any], instance: dict[str, Any]) -> dict[str, Any]:
    """The data a handler of one instance of a multi-instance activity starts with: the
    activity's, with what the instance changed (`instance_changes`). A state stored before
    only the changes were kept holds the instance's whole data."""
    if "data" in instance:
        return copy.deepcopy(instance["data"])
    data = {k: v for k, v in activity_data.items() if k not in instance.get("removed", ())}
    return {**copy.deepcopy(data), **copy.deepcopy(instance["changes"])}


# -- running the handlers ---------------------------------------------------------------------


def _source(top: Any, entry: dict[str, Any]) -> tuple[Any, Task, dict[str, Any]] | None:
    """(the workflow the handler runs in, its parent task, its data) for `entry`, marking the
    activity compensated; None when there is nothing (left) to compensate."""
    workflow = _workflow(top, entry["wf"])
    activity = workflow.tasks.get(uuid.UUID(entry["activity"])) if workflow is not None else None
    if activity is None:
        return None
    if entry["kind"] == "mi":
        instances = activity.internal_data.get(INSTANCES) or []
        if entry["index"] >= len(instances) or instances[entry["index"]].get("compensated"):
            return None
        instance = instances[entry["index"]]
        instance["compensated"] = True
        return workflow, activity, instance_data(activity.data, instance)
    if activity.internal_data.get(COMPENSATED):
        return None
    activity.internal_data[COMPENSATED] = True
    if entry["kind"] == "esp":
        inner = top.subprocesses.get(activity.id)
        if inner is None:
            return None
        return inner, inner.task_tree, copy.deepcopy(activity.data)
    return workflow, activity, copy.deepcopy(activity.data)


def _start(top: Any, entry: dict[str, Any], reason: str) -> dict[str, Any] | None:
    """Start the handler of `entry`; what the queue keeps of it while it runs."""
    source = _source(top, entry)
    if source is None:
        return None
    workflow, parent, data = source
    spec = workflow.spec.task_specs.get(entry["handler"])
    if spec is None:
        return None
    reopened = bool(workflow.completed)
    workflow.completed = False  # a finished (sub)process runs its handler
    handler = parent._add_child(spec, TaskState.FUTURE)
    handler.internal_data[HANDLER] = True
    handler.internal_data[RUNNING] = True
    handler.data = data
    if isinstance(spec, SubWorkflowTask):  # a subprocess handler, or an event subprocess
        spec.start_workflow(handler)
        handler._set_state(TaskState.STARTED)
    else:
        _arm(handler, parent, data)
    activity_task = _workflow(top, entry["wf"]).tasks[uuid.UUID(entry["activity"])]
    note = getattr(top, "note_compensation", None)
    if note is not None:
        note(
            CompensationStart(
                activity_id=str(activity_task.task_spec.bpmn_id),
                activity_name=_name(activity_task.task_spec),
                handler_id=str(getattr(spec, "bpmn_id", None) or spec.name),
                handler_name=_name(spec),
                reason=reason,
            )
        )
    return {
        "task": str(handler.id),
        "wf": _key(workflow),
        "base": copy.deepcopy(data),
        "reopened": reopened,
    }


def _arm(handler: Task, parent: Task, data: dict[str, Any]) -> None:
    """Start `handler` as a flow starts its activity (the spec's own update): a split in
    front of it arms its boundary events, a loop or multi-instance wrapper makes its rounds
    or instances. The library's update merges the parent's data into the task; the handler
    starts with `data` (one instance of a multi-instance activity differs from the activity's
    data), so the parent shows that data while the handler takes it."""
    kept = parent.data
    parent.data = data
    try:
        # Its children (the activity behind a split, the boundary events) as a flow predicts them.
        handler.task_spec._predict(handler, mask=TaskState.NOT_FINISHED_MASK)
        handler.task_spec._update(handler)
    finally:
        parent.data = kept


def _still_runs(handler: Task) -> bool:
    """Whether anything of a started handler is unfinished: the handler itself, its instances
    or rounds, its boundary events and the paths they took. A path that reached an end event
    leaves the scope's end join waiting for the rest of the scope, not for the handler (and
    what follows it only predicted: predicted tasks are no work that runs)."""
    definite = TaskState.NOT_FINISHED_MASK & ~TaskState.PREDICTED_MASK
    for task in unbounded_tasks(handler, state=definite):
        if not (task.state == TaskState.WAITING and isinstance(task.task_spec, EndJoin)):
            return True
    return False


def _handler_changes(handler: Task, base: dict[str, Any]) -> dict[str, Any]:
    """What a finished handler changed against `base` (the data it started with): a handler
    with boundary events through every task that completed under it, in order (its own
    activity, or the path of the boundary event that interrupted it); else its own data."""
    if not isinstance(handler.task_spec, BoundaryEventSplit):
        return _changed(base, handler.data) if handler.state == TaskState.COMPLETED else {}
    done = [t for t in unbounded_tasks(handler, state=TaskState.COMPLETED) if t is not handler]
    changes: dict[str, Any] = {}
    for task in sorted(done, key=lambda task: task.last_state_change):
        changes.update(_changed(base, task.data))
    return changes


def _changed(base: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in data.items() if k not in base or base[k] != v}


def _close(top: Any, workflow: Any) -> None:
    """A subprocess reopened for a handler is completed again once nothing in it runs."""
    if workflow is top or workflow.completed:
        return
    if next(unbounded_tasks(workflow.task_tree, state=TaskState.NOT_FINISHED_MASK), None) is None:
        workflow.completed = True


def advance(owner: Task) -> bool:
    """Move the queue of `owner` on: when its running handler has finished, merge what the
    handler changed into the data that goes on (`_targets`) and start the next. True if
    anything moved."""
    queue = _pending_queue(owner)
    if queue is None:
        return False
    top = owner.workflow.top_workflow
    current = queue.get("current")
    if current:
        workflow = _workflow(top, current["wf"])
        handler = workflow.tasks.get(uuid.UUID(current["task"])) if workflow is not None else None
        if handler is not None and _still_runs(handler):
            return False
        if handler is not None:
            handler.internal_data.pop(RUNNING, None)
            changes = _handler_changes(handler, current["base"])
            for data in _targets(owner) if changes else ():
                data.update(copy.deepcopy(changes))
        if workflow is not None and current.get("reopened"):
            _close(top, workflow)
        queue["current"] = None
    while queue["pending"]:
        started = _start(top, queue["pending"].pop(0), queue["reason"])
        if started is not None:
            queue["current"] = started
            queue["moves"] = queue.get("moves", 0) + 1
            return True
    queue["finished"] = True
    queue["moves"] = queue.get("moves", 0) + 1
    return True


def begin(owner: Task, reason: str, entries: list[dict[str, Any]], *, wait: bool) -> None:
    """Make `owner` the owner of a queue of `entries` and start the first handler."""
    owner.internal_data[QUEUE] = {
        "reason": reason,
        "pending": entries,
        "current": None,
        "wait": wait,
        "moves": 0,
    }
    advance(owner)


def _targets(owner: Task) -> list[dict[str, Any]]:
    """Where a handler's changes go: the waiting owner's data (it goes on with them), or the
    workflow's data for the root of a cancelled instance. A throw event that did not wait has
    gone on: the handler's changes go into its scope as it is now, the data of each task of
    the scope that is still to finish (what runs on carries them, and the scope's end join
    hands them to the scope's data) and the scope's data itself (BPMN 10.5.6: the handler
    runs in the scope, not beside it)."""
    if owner is owner.workflow.top_workflow.task_tree:
        return [owner.workflow.data]
    queue = owner.internal_data.get(QUEUE) or {}
    if queue.get("wait"):
        return [owner.data]
    scope = owner.workflow
    definite = TaskState.NOT_FINISHED_MASK & ~TaskState.PREDICTED_MASK
    running = unbounded_tasks(scope.task_tree, state=definite)
    return [scope.data, *(task.data for task in running)]


def refresh_compensations(top: Any) -> bool:
    """Move every unfinished compensation queue of the workflow on; True if one moved."""
    moved = False
    for workflow in [top, *top.subprocesses.values()]:
        for task in list(workflow.tasks.values()):
            queue = _pending_queue(task)
            if queue is None:
                continue
            if task.state == TaskState.WAITING:
                before = queue.get("moves", 0)
                task.task_spec._update(task)
                moved = moved or queue.get("moves", 0) != before
            elif advance(task):
                moved = True
                if queue.get("finished"):  # the scope's end join waited for the handlers
                    task.workflow.update_waiting_tasks()
    return moved


def holds_running_compensation(workflow: Any) -> bool:
    """Whether a task of `workflow` (not of its subprocesses) owns a compensation queue that
    has handlers still to run: the scope is not complete while they run (BPMN 10.5.6, also
    when its throw event did not wait for them), though a handler runs in the workflow of a
    subprocess that had completed."""
    return any(_pending_queue(task) is not None for task in workflow.tasks.values())


def cancelled_with_compensation(top: Any) -> bool:
    """Whether the workflow was cancelled with compensation and handlers are still to run."""
    return top.task_tree is not None and _pending_queue(top.task_tree) is not None


def is_compensating(workflow: Any) -> bool:
    """Whether a compensation queue of the workflow still has handlers to run."""
    return any(
        holds_running_compensation(scope) for scope in [workflow, *workflow.subprocesses.values()]
    )


# -- the throwing events ----------------------------------------------------------------------


def in_transaction(task: Task) -> bool:
    workflow = task.workflow
    if workflow is workflow.top_workflow:
        return False
    parent = workflow.top_workflow.get_task_from_id(workflow.parent_task_id)
    return parent is not None and bool(getattr(parent.task_spec, "transaction", False))


class CompensationThrowMixin:
    """Put in front of an intermediate throw or end event spec: a compensation event (and a
    cancel end event inside a transaction) compensates before it runs, waiting for the
    handlers unless `waitForCompletion="false"`."""

    event_definition: EventDefinition

    def _compensation_plan(self, my_task: Task) -> tuple[str, str | None, bool] | None:
        definition = self.event_definition
        if isinstance(definition, CompensateEventDefinition):
            return THROW, definition.activity_ref, definition.wait_for_completion
        if isinstance(definition, CancelEventDefinition) and in_transaction(my_task):
            return TRANSACTION_CANCEL, None, True
        return None

    def _update_hook(self, my_task: Task) -> bool | None:
        plan = self._compensation_plan(my_task)
        if plan is None:
            return super()._update_hook(my_task)  # type: ignore[misc]
        queue = my_task.internal_data.get(QUEUE)
        if queue is None:
            ready = super()._update_hook(my_task)  # type: ignore[misc]
            if not ready:
                return ready
            reason, only, wait = plan
            begin(my_task, reason, compensable_entries(my_task.workflow, only=only), wait=wait)
            queue = my_task.internal_data[QUEUE]
        else:
            advance(my_task)
        if queue.get("finished") or not queue.get("wait"):
            return True
        if my_task.state != TaskState.WAITING:
            my_task._set_state(TaskState.WAITING)
        return None


class BatonIntermediateThrowEvent(CompensationThrowMixin, IntermediateThrowEvent):
    """The library's intermediate throw event, compensating when its definition says so."""


class BatonIntermediateThrowEventConverter(EventConverter):
    """Stored under the library's type name: stored throw events restore as Baton's."""

    def __init__(self, target_class: type, registry: Any, typename: str | None = None) -> None:
        super().__init__(target_class, registry, typename or IntermediateThrowEvent.__name__)


class CompensateEventDefinitionConverter(EventDefinitionConverter):
    def to_dict(self, event_definition: CompensateEventDefinition) -> dict[str, Any]:
        dct: dict[str, Any] = super().to_dict(event_definition)
        dct["activity_ref"] = event_definition.activity_ref
        dct["wait_for_completion"] = event_definition.wait_for_completion
        return dct


COMPENSATION_CONVERTERS = {
    CompensateEventDefinition: CompensateEventDefinitionConverter,
    BatonIntermediateThrowEvent: BatonIntermediateThrowEventConverter,
}
