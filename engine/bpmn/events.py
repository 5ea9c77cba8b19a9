"""What a workflow waits for, catching events from outside, and the events it throws out.

This is the SpiffWorkflow side of timers, messages and signals; the services in
`engine.services.timers`, `messages` and `signals` keep Postgres in step with it.

- `waiting_events()` lists the WAITING catching tasks (intermediate catch events, receive
  tasks, boundary events, event-based gateways, start events) as timers with a due time,
  messages with their correlation values, and signals.
- `catch_message()` / `catch_signal()` deliver an event from outside into a workflow.
- A workflow records the signals it throws (SpiffWorkflow broadcasts them only inside the
  workflow) and the messages nobody inside caught; `outgoing_events()` hands them over with
  stable ids, so writing them twice (a retried persist) writes them once.
- `prepare_start()` picks the start event a new instance starts at.
"""

import copy
import datetime
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.bpmn.specs.event_definitions.base import EventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import SignalEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.simple import NoneEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    TimeDateEventDefinition,
    TimerEventDefinition,
)
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.bpmn.util.event import BpmnEvent
from SpiffWorkflow.exceptions import WorkflowException
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from engine.jsonable import json_safe

from .event_definitions import BatonMessageEventDefinition
from .workflow import EXPRESSION_ERRORS, BatonWorkflow


@dataclass
class WaitingTimer:
    task: Task
    element_id: str
    due_at: datetime.datetime


@dataclass
class WaitingMessage:
    task: Task
    element_id: str
    name: str
    correlation: dict[str, Any]


@dataclass
class WaitingSignal:
    task: Task
    element_id: str
    name: str


@dataclass
class Waits:
    timers: list[WaitingTimer] = field(default_factory=list)
    messages: list[WaitingMessage] = field(default_factory=list)
    signals: list[WaitingSignal] = field(default_factory=list)


def event_definitions(definition: EventDefinition | None) -> Iterator[EventDefinition]:
    """The event definitions a task's definition stands for (a multiple event's children)."""
    if isinstance(definition, MultipleEventDefinition):
        for child in definition.event_definitions:
            yield from event_definitions(child)
    elif definition is not None:
        yield definition


def _plain(moment: datetime.datetime) -> datetime.datetime:
    """A standard aware datetime in UTC (timer values may be naive or in another zone)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return datetime.datetime(
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
        moment.microsecond,
        tzinfo=moment.tzinfo,
    ).astimezone(datetime.UTC)


def timer_due_at(task: Task, definition: TimerEventDefinition) -> datetime.datetime | None:
    """When a waiting timer task fires next (None if it has nothing left to fire)."""
    value = task.internal_data.get("event_value")
    if isinstance(definition, CycleTimerEventDefinition):
        if not isinstance(value, dict) or value.get("cycles") == 0:
            return None
        value = value.get("next")
    if not isinstance(value, str):
        return None
    if isinstance(definition, TimeDateEventDefinition):
        parsed = TimerEventDefinition.parse_time_or_duration(value)
    else:
        parsed = TimerEventDefinition.get_datetime(value)
    return _plain(parsed) if isinstance(parsed, datetime.datetime) else None


def correlation_values(task: Task, definition: MessageEventDefinition) -> dict[str, Any]:
    """The correlation property values the task's workflow expects (SpiffArena correlation):
    `{property name: value}`, from what earlier messages or process variables set."""
    expected: dict[str, Any] = {}
    known: dict[str, dict[str, Any]] = getattr(task.workflow, "correlations", {}) or {}
    for prop in definition.correlation_properties:
        for key in prop.correlation_keys:
            values = known.get(key) or {}
            if prop.name in values:
                expected[prop.name] = values[prop.name]
    return dict(json_safe(expected))


def waiting_tasks(workflow: BpmnWorkflow) -> list[Task]:
    """The WAITING catching tasks still in the workflow's tree (a reset or migration drops
    tasks from the tree that SpiffWorkflow's event manager would otherwise keep)."""
    tasks: list[Task] = [
        task
        for task in workflow.event_manager.tasks.values()
        if task.state == TaskState.WAITING and task.workflow.tasks.get(task.id) is task
    ]
    return tasks


