"""Departures from the BPMN 2.0 schema that SpiffWorkflow and SpiffArena run without
complaint, so that models drawn there deploy here too, with a warning.

The schema check runs on a copy with each quirk neutralised; the workflow library reads the
document as its author wrote it (it ignores every one of these), so nothing changes at run time.
"""

import copy
from collections import Counter
from dataclasses import dataclass

from lxml import etree

from engine.bpmn.xml import BPMN_NS

# Elements whose id SpiffArena's modeler writes twice: a multi-instance task's input and
# output data items share their name (and so their id) when the task edits items in place.
_DATA_ITEMS = frozenset(f"{{{BPMN_NS}}}{name}" for name in ("inputDataItem", "outputDataItem"))
_EVENTS = frozenset(
    f"{{{BPMN_NS}}}{name}"
    for name in ("startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent")
)


@dataclass(frozen=True)
class Quirk:
    line: int | None
    element_id: str
    message: str


def _dangling_flows(root: etree._Element) -> list[tuple[etree._Element, Quirk]]:
    found = []
    for flow in root.iter(f"{{{BPMN_NS}}}sequenceFlow"):
        missing = [name for name in ("sourceRef", "targetRef") if not flow.get(name)]
        if missing:
            found.append(
                (
                    flow,
                    Quirk(
                        flow.sourceline,
                        flow.get("id") or "",
                        f"This sequence flow has no {' and no '.join(missing)}; it connects "
                        "nothing and is ignored.",
                    ),
                )
            )
    return found


def neutralised_copy(root: etree._Element) -> tuple[etree._Element, list[Quirk]]:
    """A copy of `root` with the tolerated quirks removed, and a warning for each."""
    quirks: list[Quirk] = []
    tolerant = copy.deepcopy(root)
    for flow, quirk in _dangling_flows(tolerant):
        parent = flow.getparent()
        if parent is not None:
            parent.remove(flow)
        quirks.append(quirk)
    for event in (e for e in tolerant.iter() if e.tag in _EVENTS and e.get("messageRef")):
        del event.attrib["messageRef"]
        quirks.append(
            Quirk(
                event.sourceline,
                event.get("id") or "",
                "A messageRef attribute on an event is not BPMN; it is ignored (the event's "
                "messageEventDefinition names its message).",
            )
        )
    ids = Counter(e.get("id") for e in tolerant.iter() if isinstance(e.tag, str) and e.get("id"))
    seen: set[str] = set()
    for item in (e for e in tolerant.iter() if e.tag in _DATA_ITEMS):
        element_id = item.get("id") or ""
        if ids[element_id] < 2:
            continue
        if element_id in seen:
            item.set("id", f"{element_id}__{item.sourceline}")
            quirks.append(
                Quirk(
                    item.sourceline,
                    element_id,
                    "This id is used twice (a multi-instance task's input and output items); "
                    "SpiffWorkflow reads both as the same variable.",
                )
            )
        seen.add(element_id)
    return tolerant, quirks
