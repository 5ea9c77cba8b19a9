"""Safe XML parsing for uploaded diagrams."""

import re
from dataclasses import dataclass

from django.conf import settings
from lxml import etree

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
DMN_NAMESPACES = (
    "https://www.omg.org/spec/DMN/20191111/MODEL/",
    "http://www.omg.org/spec/DMN/20151101/dmn.xsd",
    "http://www.omg.org/spec/DMN/20180521/MODEL/",
)
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"
ZEEBE_NS = "http://camunda.org/schema/zeebe/1.0"
NSMAP = {"bpmn": BPMN_NS, "camunda": CAMUNDA_NS, "spiffworkflow": SPIFF_NS, "zeebe": ZEEBE_NS}


class UnsafeXmlError(ValueError):
    """The document declares a DTD or entities, which Baton never accepts."""


# A DOCTYPE in the prolog: after an optional BOM, XML declaration, comments and PIs.
_PROLOG_DOCTYPE = re.compile(
    rb"\A(?:\xef\xbb\xbf)?\s*(?:<\?.*?\?>\s*|<!--.*?-->\s*)*<!DOCTYPE", re.DOTALL
)
_DOCTYPE_MESSAGE = "The file declares a DOCTYPE (DTD or entities). Diagrams must not contain one."


class XmlLimitExceeded(UnsafeXmlError):
    """The document is deeper, or the deployment holds more flow elements, than allowed.
    `line` and `element_id` say where the limit was passed."""

    def __init__(self, message: str, element: etree._Element) -> None:
        super().__init__(message)
        self.line: int | None = element.sourceline
        self.element_id: str = element.get("id") or ""


# The elements of a process that Baton and SpiffWorkflow build and run one by one: what
# BATON_MAX_DIAGRAM_ELEMENTS counts. Diagram layout (bpmndi) and extensions cost next to nothing.
FLOW_CONTAINERS = frozenset(
    f"{{{BPMN_NS}}}{name}" for name in ("process", "subProcess", "transaction", "adHocSubProcess")
)
# BPMN 2.0's activities that Baton runs (the ad-hoc subprocess aside: its own parser).
ACTIVITY_TAGS = (
    "task",
    "userTask",
    "manualTask",
    "serviceTask",
    "scriptTask",
    "businessRuleTask",
    "sendTask",
    "receiveTask",
    "callActivity",
    "subProcess",
    "transaction",
)
FLOW_ELEMENTS = frozenset(
    f"{{{BPMN_NS}}}{name}"
    for name in (
        *ACTIVITY_TAGS,
        "adHocSubProcess",
        "startEvent",
        "endEvent",
        "intermediateCatchEvent",
        "intermediateThrowEvent",
        "boundaryEvent",
        "exclusiveGateway",
        "inclusiveGateway",
        "parallelGateway",
        "eventBasedGateway",
        "complexGateway",
        "sequenceFlow",
        "dataObject",
        "dataObjectReference",
        "dataStoreReference",
    )
)


def is_flow_element(element: etree._Element) -> bool:
    parent = element.getparent()
    return element.tag in FLOW_ELEMENTS and parent is not None and parent.tag in FLOW_CONTAINERS


@dataclass
class XmlLimits:
    """How deep a document may nest and how many flow elements a deployment may hold. One
    instance is shared by the files of a deployment: `flow_elements` counts across them."""

    max_depth: int
    max_flow_elements: int | None = None  # None: not counted
    flow_elements: int = 0

    @classmethod
    def for_deployment(cls) -> "XmlLimits":
        return cls(settings.BATON_MAX_XML_DEPTH, settings.BATON_MAX_DIAGRAM_ELEMENTS)

    def check(self, element: etree._Element, depth: int) -> None:
        if depth > self.max_depth:
            raise XmlLimitExceeded(
                f"The XML nests deeper than {self.max_depth} levels (BATON_MAX_XML_DEPTH).", element
            )
        if self.max_flow_elements is not None and is_flow_element(element):
            self.flow_elements += 1
            if self.flow_elements > self.max_flow_elements:
                raise XmlLimitExceeded(
                    f"The deployment has more than {self.max_flow_elements} flow elements "
                    "(tasks, events, gateways, sequence flows, data objects); that is the "
                    "limit (BATON_MAX_DIAGRAM_ELEMENTS). Split it into several processes.",
                    element,
                )


