"""How Baton reads timer, message and signal events, on top of SpiffWorkflow's parsers.

Timers (both dialects): a timer's text may be an ISO 8601 literal (`PT5M`, `R3/PT1H`,
`2030-01-01T09:00:00Z`), a cron expression (timer start events only), `${expression}`
(Camunda) or a Python expression (SpiffArena writes `"PT5M"` with quotes). SpiffWorkflow
evaluates every timer text as Python, so literals are turned into Python strings here, and
literal values are checked at deploy time.

Messages and signals in Camunda diagrams: SpiffWorkflow's own Camunda message event needs a
`camunda:expression` and stores what it receives under `<task>_Response`, and its signals
carry all of the thrower's data. Baton's Camunda dialect follows Camunda 7 instead:
- a throwing event's (or send task's) `camunda:inputOutput` input parameters are what it
  sends; `${...}` is a Python expression, plain text a literal. Two names are reserved on
  message throws: `correlationKeys` (a `camunda:map`: the keys to correlate with) and
  `businessKey` (the business key of the instance to reach);
- a catching event merges the variables it receives into the process data (as Camunda's
  process variables), and also stores them whole under `camunda:resultVariable` if given.
"""

import copy
import re
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.parser.event_parsers import (
    ERROR_EVENT_XPATH,
    ESCALATION_EVENT_XPATH,
    SIGNAL_EVENT_XPATH,
)
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.serializer.default.event_definition import (
    MessageEventDefinitionConverter,
)
from SpiffWorkflow.bpmn.serializer.helpers.spec import EventDefinitionConverter
from SpiffWorkflow.bpmn.specs.event_definitions.base import EventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import (
    SignalEventDefinition,
)
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    DurationTimerEventDefinition,
    TimeDateEventDefinition,
    TimerEventDefinition,
)
from SpiffWorkflow.bpmn.util.event import BpmnEvent
from SpiffWorkflow.task import Task

from engine import clock

from .compensating import CompensateEventDefinition
from .connector_tasks import ParamSpec, camunda_param_tree, evaluate_param_tree
from .cron import CronSchedule, looks_like_cron
from .event_subprocesses import BatonConditionalEventDefinition
from .expressions import is_expression
from .schedules import recurring_interval
from .scripting import ScriptSyntaxError, check_syntax
from .timers import reading_clock
from .xml import BPMN_NS, CAMUNDA_NS

CORRELATION_KEYS_PARAMETER = "correlationKeys"
BUSINESS_KEY_PARAMETER = "businessKey"
START_EVENT_TAG = f"{{{BPMN_NS}}}startEvent"
SUBPROCESS_TAG = f"{{{BPMN_NS}}}subProcess"
END_EVENT_TAG = f"{{{BPMN_NS}}}endEvent"
THROW_EVENT_TAG = f"{{{BPMN_NS}}}intermediateThrowEvent"
COMPENSATE_TAG = f"{{{BPMN_NS}}}compensateEventDefinition"

_ISO_LITERAL = re.compile(
    r"^(R\d*/\S+|P[\dT]\S*|\d{4}-?\d{2}-?\d{2}(T\S*)?|\d{4}-?W\d{2}\S*)$", re.IGNORECASE
)


# -- timers -----------------------------------------------------------------------------------


def timer_source(text: str) -> tuple[str, str | None]:
    """(Python source SpiffWorkflow evaluates, the literal value or None) for a timer text."""
    stripped = (text or "").strip()
    if is_expression(stripped):  # JUEL or FEEL (engine.bpmn.expressions)
        return stripped, None
    if _ISO_LITERAL.match(stripped) or looks_like_cron(stripped):
        return repr(stripped), stripped
    return stripped, None


