"""Event subprocesses as BPMN 2.0 runs them, and conditional events that notice data changes.

SpiffWorkflow 3.2 starts an event subprocess with a none or timer start event together with
its process (never interrupting it), one with a message or signal start event only in the
top-level process (whichever event the workflow catches next), reads error and escalation
start events as none start events (so they start at once), and never starts a conditional
one. BPMN says instead: while a scope (a process or a subprocess) is active, each of its
event subprocesses waits for its start event; when that happens, an interrupting one
cancels everything else in the scope and the scope goes on with the event subprocess only,
a non-interrupting one runs beside the rest, and may start again.

Baton's parsers (engine.bpmn.parsing) therefore wire each event subprocess of a scope to an
`EventSubprocessStart` task spec, which the scope's start creates beside its first task:
- it waits like a catching event with the start event's definition, so the timer,
  message-subscription and signal-subscription projections list it (under the start
  event's element id), an error or escalation thrown inside the scope reaches it before it
  leaves the scope, and it never completes (so it never counts as an element that ran);
- when its event happens it adds the event subprocess to the scope with the scope's current
  data, and delivers the event to the subprocess's start event;
- interrupting: the workflow cancels the rest of the scope as soon as the task that caused
  the event (if any) has finished (`BatonWorkflow.interrupt_later`; a task cannot be
  cancelled while it runs);
- the scope's end (engine.bpmn.depth.EndJoin) does not wait for it, and cancels it.

Conditional events (start, intermediate, boundary) evaluate their condition over the
current data of their scope after every engine step (`refresh_conditions`) and fire when it
becomes true: not again while it stays true.
"""

import copy
from typing import Any

from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.serializer.default.event_definition import (
    TimerConditionalEventDefinitionConverter,
)
from SpiffWorkflow.bpmn.serializer.default.task_spec import EventConverter
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.bpmn.specs.bpmn_task_spec import BpmnTaskSpec
from SpiffWorkflow.bpmn.specs.event_definitions.base import EventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.conditional import ConditionalEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    TimerEventDefinition,
)
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.bpmn.util.event import BpmnEvent
from SpiffWorkflow.specs.base import TaskSpec
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from .depth import is_descendant, unbounded_tasks
from .scripting import describe_error

LISTENER_SUFFIX = ".EventSubprocessStart"
# A scope's data: the tasks in these states carry it (as in walks.workflow_variables).
_ACTIVE = TaskState.READY | TaskState.WAITING | TaskState.STARTED | TaskState.ERROR
# Internal data of a task with a conditional event: whether its condition held when last
# evaluated (it fires when the condition becomes true).
CONDITION_HELD = "condition_held"
# Internal data of an event subprocess start: how many times its event happened (a timer
# whose start was then cancelled still fired).
STARTED = "event_subprocesses_started"


def _stale(task: Task) -> bool:
    """A waiting catching event keeps the data it had when it began to wait."""
    return task.state == TaskState.WAITING and isinstance(task.task_spec, CatchingEvent)


def _nested_in(subprocess: Any, workflow: Any) -> bool:
    parent = subprocess.parent_workflow
    while parent is not None:
        if parent is workflow:
            return True
        parent = parent.parent_workflow
    return False


def scope_data(workflow: Any, *, deep: bool = False) -> dict[str, Any]:
    """The current data of one scope (a process or a subprocess): its data, updated with
    that of its active tasks (not of those that wait for an event: theirs is old). `deep`:
    and with that of the active subprocesses inside it, whose changes a condition sees."""
    scopes = [workflow]
    if deep:
        inside = workflow.top_workflow.subprocesses.values()
        scopes.extend(sp for sp in inside if not sp.completed and _nested_in(sp, workflow))
    merged: dict[str, Any] = dict(workflow.data)
    merged.pop("data_objects", None)
    for scope in scopes:
        for task in unbounded_tasks(scope.task_tree, state=_ACTIVE):
            if task.workflow is scope and not _stale(task):
                merged.update(task.data)
    return merged


# -- conditional events ---------------------------------------------------------------------


