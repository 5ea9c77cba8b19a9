"""Constructs Baton does not run (yet), and references that lead nowhere, found in the XML
before the workflow library reads it: the library refuses some of them with a Python repr
(`NotImplementedError('Unsupported Catch Event: %r', b'<bpmn:boundaryEvent …')`), a
message without an element, or not at all (a compensation throw event ran as a none event).

Each finding is (the element to name, what a modeller reads); processes.validation adds the
file, the line and the element id.
"""

from collections.abc import Iterator

from lxml import etree

from engine.bpmn.data_stores import DATA_STORE_CLASSES, data_store_class_name
from engine.bpmn.xml import BPMN_NS

Finding = tuple[etree._Element, str]  # noqa: SLF001 -- lxml's element type is named so


def _tag(name: str) -> str:
    return f"{{{BPMN_NS}}}{name}"


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname


COMPLEX_GATEWAY = "Complex gateways are not supported yet; use an inclusive gateway."
COMPENSATION_BOUNDARY = "Compensation boundary events are not supported yet."
COMPENSATION_EVENT = "Compensation events are not supported yet."
COMPENSATION_ACTIVITY = 'Compensation activities (isForCompensation="true") are not supported yet.'
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


def _compensation(root: etree._Element) -> Iterator[Finding]:
    for definition in root.iter(_tag("compensateEventDefinition")):
        event = definition.getparent()
        if event is None or event.tag == _tag("definitions"):
            continue
        if event.tag == _tag("boundaryEvent"):
            yield event, COMPENSATION_BOUNDARY
        else:
            yield event, COMPENSATION_EVENT
    for activity in root.iter(etree.Element):
        if activity.get("isForCompensation") == "true":
            yield activity, COMPENSATION_ACTIVITY


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
