"""Parsing BPMN/DMN documents into SpiffWorkflow specs, in the dialect each deployment uses."""

from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnParser, BpmnValidator, full_tag
from SpiffWorkflow.bpmn.parser.ProcessParser import AdHocParser, ProcessParser
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.bpmn.specs.control import StartEventJoin, StartEventSplit
from SpiffWorkflow.camunda.parser.CamundaParser import CamundaParser
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser, SpiffProcessParser

from .call_activities import CamundaCallActivity, CamundaCallActivityParser
from .compensating import BatonIntermediateThrowEvent
from .connector_tasks import (
    CamundaConnectorTaskParser,
    ConnectorTask,
    SpiffConnectorTask,
    SpiffConnectorTaskParser,
)
from .data_objects import DataObjectScopeMixin, NamedDataObjectsProcessMixin
from .data_stores import DATA_STORE_CLASSES, data_store_class_name
from .decisions import ResultVariableBusinessRuleTaskParser
from .end_events import BatonEndEvent
from .event_definitions import (
    CamundaEventParserMixin,
    EventParserMixin,
    event_parser_overrides,
    with_mixin,
)
from .event_subprocesses import wire_event_subprocess
from .feel_scripts import FeelScriptTaskParser
from .io_mappings import io_mapping_overrides
from .multi_instance import multi_instance_parser_overrides
from .none_tasks import PassThroughTask, SpiffPassThroughTask
from .outgoing_flows import outgoing_flow_overrides
from .process_specs import (
    BatonAdHocSubprocessSpec,
    BatonProcessSpec,
    completion_condition,
    task_spec_name,
)
from .rewrites import library_form
from .xml import BPMN_NS, CAMUNDA_NS, SPIFF_NS, compensation_handlers

SERVICE_TASK = full_tag("serviceTask")
END_EVENT = full_tag("endEvent")
NONE_TASK = full_tag("task")
CALL_ACTIVITY = full_tag("callActivity")
SCRIPT_TASK = full_tag("scriptTask")
BUSINESS_RULE_TASK = full_tag("businessRuleTask")
THROW_EVENT = full_tag("intermediateThrowEvent")
BOUNDARY_EVENT = full_tag("boundaryEvent")
COMPENSATE = full_tag("compensateEventDefinition")


def is_compensation_event(node: etree._Element) -> bool:
    return node.find(COMPENSATE) is not None


def _give_input(task_spec: Any, source: Any) -> None:
    """A task spec that no sequence flow reaches (a compensation handler, a compensation event
    subprocess) still needs an input (the library's `TaskSpec.test`), without becoming an
    output of it (nothing starts it along a flow)."""
    if source.name not in task_spec._inputs:
        task_spec._inputs.append(source.name)


class _ElementNamesParser(ProcessParser):
    """Finds an element's task spec by the name Baton's process specs give it
    (engine.bpmn.process_specs): the library looks it up by the element's id."""

    def parse_node(self, node: etree._Element) -> Any:
        name = task_spec_name(node.get("id") or "")
        if name in self.spec.task_specs:
            return self.spec.task_specs[name]
        if name == node.get("id"):
            return super().parse_node(node)
        node_parser, spec_class = self.parser._get_parser_class(node.tag)
        if not node_parser or not spec_class:
            raise ValidationException(
                "There is no support implemented for this task type.",
                node=node,
                file_name=self.filename,
            )
        task_spec = node_parser(self, spec_class, node, self.nsmap, lane=self.lane).parse_node()
        # A loop or multi-instance task is made again under the name of the task it wraps.
        self.spec.task_specs[name].bpmn_id = node.get("id")
        return task_spec


