"""What a process (with its subprocesses and called processes) can ever do that the engine
keeps rows for: timers, message and signal waits, connector jobs. Read once per definition
from the parsed spec, so that an operation skips the rows a process cannot have."""

from collections.abc import Iterable
from dataclasses import dataclass

from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import SignalEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition

from .connector_tasks import ConnectorTaskMixin
from .events import event_definitions


@dataclass(frozen=True)
class SpecTraits:
    timers: bool  # some element has a timer event definition
    messages_or_signals: bool  # some element catches or throws a message or signal
    connector_tasks: bool  # some service task is run by a connector or an external worker


def spec_traits(specs: Iterable[BpmnProcessSpec]) -> SpecTraits:
    """The traits of every task spec of `specs` (a process and all its subprocess specs)."""
    timers = events = connectors = False
    for spec in specs:
        for task_spec in spec.task_specs.values():
            connectors = connectors or isinstance(task_spec, ConnectorTaskMixin)
            for definition in event_definitions(getattr(task_spec, "event_definition", None)):
                timers = timers or isinstance(definition, TimerEventDefinition)
                events = events or isinstance(
                    definition, MessageEventDefinition | SignalEventDefinition
                )
    return SpecTraits(timers=timers, messages_or_signals=events, connector_tasks=connectors)
