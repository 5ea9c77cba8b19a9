"""Processes that call themselves without a condition, refused at deploy.

A call activity that calls its own process (directly, or through other processes of the
deployment) nests a new process at every call. When nothing on the way decides otherwise,
the calls never end: the first start would run until the step budget stops it. Such a call
is *unconditional*: its process reaches it from its none start event on every path, passing
only automatic elements (script and none tasks, throw events, parallel gateways, embedded
subprocesses that pass the same way) and flows without a condition. A gateway that chooses,
a conditional flow, a user or manual task, a receive task or catch event, a service task (a
job: the operation ends there), a loop or multi-instance marker, or another call activity
ends the search: what follows may never run, and the run-time depth limit
(BATON_MAX_CALL_DEPTH) bounds it instead.

Each finding is (the call activity to name, what a modeller reads); processes.validation adds
the file, the line and the element id.
"""

from lxml import etree

from engine.bpmn.xml import BPMN_NS, ZEEBE_NS

Finding = tuple[etree._Element, str]  # noqa: SLF001 -- lxml names its element type so


def _tag(name: str) -> str:
    return f"{{{BPMN_NS}}}{name}"


# Elements the engine runs without waiting, and then goes on along every outgoing flow.
_PASSING = frozenset(
    _tag(name)
    for name in (
        "task",
        "scriptTask",
        "businessRuleTask",
        "sendTask",
        "intermediateThrowEvent",
        "parallelGateway",
        "startEvent",
    )
)
# Gateways pass when they cannot choose: one way out and no condition on it.
_GATEWAYS = frozenset(_tag(name) for name in ("exclusiveGateway", "inclusiveGateway"))
_LOOPS = (_tag("standardLoopCharacteristics"), _tag("multiInstanceLoopCharacteristics"))
_SUBPROCESSES = frozenset(_tag(name) for name in ("subProcess", "transaction"))


def called_process(call: etree._Element) -> str | None:
    """The process id a call activity names, if it names one literally."""
    called = call.get("calledElement")
    if called is None:
        zeebe = call.find(f"{{{BPMN_NS}}}extensionElements/{{{ZEEBE_NS}}}calledElement")
        called = zeebe.get("processId") if zeebe is not None else None
    called = (called or "").strip()
    if not called or any(mark in called for mark in ("${", "#{", "=")):
        return None
    return called


class _Container:
    """The flow graph of a process or embedded subprocess."""

    def __init__(self, container: etree._Element) -> None:
        self.nodes = {
            child.get("id") or "": child
            for child in container
            if isinstance(child.tag, str) and child.tag != _tag("sequenceFlow")
        }
        self.flows = [c for c in container if c.tag == _tag("sequenceFlow")]

    def outgoing(self, node_id: str) -> list[etree._Element]:
        return [f for f in self.flows if f.get("sourceRef") == node_id]

    def incoming(self, node_id: str) -> list[etree._Element]:
        return [f for f in self.flows if f.get("targetRef") == node_id]


def _conditional(flow: etree._Element) -> bool:
    return flow.find(_tag("conditionExpression")) is not None


def _passes(node: etree._Element, container: _Container, calls: list[etree._Element]) -> bool:
    """Whether the run goes on past `node` at once (collecting the call activities reached
    inside an embedded subprocess into `calls`)."""
    if node.find(_LOOPS[0]) is not None or node.find(_LOOPS[1]) is not None:
        return False
    if node.tag in _SUBPROCESSES and node.get("triggeredByEvent") != "true":
        inner_calls, ends = _reached(node)
        calls.extend(inner_calls)
        return ends
    if node.tag in _GATEWAYS:
        out = container.outgoing(node.get("id") or "")
        return len(out) <= 1 and not any(_conditional(f) for f in out)
    if node.tag == _tag("startEvent"):  # a none start event only
        return not any(isinstance(c.tag, str) and c.tag.endswith("EventDefinition") for c in node)
    return node.tag in _PASSING


def _reached(container_element: etree._Element) -> tuple[list[etree._Element], bool]:
    """The call activities the container reaches unconditionally from its none start event,
    and whether it reaches an end that way."""
    container = _Container(container_element)
    starts = [
        node_id
        for node_id, node in container.nodes.items()
        if node.tag == _tag("startEvent") and not container.incoming(node_id)
    ]
    passed: set[str] = set()
    reached: set[str] = set()
    calls: list[etree._Element] = []
    ends = False
    if len(starts) != 1:  # several start events (or none): which one starts is a choice
        return [], False
    frontier = [s for s in starts if _passes(container.nodes[s], container, calls)]
    while frontier:
        node_id = frontier.pop()
        if node_id in passed:
            continue
        passed.add(node_id)
        for flow in container.outgoing(node_id):
            target_id = flow.get("targetRef") or ""
            target = container.nodes.get(target_id)
            if _conditional(flow) or target is None or target_id in reached:
                continue
            if target.tag == _tag("parallelGateway") and len(container.incoming(target_id)) > 1:
                sources = {f.get("sourceRef") for f in container.incoming(target_id)}
                if not sources <= passed:
                    continue  # a join waits for branches not known to arrive
            reached.add(target_id)
            if target.tag == _tag("callActivity"):
                calls.append(target)
            elif target.tag == _tag("endEvent"):
                ends = True
            elif _passes(target, container, calls):
                frontier.append(target_id)
    return calls, ends


def unconditional_recursions(roots: list[etree._Element]) -> list[Finding]:
    """The call activities through which a process of the deployment calls itself again
    unconditionally (directly or through others of the deployment), one per cycle."""
    processes = {
        process.get("id") or "": process for root in roots for process in root.iter(_tag("process"))
    }
    calls: dict[str, list[tuple[etree._Element, str]]] = {}
    for process_id, process in processes.items():
        reached, _ = _reached(process)
        calls[process_id] = [
            (call, called)
            for call in reached
            if (called := called_process(call)) is not None and called in processes
        ]
    findings: list[Finding] = []
    reported: set[str] = set()
    for process_id in processes:
        path = _cycle_from(process_id, calls)
        if path is None or path[-1][0].get("id") in reported:
            continue
        call, _ = path[-1]
        reported.update(c.get("id") or "" for c, _ in path)
        chain = " -> ".join([process_id, *(called for _, called in path)])
        findings.append(
            (
                call,
                f"This call activity calls its own process again on every run ({chain}), "
                "so the calls would never end. Put a condition before it (an exclusive "
                "gateway with a condition), or a task that waits.",
            )
        )
    return findings


def _cycle_from(
    start: str, calls: dict[str, list[tuple[etree._Element, str]]]
) -> list[tuple[etree._Element, str]] | None:
    """The unconditional calls from process `start` that lead back to it, if any."""
    stack: list[tuple[str, list[tuple[etree._Element, str]]]] = [(start, [])]
    seen: set[str] = set()
    while stack:
        process_id, path = stack.pop()
        for call, called in calls.get(process_id, []):
            if called == start:
                return [*path, (call, called)]
            if called not in seen:
                seen.add(called)
                stack.append((called, [*path, (call, called)]))
    return None