def check_timer_text(kind: str, literal: str, *, start: bool) -> None:
    """Raise ValueError if a literal timer value of `kind` (date, duration or cycle) cannot be
    scheduled (the parser below and the deploy-time literal checks share this rule)."""
    if kind == "cycle":
        if looks_like_cron(literal):
            if not start:
                raise ValueError("cron cycles are supported on timer start events only")
            CronSchedule.parse(literal)
            return
        _, _, duration = recurring_interval(literal, clock.now())
        if duration.total_seconds() <= 0:
            raise ValueError("the cycle's interval must be longer than zero")
    elif kind == "duration":
        TimerEventDefinition.parse_iso_duration(literal)
    else:
        if literal.upper().startswith("P"):
            raise ValueError("a timeDate needs a date and time, not a duration")
        TimerEventDefinition.parse_time_or_duration(literal)


def _starts_event_subprocess(node: etree._Element) -> bool:
    parent = node.getparent()
    return (
        node.tag == START_EVENT_TAG
        and parent is not None
        and parent.tag == SUBPROCESS_TAG
        and parent.get("triggeredByEvent") == "true"
    )


def check_timer_literal(definition: TimerEventDefinition, literal: str, *, start: bool) -> None:
    """Raise ValueError if a literal timer value cannot be scheduled."""
    if isinstance(definition, CycleTimerEventDefinition):
        check_timer_text("cycle", literal, start=start)
    elif isinstance(definition, DurationTimerEventDefinition):
        check_timer_text("duration", literal, start=start)
    elif isinstance(definition, TimeDateEventDefinition):
        check_timer_text("date", literal, start=start)


class EventParserMixin:
    """Rewrites timer texts into Python that SpiffWorkflow can evaluate and checks literals;
    reads signal end events and the error and escalation start events of event subprocesses,
    which SpiffWorkflow's parsers leave out; conditions are Baton's (they see data changes)."""

    node: etree._Element
    filename: str

    def get_event_definition(self, xpaths: list[str]) -> EventDefinition:
        compensate = self.node.find(COMPENSATE_TAG)
        if compensate is not None and self.node.tag in (END_EVENT_TAG, THROW_EVENT_TAG):
            return parse_compensate_event(compensate)
        if self.node.tag == END_EVENT_TAG and SIGNAL_EVENT_XPATH not in xpaths:
            xpaths = [*xpaths, SIGNAL_EVENT_XPATH]
        if _starts_event_subprocess(self.node):
            xpaths = [*xpaths, ERROR_EVENT_XPATH, ESCALATION_EVENT_XPATH]
        definition: EventDefinition = super().get_event_definition(xpaths)  # type: ignore[misc]
        return definition

    def parse_conditional_event(self, event: etree._Element) -> BatonConditionalEventDefinition:
        definition = super().parse_conditional_event(event)  # type: ignore[misc]
        # `${...}` JUEL and `= ...` FEEL stay as written: engine.bpmn.expressions reads them
        # when the condition is evaluated, as everywhere else; anything else is Python.
        expression = (definition.expression or "").strip()
        if not expression:
            raise ValidationException(
                "The conditional event has no condition.", node=self.node, file_name=self.filename
            )
        try:
            check_syntax(expression, expression=True)
        except ScriptSyntaxError as exc:
            raise ValidationException(
                f"The condition {expression!r} of the conditional event cannot be read: {exc}",
                node=self.node,
                file_name=self.filename,
            ) from None
        return BatonConditionalEventDefinition(expression, description=definition.description)

    def parse_timer_event(self, event: etree._Element) -> TimerEventDefinition:
        # Baton's timers read Baton's clock (engine.bpmn.timers).
        definition = reading_clock(super().parse_timer_event(event))  # type: ignore[misc]
        source, literal = timer_source(definition.expression)
        if not source:
            raise ValidationException(
                "The timer has no value.", node=self.node, file_name=self.filename
            )
        if literal is not None:
            try:
                check_timer_literal(definition, literal, start=self.node.tag == START_EVENT_TAG)
            except Exception as exc:  # noqa: BLE001 -- whatever the parser raises refuses the diagram
                raise ValidationException(
                    f"The timer value {literal!r} is not a valid ISO 8601 "
                    f"{_timer_kind(definition)}: {exc}",
                    node=self.node,
                    file_name=self.filename,
                ) from None
        definition.expression = source
        return definition