class _CompensationParser(ProcessParser):
    """Compensation boundary events are no boundary events that wait beside their activity:
    each names (by a `bpmn:association`) the handler of its activity, which the process spec
    records (engine.bpmn.compensating); handlers and an event subprocess with a compensation
    start event are parsed though no sequence flow reaches them. processes.constructs refuses
    the diagrams where these do not fit together, before this reads them."""

    def get_boundary_events(self, attached_to_ref: str) -> list[etree._Element]:
        events: list[etree._Element] = super().get_boundary_events(attached_to_ref)
        return [event for event in events if not is_compensation_event(event)]

    def _associated_handlers(self) -> dict[str, etree._Element]:
        """`compensation_handlers` of this parser's document, read once per document (the
        parser of every process and subprocess in it asks)."""
        cache: dict[int, dict[str, etree._Element]] = self.parser.__dict__.setdefault(
            "_baton_compensation_handlers", {}
        )
        key = id(self.document_root)  # the parser holds its documents: the id stays theirs
        if key not in cache:
            cache[key] = compensation_handlers(self.document_root)
        return cache[key]

    def add_compensation_handlers(self) -> None:
        handlers: dict[str, str] = {}
        for event in self.xpath("./bpmn:boundaryEvent"):
            if not is_compensation_event(event):
                continue
            associated = self._associated_handlers()
            attached = event.get("attachedToRef") or ""
            activity = self.spec.task_specs.get(task_spec_name(attached))
            handler_node = associated.get(event.get("id") or "")
            if activity is None or handler_node is None:
                continue  # an activity no flow reaches; a missing handler is refused before
            handler = self._handler_entry(handler_node)
            _give_input(handler, activity)
            handlers[activity.name] = handler.name
        if handlers:
            self.spec.compensation_handlers = handlers

    def _handler_entry(self, node: etree._Element) -> Any:
        """The task spec a handler starts as: the whole activity, so its boundary events
        (the split in front of it that arms them) and its loop or multi-instance marker
        (the wrapper spec that carries the element's name) run as they do on a flow."""
        self.parse_node(node)  # returns the spec parsed first; the names below are stable
        element_id = node.get("id") or ""
        split = self.spec.task_specs.get(f"{element_id}.BoundaryEventSplit")
        return split or self.spec.task_specs[task_spec_name(element_id)]

    def add_compensation_event_subprocess(self, node: etree._Element) -> None:
        task_spec = self.parse_node(node)
        _give_input(task_spec, self.spec.start)
        self.spec.compensation_event_subprocess = task_spec.name


class _EventSubprocessesParser(_CompensationParser):
    """The library's `add_tasks`, with each event subprocess waiting for its start event while
    its scope is active (engine.bpmn.event_subprocesses) instead of the library's wiring."""

    def add_tasks(self) -> None:
        start_node_list = self.xpath("./bpmn:startEvent")
        if not start_node_list and self.process_executable:
            raise ValidationException(
                "No start event found", node=self.node, file_name=self.filename
            )
        for node in start_node_list:
            self.parse_node(node)
        if len(start_node_list) > 1:
            split_task = StartEventSplit(self.spec, "StartEventSplit")
            join_task = StartEventJoin(
                self.spec, "StartEventJoin", split_task="StartEventSplit", threshold=1, cancel=True
            )
            for spec in self.spec.start.outputs:
                spec.inputs = [split_task]
                spec.connect(join_task)
            split_task.outputs = self.spec.start.outputs
            self.spec.start.outputs = [split_task]
            split_task.inputs = [self.spec.start]
        for node in self.xpath("./bpmn:subProcess[@triggeredByEvent='true']"):
            starts = node.xpath("./bpmn:startEvent", namespaces=self.nsmap)
            if len(starts) != 1:
                raise ValidationException(
                    f"The event subprocess {node.get('id')} needs exactly one start event "
                    f"(it has {len(starts)}).",
                    node=node,
                    file_name=self.filename,
                )
            if is_compensation_event(starts[0]):
                self.add_compensation_event_subprocess(node)
                continue
            task_spec = self.parse_node(node)
            sp_spec = self.parser.process_parsers[task_spec.spec].get_spec()
            interrupting = starts[0].get("isInterrupting", "true").lower() != "false"
            if (
                not interrupting
                and starts[0].find(f"{{{BPMN_NS}}}errorEventDefinition") is not None
            ):
                raise ValidationException(
                    f"The error start event {starts[0].get('id')} of an event subprocess "
                    "cannot be non-interrupting: an error start event always interrupts "
                    '(remove isInterrupting="false").',
                    node=starts[0],
                    file_name=self.filename,
                )
            wire_event_subprocess(self.spec, task_spec, sp_spec, interrupting)
        self.add_compensation_handlers()