class BatonConditionalEventDefinition(ConditionalEventDefinition):
    """A condition over the current data of the event's scope, that fires when it becomes
    true (the library evaluates it over the data the task had when it began to wait, and
    fires whenever it holds)."""

    def has_fired(self, my_task: Task) -> bool:
        if my_task._get_internal_data("event_fired", False):
            return True  # delivered (the start event of a triggered event subprocess)
        data = {**my_task.data, **scope_data(my_task.workflow, deep=True)}
        try:
            holds = bool(my_task.workflow.script_engine.environment.evaluate(self.expression, data))
        except NameError:
            holds = False  # a variable the condition reads is not set yet
        except Exception as exc:
            raise WorkflowTaskException(
                f"The condition {self.expression!r} failed: {describe_error(exc)}",
                task=my_task,
                exception=exc,
            ) from exc
        held = bool(my_task._get_internal_data(CONDITION_HELD, False))
        my_task._set_internal_data(**{CONDITION_HELD: holds})
        return holds and not held


class BatonConditionalEventDefinitionConverter(TimerConditionalEventDefinitionConverter):
    """Stored under the library's type name; stored conditions restore as Baton's."""

    def __init__(self, target_class: type, registry: Any, typename: str | None = None) -> None:
        super().__init__(target_class, registry, typename or ConditionalEventDefinition.__name__)


def is_conditional(definition: EventDefinition) -> bool:
    return isinstance(definition, ConditionalEventDefinition)


# -- the start of an event subprocess -------------------------------------------------------


