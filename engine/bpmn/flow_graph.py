"""A process's elements and sequence flows as the diagram draws them: what a test coverage
report counts (baton.testing) and the process page colours.

Only the XML is read (no SpiffWorkflow): every flow node inside the process (subprocesses
included, with their contents), and every sequence flow with its source and target. Data
objects and stores, lanes and annotations are not steps of a path and are not counted.
"""

from dataclasses import dataclass, field

from lxml import etree

from .xml import (
    BPMN_NS,
    FLOW_ELEMENTS,
    compensation_handlers,
    is_flow_element,
    parse_untrusted_xml,
)

_SEQUENCE_FLOW = f"{{{BPMN_NS}}}sequenceFlow"
_PROCESS = f"{{{BPMN_NS}}}process"
_NOT_STEPS = frozenset(
    f"{{{BPMN_NS}}}{name}" for name in ("dataObject", "dataObjectReference", "dataStoreReference")
)


@dataclass(frozen=True)
class ProcessGraph:
    # element id -> its BPMN tag without namespace ("userTask", "exclusiveGateway", ...)
    elements: dict[str, str]
    # flow id -> (source element id, target element id)
    flows: dict[str, tuple[str, str]]
    # compensation boundary event id -> its handler's id: such an event never runs as a step;
    # it has done its part when its handler ran.
    compensation_boundaries: dict[str, str] = field(default_factory=dict)

    def covered(self, ran: set[str]) -> set[str]:
        """The elements a run covered: those it entered, and the compensation boundary
        events whose handler it entered."""
        return ran | {event for event, h in self.compensation_boundaries.items() if h in ran}

    def incoming(self, element_id: str) -> dict[str, str]:
        """Flow id -> source id of the flows into `element_id`."""
        return {f: s for f, (s, t) in self.flows.items() if t == element_id}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def process_graph(bpmn_xml: str, process_id: str) -> ProcessGraph:
    """The graph of process `process_id` of a deployed diagram (empty if it has no such
    process). The XML was checked when it was deployed; it is parsed with the same limits."""
    root = parse_untrusted_xml(bpmn_xml.encode())
    process = next((p for p in root.iter(_PROCESS) if p.get("id") == process_id), None)
    if process is None:
        return ProcessGraph({}, {})
    elements: dict[str, str] = {}
    flows: dict[str, tuple[str, str]] = {}
    for node in process.iter(etree.Element):
        if node.tag not in FLOW_ELEMENTS or not is_flow_element(node) or node.tag in _NOT_STEPS:
            continue
        node_id = node.get("id") or ""
        if not node_id:
            continue
        if node.tag == _SEQUENCE_FLOW:
            source, target = node.get("sourceRef") or "", node.get("targetRef") or ""
            if source and target:  # a flow left unconnected in the modeler goes nowhere
                flows[node_id] = (source, target)
        else:
            elements[node_id] = _local(node.tag)
    handlers = {
        event: handler.get("id") or ""
        for event, handler in compensation_handlers(process).items()
        if elements.get(event) == "boundaryEvent"
    }
    return ProcessGraph(elements, flows, handlers)