class BatonProcessParser(
    NamedDataObjectsProcessMixin, _EventSubprocessesParser, _ElementNamesParser
):
    def create_spec(self) -> BpmnProcessSpec:
        if not self.process_executable:
            raise ValidationException(
                f"Process {self.bpmn_id} is not executable.",
                node=self.node,
                file_name=self.filename,
            )
        spec = BatonProcessSpec(
            name=self.bpmn_id,
            description=self.get_name(),
            filename=self.filename,
            naming_elements=True,
        )
        for start in self.node.iterchildren(f"{{{BPMN_NS}}}startEvent"):
            initiator = (start.get(f"{{{CAMUNDA_NS}}}initiator") or "").strip()
            if initiator:  # camunda:initiator: the variable that gets the starting user
                spec.initiator = initiator
                break
        return spec


class BatonSpiffProcessParser(BatonProcessParser, SpiffProcessParser):
    pass


class BatonAdHocParser(NamedDataObjectsProcessMixin, _ElementNamesParser, AdHocParser):
    """Ad-hoc subprocesses whose activities run in parallel (the only ordering the library
    runs), ending when their completion condition holds or, without one, when all are done."""

    def create_spec(self) -> BpmnProcessSpec:
        # The library's `attribute()` looks for namespaced attributes: BPMN's are not.
        if self.node.get("ordering") == "Sequential":
            raise ValidationException(
                f"Ad-hoc subprocesses with sequential ordering are not supported yet: "
                f"{self.bpmn_id} (use ordering Parallel).",
                node=self.node,
                file_name=self.filename,
            )
        condition = self.xpath("./bpmn:completionCondition")
        return BatonAdHocSubprocessSpec(
            completion_condition=completion_condition(condition[0].text if condition else None),
            cancel_remaining=self.node.get("cancelRemainingInstances", "true") == "true",
            name=self.bpmn_id,
            description=self.get_name(),
            filename=self.filename,
            naming_elements=True,
        )


def with_baton_elements(
    parser_classes: dict[str, tuple[type, type]],
) -> dict[str, tuple[type, type]]:
    """`parser_classes` (over the library's), with activities and events running their
    outgoing flows as BPMN says (engine.bpmn.outgoing_flows), end events failing on an
    error nothing catches (engine.bpmn.end_events), data objects resolved through every
    enclosing level (engine.bpmn.data_objects) and multi-instance loops read as
    engine.bpmn.multi_instance does."""
    merged = {**BpmnParser.PARSER_CLASSES, **parser_classes}
    end_event_parser, _ = merged[END_EVENT]
    flows = {
        **parser_classes,
        **outgoing_flow_overrides(merged),
        END_EVENT: (with_mixin(DataObjectScopeMixin, end_event_parser), BatonEndEvent),
    }
    # Intermediate throw events compensate when their definition says so.
    throw_parser, _ = flows.get(THROW_EVENT, merged[THROW_EVENT])
    flows[THROW_EVENT] = (throw_parser, BatonIntermediateThrowEvent)
    # Multi-instance loops wrap the activity (engine.bpmn.multi_instance), flows and all.
    return {**flows, **multi_instance_parser_overrides({**BpmnParser.PARSER_CLASSES, **flows})}


class _LibraryForm(BpmnParser):
    """Reads each document in the form engine.bpmn.rewrites gives it: instantiating receive
    tasks and global tasks as constructs the library runs."""

    DATA_STORE_CLASSES = DATA_STORE_CLASSES

    def add_bpmn_xml(self, bpmn: etree._Element, filename: str | None = None) -> None:
        super().add_bpmn_xml(library_form(bpmn), filename)

    def _add_data_stores(self, bpmn: etree._Element) -> None:
        """SpiffArena's stores (engine.bpmn.data_stores), by name or type attribute
        (processes.constructs refuses the others before this reads them)."""
        for store in bpmn.iter(full_tag("dataStore")):
            class_name = data_store_class_name(store)
            store_id = store.get("id")
            if class_name is None or not store_id:
                continue
            spec_class = DATA_STORE_CLASSES[class_name]
            self.data_stores[store_id] = spec_class(store_id, store.get("name"))


