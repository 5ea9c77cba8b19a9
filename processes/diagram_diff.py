"""What changed between two versions of a diagram: the BPMN elements added, removed and
changed (compared by id), and whether only the layout moved."""

import re
from copy import deepcopy
from dataclasses import dataclass, field

from lxml import etree

from engine.bpmn.xml import BPMN_NS, CAMUNDA_NS, SPIFF_NS, ZEEBE_NS, parse_untrusted_xml

from .thumbnails import BPMNDI_NS

# Elements whose children with ids are diagram elements of their own.
CONTAINERS = {
    "definitions",
    "process",
    "subProcess",
    "transaction",
    "adHocSubProcess",
    "collaboration",
    "laneSet",
}
# Containers that are no diagram element a modeller would name.
UNTRACKED = {"laneSet"}
# Children that only mirror the sequence flows (a changed flow is reported itself).
MIRRORS = {"incoming", "outgoing", "flowNodeRef"}
PREFIXES = {
    CAMUNDA_NS: "camunda:",
    SPIFF_NS: "spiffworkflow:",
    ZEEBE_NS: "zeebe:",
    "http://www.w3.org/2001/XMLSchema-instance": "xsi:",
}
SHOWN_VALUE_LENGTH = 60


@dataclass(frozen=True)
class ElementChange:
    element_id: str
    kind: str
    name: str
    details: tuple[str, ...] = ()


@dataclass
class DiagramDiff:
    added: list[ElementChange] = field(default_factory=list)
    removed: list[ElementChange] = field(default_factory=list)
    changed: list[ElementChange] = field(default_factory=list)
    layout_changed: bool = False

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.layout_changed)


def humanize(local_name: str) -> str:
    """userTask -> User task, exclusiveGateway -> Exclusive gateway."""
    words = re.sub(r"(?<!^)(?=[A-Z])", " ", local_name).lower()
    return words[:1].upper() + words[1:]


def _qualified(name: str) -> str:
    qname = etree.QName(name)
    if qname.namespace is None:
        return qname.localname
    return PREFIXES.get(qname.namespace, "") + qname.localname


def _tracked(root: etree._Element) -> dict[str, etree._Element]:
    """BPMN elements with an id directly inside a container, by id, in document order."""
    found: dict[str, etree._Element] = {}
    for element in root.iter(f"{{{BPMN_NS}}}*"):
        parent = element.getparent()
        if (
            element.get("id")
            and parent is not None
            and etree.QName(element).localname not in UNTRACKED
            and etree.QName(parent).namespace == BPMN_NS
            and etree.QName(parent).localname in CONTAINERS
        ):
            found[element.get("id") or ""] = element
    return found


def _is_own_part(child: etree._Element, element: etree._Element) -> bool:
    """A child that describes the element itself (not a nested diagram element or a mirror)."""
    if not isinstance(child.tag, str):
        return False
    local = etree.QName(child).localname
    if local in MIRRORS:
        return False
    if etree.QName(element).localname in CONTAINERS and child.get("id"):
        return etree.QName(child).namespace != BPMN_NS
    return True


def _canonical(element: etree._Element) -> bytes:
    """The element as canonical XML, blind to indentation and to namespace declarations it
    does not use, so that a diagram saved again by another tool compares equal."""
    copy = deepcopy(element)
    for node in copy.iter():
        if node.text is not None and not node.text.strip():
            node.text = None
        if node.tail is not None and not node.tail.strip():
            node.tail = None
    copy.tail = None
    return etree.tostring(copy, method="c14n", exclusive=True)


def _parts(element: etree._Element) -> dict[str, list[bytes]]:
    parts: dict[str, list[bytes]] = {}
    for child in element:
        if _is_own_part(child, element):
            parts.setdefault(_qualified(child.tag), []).append(_canonical(child))
    return parts


def _shown(value: str | None) -> str:
    if value is None:
        return "(none)"
    value = " ".join(value.split())
    if len(value) > SHOWN_VALUE_LENGTH:
        value = value[: SHOWN_VALUE_LENGTH - 1] + "…"
    return f"“{value}”"


def _describe_changes(old: etree._Element, new: etree._Element) -> tuple[str, ...]:
    details: list[str] = []
    if old.tag != new.tag:
        details.append(
            f"type: {humanize(etree.QName(old).localname)} → {humanize(etree.QName(new).localname)}"
        )
    for name in sorted(set(old.attrib) | set(new.attrib), key=_qualified):
        if old.get(name) != new.get(name):
            details.append(f"{_qualified(name)}: {_shown(old.get(name))} → {_shown(new.get(name))}")
    old_parts, new_parts = _parts(old), _parts(new)
    text_changed = (old.text or "").strip() != (new.text or "").strip()
    for name in sorted(set(old_parts) | set(new_parts)):
        if old_parts.get(name) != new_parts.get(name):
            if name not in old_parts:
                details.append(f"{name} added")
            elif name not in new_parts:
                details.append(f"{name} removed")
            else:
                details.append(f"{name} changed")
    if text_changed:
        details.append("text changed")
    return tuple(details)


def _change(element: etree._Element, details: tuple[str, ...] = ()) -> ElementChange:
    return ElementChange(
        element_id=element.get("id") or "",
        kind=humanize(etree.QName(element).localname),
        name=element.get("name") or "",
        details=details,
    )


def _layout(root: etree._Element) -> list[bytes]:
    """Every shape and edge of the diagrams; their order is only the drawing order."""
    drawn = [_canonical(item) for plane in root.iter(f"{{{BPMNDI_NS}}}BPMNPlane") for item in plane]
    return sorted(drawn)


def diff_diagrams(old_xml: str, new_xml: str) -> DiagramDiff:
    """Compare two BPMN documents element by element (by id)."""
    old_root = parse_untrusted_xml(old_xml.encode("utf-8"))
    new_root = parse_untrusted_xml(new_xml.encode("utf-8"))
    old_elements, new_elements = _tracked(old_root), _tracked(new_root)
    diff = DiagramDiff()
    for element_id, element in new_elements.items():
        previous = old_elements.get(element_id)
        if previous is None:
            diff.added.append(_change(element))
            continue
        details = _describe_changes(previous, element)
        if details:
            diff.changed.append(_change(element, details))
    diff.removed = [
        _change(element)
        for element_id, element in old_elements.items()
        if element_id not in new_elements
    ]
    diff.layout_changed = _layout(old_root) != _layout(new_root)
    return diff