def _triggers(workflow: BpmnWorkflow) -> list[tuple[Task, EventDefinition, str]]:
    """(stand-in task, definition, element id) of the message and signal start events of the
    process's event subprocesses that are not running: SpiffWorkflow creates such a
    subprocess only when its event arrives, so until then no task waits for it."""
    if workflow.is_completed():
        return []
    found = []
    for name in getattr(workflow.spec.start, "trigger_specs", []):
        spec = workflow.subprocess_specs.get(name)
        for start in getattr(spec, "bpmn_start_events", []):
            definition = start.event_definition
            if isinstance(definition, MessageEventDefinition | SignalEventDefinition):
                found.append((workflow.task_tree, definition, start.bpmn_id or start.name))
    return found


def waiting_events(workflow: BpmnWorkflow) -> Waits:
    """Everything the workflow's WAITING catching tasks (and event subprocesses) wait for."""
    waits = Waits()
    waiting_elements = set()
    for task in waiting_tasks(workflow):
        waiting_elements.add(task.task_spec.bpmn_id)
        element_id = task.task_spec.bpmn_id or task.task_spec.name
        for definition in event_definitions(task.task_spec.event_definition):
            if isinstance(definition, TimerEventDefinition):
                due_at = timer_due_at(task, definition)
                if due_at is not None:
                    waits.timers.append(WaitingTimer(task, element_id, due_at))
            elif isinstance(definition, MessageEventDefinition):
                waits.messages.append(
                    WaitingMessage(
                        task,
                        element_id,
                        str(definition.name),
                        correlation_values(task, definition),
                    )
                )
            elif isinstance(definition, SignalEventDefinition):
                waits.signals.append(WaitingSignal(task, element_id, str(definition.name)))
    for stand_in, definition, element_id in _triggers(workflow):
        if element_id in waiting_elements:
            continue  # already started and waiting (listed above)
        if isinstance(definition, MessageEventDefinition):
            waits.messages.append(
                WaitingMessage(
                    stand_in,
                    element_id,
                    str(definition.name),
                    correlation_values(stand_in, definition),
                )
            )
        else:
            waits.signals.append(WaitingSignal(stand_in, element_id, str(definition.name)))
    return waits


# -- catching events from outside ---------------------------------------------------------------


class NotWaiting(Exception):
    """No task of the workflow waits for this event (any more)."""


def _catching_definition(
    workflow: BpmnWorkflow, kind: type[EventDefinition], name: str
) -> EventDefinition:
    candidates = [
        d
        for task in waiting_tasks(workflow)
        for d in event_definitions(task.task_spec.event_definition)
    ]
    candidates.extend(definition for _, definition, _ in _triggers(workflow))
    for definition in candidates:
        if isinstance(definition, kind) and getattr(definition, "name", None) == name:
            return definition
    raise NotWaiting(f"The instance does not wait for {name!r}.")