class EventSubprocessStart(CatchingEvent, BpmnTaskSpec):
    """Waits, while its scope is active, for the start event of one event subprocess."""

    ends_with_scope = True  # the scope's end does not wait for it (engine.bpmn.depth.EndJoin)

    def __init__(
        self,
        wf_spec: BpmnProcessSpec,
        name: str,
        event_definition: EventDefinition,
        subprocess_name: str,
        start_id: str,
        interrupting: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(wf_spec, name, event_definition, **kwargs)
        self.subprocess_name = subprocess_name  # the event subprocess's task spec in wf_spec
        self.start_id = start_id
        self.interrupting = interrupting
        self.bpmn_id = start_id  # what waits, for the projections: the start event

    def _predict_hook(self, my_task: Task) -> None:
        pass  # its output, the event subprocess, is added when the event happens

    def catches(self, my_task: Task, event: BpmnEvent) -> bool:
        return bool(
            my_task.state == TaskState.WAITING and self.event_definition.catches(my_task, event)
        )

    def catch(self, my_task: Task, event: BpmnEvent) -> None:
        if my_task.state == TaskState.WAITING:
            self._trigger(my_task, event)

    def _update_hook(self, my_task: Task) -> bool | None:
        if my_task.has_state(TaskState.FINISHED_MASK):
            return None
        if my_task.state != TaskState.WAITING:
            TaskSpec._update_hook(self, my_task)  # the scope's start data
            my_task._set_state(TaskState.WAITING)
            my_task.workflow.top_workflow.event_manager.add_task(my_task)
        definition = self.event_definition
        if isinstance(definition, CycleTimerEventDefinition):
            if definition.cycle_complete(my_task):
                self._trigger(my_task, BpmnEvent(definition))
            if (
                my_task._get_internal_data("event_fired", False)
                and my_task.state == TaskState.WAITING
            ):
                my_task.cancel()  # every repetition happened
        elif isinstance(definition, TimerEventDefinition):
            if definition.has_fired(my_task):
                self._trigger(my_task, BpmnEvent(definition))
                if my_task.state == TaskState.WAITING:
                    my_task.cancel()  # a timer fires once
        elif is_conditional(definition) and definition.has_fired(my_task):
            self._trigger(my_task, BpmnEvent(definition))
        return None  # it never becomes READY: it never runs, never completes

    def _trigger(self, my_task: Task, event: BpmnEvent) -> None:
        """Start the event subprocess beside the scope's other tasks, with the scope's data
        now, and hand it the event."""
        scope = my_task.workflow
        top = scope.top_workflow
        my_task.internal_data[STARTED] = my_task.internal_data.get(STARTED, 0) + 1
        spec = scope.spec.task_specs[self.subprocess_name]
        started = my_task.parent._add_child(spec, TaskState.FUTURE)
        started.triggered = True
        spec._predict(started, mask=TaskState.NOT_FINISHED_MASK)  # where it goes when done
        started.data = copy.deepcopy(scope_data(scope))
        spec.start_workflow(started)
        started._set_state(TaskState.STARTED)
        subprocess = top.subprocesses[started.id]
        for start in subprocess.get_tasks(state=TaskState.WAITING, skip_subprocesses=True):
            if isinstance(start.task_spec, StartEvent):
                start.task_spec.catch(start, event)
                start.task_spec._update(start)
                if not start.children:  # the library predicts no path after a cycle timer
                    start._sync_children(start.task_spec.outputs, TaskState.FUTURE)
                    for child in start.children:
                        child.task_spec._predict(child, mask=TaskState.NOT_FINISHED_MASK)
        if self.interrupting:
            top.interrupt_later(started)
            my_task.cancel()  # the scope ends with this event subprocess
        else:
            self.event_definition.reset(my_task)
            if is_conditional(self.event_definition):
                my_task._set_internal_data(**{CONDITION_HELD: True})


class EventSubprocessStartConverter(EventConverter):
    def to_dict(self, spec: EventSubprocessStart) -> dict[str, Any]:
        dct: dict[str, Any] = super().to_dict(spec)
        dct["subprocess_name"] = spec.subprocess_name
        dct["start_id"] = spec.start_id
        dct["interrupting"] = spec.interrupting
        return dct


def wire_event_subprocess(
    process: BpmnProcessSpec,
    subprocess_task: TaskSpec,
    subprocess_spec: BpmnProcessSpec,
    interrupting: bool,
) -> None:
    """Make `process`'s start create a waiting `EventSubprocessStart` for the event
    subprocess `subprocess_task` (whose process is `subprocess_spec`), and let the event
    subprocess end into the process's end."""
    (start,) = subprocess_spec.bpmn_start_events
    listener = EventSubprocessStart(
        process,
        f"{subprocess_task.name}{LISTENER_SUFFIX}",
        start.event_definition,
        subprocess_task.name,
        start.bpmn_id or start.name,
        interrupting,
    )
    process.start.connect(listener)
    # The listener adds the event subprocess beside itself (under the scope's start: it must
    # outlive the listener), but a task spec must have an input.
    listener.connect(subprocess_task)
    subprocess_task.connect(process.end)


def is_event_subprocess_start(task: Task) -> bool:
    return isinstance(task.task_spec, EventSubprocessStart)


def started_event_subprocess(task: Task) -> bool:
    """Whether `task` is an event subprocess start whose event happened."""
    return is_event_subprocess_start(task) and bool(task.internal_data.get(STARTED))


# -- interrupting -----------------------------------------------------------------------------


def interrupt_scope(started: Task) -> None:
    """Cancel every unfinished task of the scope of event subprocess `started` but it (its
    projections follow when the instance is written: engine.services.instance_store)."""
    scope = started.workflow
    for task in list(unbounded_tasks(scope.task_tree, state=TaskState.NOT_FINISHED_MASK)):
        if task is started or task.workflow is not scope or is_descendant(task, started):
            continue  # the event subprocess, and where it goes when it is done
        if scope.tasks.get(task.id) is task and not task.has_state(TaskState.FINISHED_MASK):
            task.cancel()


# -- conditions -------------------------------------------------------------------------------


def refresh_conditions(workflow: Any) -> bool:
    """Evaluate the condition of every waiting conditional event again (the data may have
    changed); True if one fired."""
    waiting = [
        task
        for task in list(workflow.event_manager.tasks.values())
        if task.state == TaskState.WAITING
        and task.workflow.tasks.get(task.id) is task
        and is_conditional(task.task_spec.event_definition)
    ]
    if not waiting:
        return False
    before = len(workflow.subprocesses)
    fired = False
    for task in waiting:
        if task.state != TaskState.WAITING:
            continue  # cancelled by an interruption just now
        task.task_spec._update(task)
        fired = fired or task.state != TaskState.WAITING
    return fired or len(workflow.subprocesses) != before


EVENT_SUBPROCESS_CONVERTERS = {
    EventSubprocessStart: EventSubprocessStartConverter,
    BatonConditionalEventDefinition: BatonConditionalEventDefinitionConverter,
}