class BatonCamundaParser(_LibraryForm, CamundaParser):
    """Camunda 7/8 diagrams; service tasks become connector tasks; timers, messages and
    signals are read as engine.bpmn.event_definitions describes, multi-instance loops as
    engine.bpmn.multi_instance does."""

    PROCESS_PARSER_CLASS = BatonProcessParser
    AD_HOC_PARSER_CLASS = BatonAdHocParser
    _ELEMENTS = with_baton_elements(
        {
            **CamundaParser.OVERRIDE_PARSER_CLASSES,
            SERVICE_TASK: (CamundaConnectorTaskParser, ConnectorTask),
            NONE_TASK: (CamundaParser.OVERRIDE_PARSER_CLASSES[NONE_TASK][0], PassThroughTask),
            CALL_ACTIVITY: (CamundaCallActivityParser, CamundaCallActivity),
            # Camunda 8: zeebe:script (FEEL) and zeebe:calledDecision resultVariable.
            SCRIPT_TASK: (
                FeelScriptTaskParser,
                CamundaParser.OVERRIDE_PARSER_CLASSES[SCRIPT_TASK][1],
            ),
            BUSINESS_RULE_TASK: (
                ResultVariableBusinessRuleTaskParser,
                CamundaParser.OVERRIDE_PARSER_CLASSES[BUSINESS_RULE_TASK][1],
            ),
            **event_parser_overrides(
                {**BpmnParser.PARSER_CLASSES, **CamundaParser.OVERRIDE_PARSER_CLASSES},
                CamundaEventParserMixin,
            ),
        }
    )
    # Camunda 8 zeebe:ioMapping on elements other than service tasks (engine.bpmn.io_mappings).
    OVERRIDE_PARSER_CLASSES = {
        **_ELEMENTS,
        **io_mapping_overrides({**BpmnParser.PARSER_CLASSES, **_ELEMENTS}),
    }


class BatonSpiffParser(_LibraryForm, SpiffBpmnParser):
    """SpiffArena diagrams; service tasks become connector tasks run by Baton's workers."""

    PROCESS_PARSER_CLASS = BatonSpiffProcessParser
    AD_HOC_PARSER_CLASS = BatonAdHocParser
    OVERRIDE_PARSER_CLASSES = with_baton_elements(
        {
            **SpiffBpmnParser.OVERRIDE_PARSER_CLASSES,
            SERVICE_TASK: (SpiffConnectorTaskParser, SpiffConnectorTask),
            NONE_TASK: (
                SpiffBpmnParser.OVERRIDE_PARSER_CLASSES[NONE_TASK][0],
                SpiffPassThroughTask,
            ),
            **event_parser_overrides(SpiffBpmnParser.OVERRIDE_PARSER_CLASSES, EventParserMixin),
        }
    )


def detect_dialect(roots: list[etree._Element]) -> str:
    """SpiffArena diagrams need the Spiff parser; everything else is read as Camunda 7."""
    for root in roots:
        if SPIFF_NS in root.nsmap.values() or root.find(f".//{{{SPIFF_NS}}}*") is not None:
            return "spiff"
    return "camunda"


_VALIDATOR: BpmnValidator | None = None


def bpmn_validator() -> BpmnValidator:
    """The BPMN 2.0 XSD validator; loading the schema is slow, so it is built once."""
    global _VALIDATOR
    if _VALIDATOR is None:
        _VALIDATOR = BpmnValidator()
    return _VALIDATOR


def build_parser(dialect: str) -> BpmnParser:
    parser_class = BatonSpiffParser if dialect == "spiff" else BatonCamundaParser
    parser: BpmnParser = parser_class(validator=bpmn_validator())
    return parser