# The piece size untrusted input is handled in: fed to the XML parser here, read from a
# request body in config/request_limits.py.
CHUNK_BYTES = 64 * 1024


class _Checker:
    """Checks every element as the pull parser reports it, so that a document over a limit
    stops being parsed there (SpiffWorkflow never sees it)."""

    def __init__(self, parser: etree.XMLPullParser, limits: XmlLimits) -> None:
        self.parser = parser
        self.limits = limits
        self.depth = 0

    def read_events(self) -> None:
        for event, element in self.parser.read_events():
            if event == "start":
                self.depth += 1
                self.limits.check(element, self.depth)
            else:
                self.depth -= 1

    def parse(self, content: bytes) -> etree._Element:
        try:
            for offset in range(0, len(content), CHUNK_BYTES):
                self.parser.feed(content[offset : offset + CHUNK_BYTES])
                self.read_events()
            root = self.parser.close()
        except etree.XMLSyntaxError:
            # What was read before the error may already pass a limit (libxml2's own depth
            # limit, 256, is such an error): name Baton's limit then.
            self.read_events()
            raise
        self.read_events()
        return root


def parse_untrusted_xml(content: bytes, limits: XmlLimits | None = None) -> etree._Element:
    """Parse an uploaded document with entities, DTDs and network access turned off, within
    `limits` (when none are given, only the depth limit of the settings: the element count
    is a deployment's, see `XmlLimits.for_deployment`).

    Raises `etree.XMLSyntaxError` for malformed XML, `XmlLimitExceeded` for a document over a
    limit and `UnsafeXmlError` for any DOCTYPE: a diagram never needs one, and refusing it
    outright also stops entity expansion bombs.
    """
    parser = etree.XMLPullParser(
        events=("start", "end"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
    )
    try:
        root = _Checker(parser, limits or XmlLimits(settings.BATON_MAX_XML_DEPTH)).parse(content)
    except etree.XMLSyntaxError:
        # An entity that libxml2 refuses to expand (an external one, or an expansion bomb in
        # an attribute) fails the parse; name the real problem rather than "malformed".
        if _PROLOG_DOCTYPE.match(content):
            raise UnsafeXmlError(_DOCTYPE_MESSAGE) from None
        raise
    doctype = root.getroottree().docinfo.doctype
    if doctype:
        raise UnsafeXmlError(_DOCTYPE_MESSAGE)
    return root


def _is_handler(node: etree._Element | None) -> bool:
    return node is not None and node.get("isForCompensation") == "true"


def compensation_handlers(root: etree._Element) -> dict[str, etree._Element]:
    """Element id -> the compensation handler (an element marked `isForCompensation="true"`)
    at the other end of a `bpmn:association` with it: what a compensation boundary event
    names as its activity's handler (the first such association, in document order). One
    pass over the document, however many boundary events ask."""
    by_id: dict[str, etree._Element] = {}
    for element in root.iter(etree.Element):
        element_id = element.get("id")
        if element_id and element_id not in by_id:
            by_id[element_id] = element
    handlers: dict[str, etree._Element] = {}
    for association in root.iter(f"{{{BPMN_NS}}}association"):
        source, target = association.get("sourceRef") or "", association.get("targetRef") or ""
        for end, other in ((source, target), (target, source)):
            node = by_id.get(other)
            if end and end not in handlers and _is_handler(node):
                handlers[end] = node
    return handlers


def element_at_line(root: etree._Element, line: int | None) -> str:
    """The id of the innermost element with an id that starts on `line`, or ''."""
    if not line:
        return ""
    found = ""
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        if element.sourceline == line and element.get("id"):
            found = element.get("id") or ""
        elif element.sourceline is not None and element.sourceline > line:
            break
    return found


def line_of_element(root: etree._Element, element_id: str) -> int | None:
    if not element_id:
        return None
    for element in root.iter():
        if isinstance(element.tag, str) and element.get("id") == element_id:
            return element.sourceline
    return None


# SpiffWorkflow's parser follows sequence flows recursively (a few Python frames per element),
# so a long run of elements one after another exhausts Python's recursion limit. Baton refuses
# longer runs with this limit, well within that budget whatever called the parser.
MAX_ELEMENTS_IN_A_ROW = 250
_BOUNDARY_EVENT = f"{{{BPMN_NS}}}boundaryEvent"
_SEQUENCE_FLOW = f"{{{BPMN_NS}}}sequenceFlow"
_START_EVENT = f"{{{BPMN_NS}}}startEvent"
_INCOMING = f"{{{BPMN_NS}}}incoming"


def _flow_graph(container: etree._Element) -> dict[str, list[str]]:
    """Element id -> the ids SpiffWorkflow's parser visits from it, in its order: the boundary
    events attached to it, then the targets of its outgoing sequence flows."""
    boundary: dict[str, list[str]] = {}
    outgoing: dict[str, list[str]] = {}
    for node in container.iter(_BOUNDARY_EVENT, _SEQUENCE_FLOW):
        if node.tag == _BOUNDARY_EVENT:
            boundary.setdefault(node.get("attachedToRef") or "", []).append(node.get("id") or "")
        else:
            outgoing.setdefault(node.get("sourceRef") or "", []).append(node.get("targetRef") or "")
    return {key: boundary.get(key, []) + outgoing.get(key, []) for key in {*boundary, *outgoing}}


def _parse_roots(container: etree._Element) -> list[etree._Element]:
    """Where SpiffWorkflow's parser starts: the start events (in an ad hoc subprocess, every
    element without incoming flows) and the event subprocesses."""
    children = [c for c in container if isinstance(c.tag, str) and c.tag in FLOW_ELEMENTS]
    if container.tag == f"{{{BPMN_NS}}}adHocSubProcess":
        roots = [c for c in children if c.find(_INCOMING) is None]
    else:
        roots = [c for c in children if c.tag == _START_EVENT]
    return roots + [c for c in children if c.get("triggeredByEvent") == "true"]


def run_over_limit(container: etree._Element, limit: int = MAX_ELEMENTS_IN_A_ROW) -> str | None:
    """The id of the element where SpiffWorkflow's parser, reading `container` (a process or
    subprocess), would have more than `limit` elements in progress at once; None when it
    never does. The parser's own depth-first walk, without recursion."""
    graph = _flow_graph(container)
    visited: set[str] = set()
    for root in _parse_roots(container):
        start = root.get("id") or ""
        if start in visited:
            continue
        visited.add(start)
        stack = [iter(graph.get(start, []))]
        while stack:
            following = next((n for n in stack[-1] if n not in visited), None)
            if following is None:
                stack.pop()
                continue
            visited.add(following)
            stack.append(iter(graph.get(following, [])))
            if len(stack) > limit:
                return following
    return None


def process_properties(bpmn_xml: str, process_id: str) -> dict[str, str]:
    """The extension properties (Camunda, Zeebe or SpiffArena `properties/property`) of
    process `process_id`, by name; {} when the document cannot be read."""
    try:
        root = parse_untrusted_xml(bpmn_xml.encode("utf-8"))
    except (ValueError, etree.XMLSyntaxError):
        return {}
    found: dict[str, str] = {}
    for process in root.iter(f"{{{BPMN_NS}}}process"):
        if process.get("id") != process_id:
            continue
        for ns in (CAMUNDA_NS, ZEEBE_NS, SPIFF_NS):
            path = f"{{{BPMN_NS}}}extensionElements/{{{ns}}}properties/{{{ns}}}property"
            for prop in process.findall(path):
                found.setdefault(prop.get("name") or "", prop.get("value") or "")
    return found