def _spiff_correlations(
    definition: MessageEventDefinition, keys: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """SpiffWorkflow's shape of the given correlation keys: {correlation key: {property:
    value}}, for the properties of `definition` that `keys` names."""
    correlations: dict[str, dict[str, Any]] = {}
    for prop in definition.correlation_properties:
        if prop.name in keys:
            for key in prop.correlation_keys:
                correlations.setdefault(key, {})[prop.name] = keys[prop.name]
    return correlations


def catch_message(
    workflow: BpmnWorkflow,
    name: str,
    variables: Any,
    correlation_keys: dict[str, Any] | None = None,
    business_key: str | None = None,
) -> int:
    """Deliver message `name` into the workflow; returns how many tasks caught it, or raises
    NotWaiting. Camunda diagrams merge `variables` (an object) into the process data;
    SpiffArena diagrams receive them as the payload of the message (an object payload gets
    the correlation keys it lacks, for the correlation properties' expressions)."""
    keys = dict(correlation_keys or {})
    definition = _catching_definition(workflow, MessageEventDefinition, name)
    payload: Any
    if isinstance(definition, BatonMessageEventDefinition):
        payload = {
            "variables": copy.deepcopy(variables) if isinstance(variables, dict) else {},
            "correlation_keys": keys,
            "business_key": business_key,
        }
    elif isinstance(variables, dict):
        payload = {**keys, **copy.deepcopy(variables)}
    else:
        payload = copy.deepcopy(variables)
    event = BpmnEvent(definition, payload, _spiff_correlations(definition, keys))
    try:
        caught = int(workflow.event_manager.catch(event, internal=False))
    except EXPRESSION_ERRORS as exc:
        # The library reads the correlation properties from the payload without a task.
        raise WorkflowException(
            f"Message {name!r}: its correlation properties cannot be read from it "
            f"({type(exc).__name__}: {exc}); send their values in correlation_keys"
        ) from None
    if caught == 0:
        raise NotWaiting(f"The instance does not wait for message {name!r} with these keys.")
    return caught


def catch_signal(workflow: BpmnWorkflow, name: str, payload: Any) -> int:
    """Deliver signal `name` into the workflow; returns how many tasks caught it (or raises
    NotWaiting)."""
    definition = _catching_definition(workflow, SignalEventDefinition, name)
    caught = int(
        workflow.event_manager.catch(BpmnEvent(definition, copy.deepcopy(payload)), internal=False)
    )
    if caught == 0:
        raise NotWaiting(f"The instance does not wait for signal {name!r}.")
    return caught


# -- events thrown out of a workflow ------------------------------------------------------------


@dataclass
class OutgoingEvent:
    """A message or signal thrown inside a workflow, for other instances."""

    id: uuid.UUID
    kind: str  # "message" or "signal"
    name: str
    variables: Any
    correlation_keys: dict[str, Any] = field(default_factory=dict)
    business_key: str | None = None


def _outgoing(event: BpmnEvent, kind: str) -> OutgoingEvent:
    definition = event.event_definition
    payload = event.payload
    if isinstance(definition, BatonMessageEventDefinition) and isinstance(payload, dict):
        return OutgoingEvent(
            uuid.uuid4(),
            kind,
            str(definition.name),
            json_safe(payload.get("variables") or {}),
            dict(json_safe(payload.get("correlation_keys") or {})),
            payload.get("business_key"),
        )
    keys: dict[str, Any] = {}
    for values in (event.correlations or {}).values():
        if isinstance(values, dict):
            keys.update(values)
    return OutgoingEvent(
        uuid.uuid4(), kind, str(definition.name), json_safe(payload), dict(json_safe(keys))
    )


def record_thrown_events(workflow: BatonWorkflow, outbox: list[OutgoingEvent]) -> None:
    """Remember in `outbox` every signal the workflow throws: SpiffWorkflow delivers a signal
    only inside the workflow (and passes it on only when nothing inside caught it), but a BPMN
    signal reaches every instance that waits for it."""

    def record(event: BpmnEvent) -> None:
        if isinstance(event.event_definition, SignalEventDefinition) and event.target is None:
            outbox.append(_outgoing(event, "signal"))

    workflow.thrown_listener = record


def outgoing_events(workflow: BpmnWorkflow, outbox: list[OutgoingEvent]) -> list[OutgoingEvent]:
    """The messages and signals this workflow object has thrown out so far (the same ids on
    every call: they are kept in `outbox`). Messages caught inside the workflow are not among
    them."""
    for event in workflow.get_events():
        if isinstance(event.event_definition, MessageEventDefinition):
            outbox.append(_outgoing(event, "message"))
        # Signals were recorded when thrown; errors and escalations that reach the top
        # without a catcher end there, as in BPMN.
    return list(outbox)


# -- starting --------------------------------------------------------------------------------


def start_events(workflow: BpmnWorkflow) -> list[Task]:
    """The start event tasks of a new workflow's top-level process."""
    return [
        t
        for t in workflow.get_tasks()
        if isinstance(t.task_spec, StartEvent) and t.workflow is workflow
    ]


def prepare_start(
    workflow: BpmnWorkflow, element_id: str | None = None, *, fire: bool = True
) -> Task | None:
    """Make a new workflow start at one start event: `element_id`, or else its none start
    event, or else its first start event. The others are cancelled. With `fire`, an event
    start counts as having happened (started by hand or by a timer); without, it waits for
    the event to be delivered. Returns the chosen start event task."""
    starts = start_events(workflow)
    if not starts:
        if element_id is not None:
            raise ValueError("The process has no start event.")
        return None
    if element_id is not None:
        chosen = next((t for t in starts if t.task_spec.bpmn_id == element_id), None)
        if chosen is None:
            raise ValueError(f"The process has no start event {element_id!r}.")
    else:
        chosen = next(
            (t for t in starts if isinstance(t.task_spec.event_definition, NoneEventDefinition)),
            starts[0],
        )
    for task in starts:
        if task is not chosen and not task.has_state(TaskState.FINISHED_MASK):
            task.cancel()
    definition = chosen.task_spec.event_definition
    if fire and not isinstance(definition, NoneEventDefinition):
        chosen._set_internal_data(event_fired=True)
        if isinstance(definition, CycleTimerEventDefinition):
            # SpiffWorkflow runs a cycle inside one instance (a new path per cycle), so it
            # gives a cycle's start event no path of its own; Baton starts an instance per
            # cycle instead, on the one path the start event leads to.
            chosen._sync_children(chosen.task_spec.outputs, TaskState.FUTURE)
            for child in chosen.children:
                child.task_spec._predict(child, mask=TaskState.NOT_FINISHED_MASK)
    return chosen


@dataclass
class EventStart:
    """A start event of a process that waits for a message, a signal or a timer."""

    element_id: str
    kind: str  # "message", "signal" or "timer"
    name: str
    definition: EventDefinition


def event_starts(spec: BpmnProcessSpec) -> list[EventStart]:
    """The message, signal and timer start events of a process (not of its subprocesses)."""
    found = []
    for task_spec in spec.task_specs.values():
        if not isinstance(task_spec, StartEvent):
            continue
        definition = task_spec.event_definition
        element_id = task_spec.bpmn_id or task_spec.name
        if isinstance(definition, TimerEventDefinition):
            found.append(EventStart(element_id, "timer", "", definition))
        elif isinstance(definition, MessageEventDefinition):
            found.append(EventStart(element_id, "message", str(definition.name), definition))
        elif isinstance(definition, SignalEventDefinition):
            found.append(EventStart(element_id, "signal", str(definition.name), definition))
    return sorted(found, key=lambda start: start.element_id)


def how_it_starts(workflow: BpmnWorkflow) -> str | None:
    """None if the new workflow can be started by hand (it has a none start event, or no
    start event at all); else how it starts, as a modeller reads it ("when message 'paid'
    arrives")."""
    starts = start_events(workflow)
    if not starts or any(
        isinstance(t.task_spec.event_definition, NoneEventDefinition) for t in starts
    ):
        return None
    ways = []
    for start in event_starts(workflow.spec):
        if start.kind == "message":
            ways.append(f"when message {start.name!r} arrives")
        elif start.kind == "signal":
            ways.append(f"when signal {start.name!r} is broadcast")
        else:
            ways.append("on its timer")
    return " or ".join(ways) if ways else None