def parse_compensate_event(event: etree._Element) -> CompensateEventDefinition:
    """A compensation throw: the activity it names (none: all of its scope), and whether it
    waits for the handlers (BPMN's default: it does)."""
    return CompensateEventDefinition(
        activity_ref=(event.get("activityRef") or "").strip() or None,
        wait_for_completion=(event.get("waitForCompletion") or "true").strip().lower() != "false",
        description="Compensation",
    )


def _timer_kind(definition: TimerEventDefinition) -> str:
    if isinstance(definition, CycleTimerEventDefinition):
        return "cycle (or cron expression)"
    if isinstance(definition, DurationTimerEventDefinition):
        return "duration"
    return "date"


# -- Camunda messages and signals -------------------------------------------------------------


def _evaluate_tree(task: Task, tree: ParamSpec | None) -> Any:
    return evaluate_param_tree(task, tree) if tree else None


def _evaluate_variables(task: Task, variables: dict[str, ParamSpec]) -> dict[str, Any]:
    return {name: evaluate_param_tree(task, tree) for name, tree in variables.items()}


class BatonMessageEventDefinition(MessageEventDefinition):
    """A Camunda-dialect message. Its payload is an envelope:
    `{"variables": {...}, "correlation_keys": {...}, "business_key": str | None}`."""

    def __init__(
        self,
        name: str,
        correlation_properties: list[Any] | None = None,
        variables: dict[str, ParamSpec] | None = None,
        correlation_keys: ParamSpec | None = None,
        business_key: ParamSpec | None = None,
        result_var: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, correlation_properties, **kwargs)
        self.variables = variables or {}
        self.correlation_keys = correlation_keys
        self.business_key = business_key
        self.result_var = result_var

    def throw(self, my_task: Task) -> None:
        keys = _evaluate_tree(my_task, self.correlation_keys) or {}
        if not isinstance(keys, dict):
            raise ValueError(f"{CORRELATION_KEYS_PARAMETER} must be a map of names to values")
        business_key = _evaluate_tree(my_task, self.business_key)
        envelope = {
            "variables": _evaluate_variables(my_task, self.variables),
            "correlation_keys": keys,
            "business_key": str(business_key) if business_key not in (None, "") else None,
        }
        my_task.workflow.top_workflow.catch(BpmnEvent(self, payload=envelope))

    def catch(self, my_task: Task, event: BpmnEvent | None = None) -> None:
        payload = event.payload if event is not None else None
        my_task.internal_data[self.name] = copy.deepcopy(payload) if payload else {}
        EventDefinition.catch(self, my_task, event)

    def update_task_data(self, my_task: Task) -> None:
        envelope = my_task.internal_data.get(self.name)
        if not isinstance(envelope, dict):
            return
        variables = envelope.get("variables")
        if isinstance(variables, dict):
            my_task.set_data(**copy.deepcopy(variables))
            if self.result_var:
                my_task.data[self.result_var] = copy.deepcopy(variables)

    def reset(self, my_task: Task) -> None:
        my_task.internal_data.pop(self.name, None)
        super().reset(my_task)


