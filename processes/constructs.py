"""Constructs Baton does not run (yet), and references that lead nowhere, found in the XML
before the workflow library reads it: the library refuses some of them with a Python repr
(`NotImplementedError('Unsupported Catch Event: %r', b'<bpmn:boundaryEvent …')`), a
message without an element, or not at all; and compensation that does not fit together (a
handler with sequence flows, a compensation boundary event without a handler or not on an
activity, an `activityRef` that names nothing in the throw event's scope).

Each finding is (the element to name, what a modeller reads); processes.validation adds the
file, the line and the element id.
"""

from collections.abc import Iterator

from lxml import etree

from engine.bpmn.data_stores import DATA_STORE_CLASSES, data_store_class_name
from engine.bpmn.xml import ACTIVITY_TAGS, BPMN_NS, compensation_handlers

Finding = tuple[etree._Element, str]  # noqa: SLF001 -- lxml's element type is named so


def _tag(name: str) -> str:
    return f"{{{BPMN_NS}}}{name}"


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname


COMPLEX_GATEWAY = "Complex gateways are not supported yet; use an inclusive gateway."
BOUNDARY_WITHOUT_DEFINITION = (
    "A boundary event needs an event definition: a timer, message, signal, error, "
    "escalation, conditional or cancel event."
)
DATA_STORE = (
    "This data store is of no kind Baton keeps: name the dataStore element {kinds} "
    "(SpiffArena's kinds), or use a data object or process variables."
).format(kinds=" or ".join(DATA_STORE_CLASSES))

# Global tasks a call activity may call (BPMN 10.3.4): they run as if the task were inline.
GLOBAL_TASK_TAGS = (
    "globalTask",
    "globalScriptTask",
    "globalUserTask",
    "globalManualTask",
    "globalBusinessRuleTask",
)
_EVENT_REFS = {"errorEventDefinition": "errorRef", "escalationEventDefinition": "escalationRef"}
_REF_TARGETS = {"errorRef": "error", "escalationRef": "escalation"}


def _ids(roots: list[etree._Element], *local_names: str) -> set[str]:
    found: set[str] = set()
    for root in roots:
        for name in local_names:
            found.update(e.get("id") or "" for e in root.iter(_tag(name)))
    return found


_ACTIVITIES = frozenset(_tag(name) for name in (*ACTIVITY_TAGS, "adHocSubProcess"))


def _compensation_handler_flows(root: etree._Element) -> Iterator[Finding]:
    targets, sources = set(), set()
    for flow in root.iter(_tag("sequenceFlow")):
        targets.add(flow.get("targetRef"))
        sources.add(flow.get("sourceRef"))
    for activity in root.iter(etree.Element):
        if activity.get("isForCompensation") != "true":
            continue
        activity_id = activity.get("id")
        ways = [
            way
            for way, ends in (("incoming", targets), ("outgoing", sources))
            if activity_id in ends
        ]
        if ways:
            yield (
                activity,
                f"The compensation handler {activity_id!r} has {' and '.join(ways)} sequence "
                "flows: a compensation handler runs only through the association with its "
                "compensation boundary event (remove its sequence flows).",
            )


def _compensation_boundaries(
    root: etree._Element, by_id: dict[str | None, etree._Element]
) -> Iterator[Finding]:
    handlers = compensation_handlers(root)
    for event in root.iter(_tag("boundaryEvent")):
        if event.find(_tag("compensateEventDefinition")) is None:
            continue
        attached = by_id.get(event.get("attachedToRef"))
        if attached is None or attached.tag not in _ACTIVITIES:
            yield (
                event,
                f"The compensation boundary event {event.get('id')!r} is attached to "
                f"{event.get('attachedToRef')!r}, which is no activity: only an activity "
                "(a task, subprocess or call activity) can be compensated.",
            )
        elif (event.get("id") or "") not in handlers:
            yield (
                event,
                f"The compensation boundary event {event.get('id')!r} has no compensation "
                "handler: associate it (bpmn:association) with an activity marked "
                'isForCompensation="true".',
            )


def _compensation_throws(
    root: etree._Element, by_id: dict[str | None, etree._Element]
) -> Iterator[Finding]:
    for definition in root.iter(_tag("compensateEventDefinition")):
        event = definition.getparent()
        if event is None or event.tag not in (_tag("intermediateThrowEvent"), _tag("endEvent")):
            if event is not None and event.tag == _tag("intermediateCatchEvent"):
                yield (
                    event,
                    "A compensation event cannot be caught by an intermediate catch event: "
                    "use a compensation boundary event with a handler.",
                )
            continue
        ref = (definition.get("activityRef") or "").strip()
        if not ref:
            continue
        target = by_id.get(ref)
        if target is None or target.tag not in _ACTIVITIES:
            yield (
                event,
                f"The compensation event {event.get('id')!r} names the activity {ref!r} "
                "(activityRef), which is no activity of this diagram.",
            )
        elif target.getparent() is not event.getparent():
            yield (
                event,
                f"The compensation event {event.get('id')!r} names the activity {ref!r} "
                "(activityRef), which is not in its scope: a compensation event compensates "
                "activities of its own process or subprocess only.",
            )


def _compensation_in_ad_hoc(root: etree._Element) -> Iterator[Finding]:
    """An ad-hoc subprocess starts every activity without incoming flows (a handler would
    run as one of them) and has no compensation of its own in Baton: refused, not ignored."""
    for ad_hoc in root.iter(_tag("adHocSubProcess")):
        for element in ad_hoc.iter(etree.Element):
            is_handler = element.get("isForCompensation") == "true"
            compensates = element.find(_tag("compensateEventDefinition")) is not None
            if element is not ad_hoc and (is_handler or compensates):
                yield (
                    element,
                    f"Compensation inside the ad-hoc subprocess {ad_hoc.get('id')!r} is not "
                    f"supported: {element.get('id')!r} is a compensation "
                    f"{'handler' if is_handler else 'event'}. Put the compensated activities "
                    "in an embedded subprocess or a called process, or compensate the ad-hoc "
                    "subprocess as a whole (a compensation boundary event on it).",
                )


def _compensation(root: etree._Element) -> Iterator[Finding]:
    # Every check reads the same index of ids: built once, not once per element.
    by_id = {e.get("id"): e for e in root.iter(etree.Element) if e.get("id")}
    yield from _compensation_handler_flows(root)
    yield from _compensation_boundaries(root, by_id)
    yield from _compensation_throws(root, by_id)
    yield from _compensation_in_ad_hoc(root)


def _boundary_events(root: etree._Element) -> Iterator[Finding]:
    for event in root.iter(_tag("boundaryEvent")):
        defined = any(_local(child).endswith("EventDefinition") for child in event)
        if not defined and not event.findall(_tag("eventDefinitionRef")):
            yield event, BOUNDARY_WITHOUT_DEFINITION


def _event_refs(root: etree._Element, roots: list[etree._Element]) -> Iterator[Finding]:
    for definition_name, attribute in _EVENT_REFS.items():
        known = _ids(roots, _REF_TARGETS[attribute])
        for definition in root.iter(_tag(definition_name)):
            ref = definition.get(attribute)
            if ref and ref not in known:
                event = definition.getparent()
                yield (
                    event if event is not None else definition,
                    f"The {attribute} {ref!r} names no {_REF_TARGETS[attribute]} element "
                    f"(bpmn:{_REF_TARGETS[attribute]}) of this deployment.",
                )


def _called_elements(root: etree._Element, roots: list[etree._Element]) -> Iterator[Finding]:
    callable_ids = _ids(roots, "process", *GLOBAL_TASK_TAGS)
    for call in root.iter(_tag("callActivity")):
        called = (call.get("calledElement") or "").strip()
        if called and called not in callable_ids:
            yield (
                call,
                f"The call activity calls {called!r}, which is no process or global task "
                "of this deployment (deploy the called process in the same upload).",
            )


def _data_associations(root: etree._Element) -> Iterator[Finding]:
    by_id = {e.get("id"): e for e in root.iter(etree.Element) if e.get("id")}
    paths = (
        ("dataInputAssociation", "sourceRef", "input"),
        ("dataOutputAssociation", "targetRef", "output"),
    )
    for association_name, ref_name, kind in paths:
        for association in root.iter(_tag(association_name)):
            owner = association.getparent()
            for ref in association.iterfind(_tag(ref_name)):
                ref_id = (ref.text or "").strip()
                target = by_id.get(ref_id)
                if target is None:
                    yield (
                        owner if owner is not None else association,
                        f"A data {kind} association names {ref_id!r}, which is no data "
                        "object reference of this file.",
                    )
                elif target.tag == _tag("dataStoreReference") and not _kept_store(target, by_id):
                    yield (owner if owner is not None else association, DATA_STORE)


def _kept_store(reference: etree._Element, by_id: dict[str | None, etree._Element]) -> bool:
    """Whether a data store reference names a `bpmn:dataStore` of a kind Baton keeps
    (engine.bpmn.data_stores), declared in the same document."""
    store = by_id.get(reference.get("dataStoreRef"))
    return (
        store is not None
        and store.tag == _tag("dataStore")
        and data_store_class_name(store) is not None
    )


def unsupported_constructs(root: etree._Element, roots: list[etree._Element]) -> list[Finding]:
    """What in document `root` (one of the deployment's `roots`) Baton refuses."""
    findings: list[Finding] = [(g, COMPLEX_GATEWAY) for g in root.iter(_tag("complexGateway"))]
    findings.extend(_compensation(root))
    findings.extend(_boundary_events(root))
    findings.extend(_event_refs(root, roots))
    findings.extend(_called_elements(root, roots))
    findings.extend(_data_associations(root))
    return findings