class BatonSignalEventDefinition(SignalEventDefinition):
    """A Camunda-dialect signal: it carries its input parameters, not the thrower's data."""

    def __init__(
        self, name: str, variables: dict[str, ParamSpec] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(name, **kwargs)
        self.variables = variables or {}

    def throw(self, my_task: Task) -> None:
        payload = _evaluate_variables(my_task, self.variables)
        my_task.workflow.top_workflow.catch(BpmnEvent(self, payload=payload))

    def update_task_data(self, my_task: Task) -> None:
        payload = my_task.internal_data.get(self.name)
        if isinstance(payload, dict):
            my_task.set_data(**copy.deepcopy(payload))


class BatonMessageEventDefinitionConverter(MessageEventDefinitionConverter):
    def to_dict(self, event_definition: BatonMessageEventDefinition) -> dict[str, Any]:
        dct: dict[str, Any] = super().to_dict(event_definition)
        dct["variables"] = event_definition.variables
        dct["correlation_keys"] = event_definition.correlation_keys
        dct["business_key"] = event_definition.business_key
        dct["result_var"] = event_definition.result_var
        return dct


class BatonSignalEventDefinitionConverter(EventDefinitionConverter):
    def to_dict(self, event_definition: BatonSignalEventDefinition) -> dict[str, Any]:
        dct: dict[str, Any] = super().to_dict(event_definition)
        dct["variables"] = event_definition.variables
        return dct


EVENT_DEFINITION_CONVERTERS = {
    BatonMessageEventDefinition: BatonMessageEventDefinitionConverter,
    BatonSignalEventDefinition: BatonSignalEventDefinitionConverter,
}


class CamundaEventParserMixin(EventParserMixin):
    """Camunda-dialect messages and signals (see the module docstring)."""

    process_parser: Any

    def _input_parameters(self) -> dict[str, ParamSpec]:
        path = (
            f"{{{BPMN_NS}}}extensionElements/{{{CAMUNDA_NS}}}inputOutput/"
            f"{{{CAMUNDA_NS}}}inputParameter"
        )
        return {p.get("name") or "": camunda_param_tree(p) for p in self.node.findall(path)}

    def _referenced_name(self, event: etree._Element, attribute: str, names: dict[str, str]) -> str:
        ref = event.get(attribute)
        if ref is None:
            return str(event.getparent().get("name") or self.node.get("name") or "")
        name = names.get(ref)
        if name is None:
            raise ValidationException(
                f"The {attribute} {ref!r} names no such element.",
                node=self.node,
                file_name=self.filename,
            )
        return name

    def parse_message_event(self, message_event: etree._Element) -> BatonMessageEventDefinition:
        name = self._referenced_name(
            message_event, "messageRef", self.process_parser.parser.messages
        )
        ref = message_event.get("messageRef")
        correlations = self.process_parser.parser.message_correlations.get(ref, []) if ref else []
        inputs = self._input_parameters()
        correlation_keys = inputs.pop(CORRELATION_KEYS_PARAMETER, None)
        business_key = inputs.pop(BUSINESS_KEY_PARAMETER, None)
        return BatonMessageEventDefinition(
            name,
            correlations,
            variables=inputs,
            correlation_keys=correlation_keys,
            business_key=business_key,
            result_var=message_event.get(f"{{{CAMUNDA_NS}}}resultVariable") or None,
            description="Message",
        )

    def parse_signal_event(self, signal_event: etree._Element) -> BatonSignalEventDefinition:
        name = self._referenced_name(signal_event, "signalRef", self.process_parser.parser.signals)
        return BatonSignalEventDefinition(
            name, variables=self._input_parameters(), description="Signal"
        )


def with_mixin(mixin: type, parser_class: type) -> type:
    """`parser_class` with `mixin` in front (one new class per element parser)."""
    return type(f"Baton{parser_class.__name__}", (mixin, parser_class), {})


EVENT_TAGS = (
    "startEvent",
    "endEvent",
    "intermediateCatchEvent",
    "intermediateThrowEvent",
    "boundaryEvent",
    "sendTask",
    "receiveTask",
)


def event_parser_overrides(
    parser_classes: dict[str, tuple[type, type]], mixin: type
) -> dict[str, tuple[type, type]]:
    """The event element parsers of `parser_classes`, each with `mixin` in front."""
    overrides = {}
    for tag in EVENT_TAGS:
        full = f"{{{BPMN_NS}}}{tag}"
        if full in parser_classes:
            parser_class, spec_class = parser_classes[full]
            overrides[full] = (with_mixin(mixin, parser_class), spec_class)
    return overrides
