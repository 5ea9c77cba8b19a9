"""BPMN constructs the workflow library does not read, given to it as constructs it runs
the same way. The parser reads a rewritten copy; the deployed XML stays as uploaded.

- A receive task that instantiates (`instantiate="true"`, no incoming sequence flow) starts
  its process when its message arrives (BPMN 10.3.3): it becomes a message start event with
  the same id and message, so it is registered and started like one.
- A global task (`globalTask`, `globalScriptTask`, `globalUserTask`, `globalManualTask`,
  `globalBusinessRuleTask`) that a call activity calls runs as if the task were inline
  (BPMN 10.3.4): it becomes a process of its own id holding the task (same id, same
  attributes and content) between a start event `<id> [start]` and an end event `<id> [end]`
  (no XML id holds a space, so these name no element of the diagram).
- Camunda 8 names what a call activity calls in `zeebe:calledElement processId=` and the
  decision of a business rule task in `zeebe:calledDecision decisionId=`: they become the
  `calledElement` and `camunda:decisionRef` attributes the library reads.
"""

import copy

from lxml import etree

from .xml import BPMN_NS, CAMUNDA_NS, ZEEBE_NS


def _tag(name: str) -> str:
    return f"{{{BPMN_NS}}}{name}"


GLOBAL_TASKS = {
    _tag("globalTask"): "task",
    _tag("globalScriptTask"): "scriptTask",
    _tag("globalUserTask"): "userTask",
    _tag("globalManualTask"): "manualTask",
    _tag("globalBusinessRuleTask"): "businessRuleTask",
}
_RECEIVE_ONLY_ATTRIBUTES = ("instantiate", "messageRef", "implementation")


def instantiating_receive_tasks(root: etree._Element) -> list[etree._Element]:
    """The receive tasks that start their process (`instantiate="true"`, nothing leads in)."""
    found = []
    for task in root.iter(_tag("receiveTask")):
        if task.get("instantiate") != "true":
            continue
        container = task.getparent()
        if container is None:
            continue
        task_id = task.get("id")
        incoming = [
            flow
            for flow in container.iterchildren(_tag("sequenceFlow"))
            if flow.get("targetRef") == task_id
        ]
        if not incoming:
            found.append(task)
    return found


def _as_message_start(task: etree._Element) -> None:
    message_ref = task.get("messageRef")
    task.tag = _tag("startEvent")
    for attribute in _RECEIVE_ONLY_ATTRIBUTES:
        task.attrib.pop(attribute, None)
    definition = etree.SubElement(task, _tag("messageEventDefinition"))
    if message_ref:
        definition.set("messageRef", message_ref)


def _global_task_process(task: etree._Element) -> etree._Element:
    task_id = task.get("id") or ""
    process = etree.Element(_tag("process"), nsmap=task.nsmap)
    process.set("id", task_id)
    process.set("isExecutable", "true")
    if task.get("name"):
        process.set("name", task.get("name") or "")
    process.sourceline = task.sourceline
    etree.SubElement(process, _tag("startEvent"), id=f"{task_id} [start]")
    inline = copy.deepcopy(task)
    inline.tag = _tag(GLOBAL_TASKS[task.tag])
    script_language = inline.attrib.pop("scriptLanguage", None)
    if script_language is not None:
        inline.set("scriptFormat", script_language)
    process.append(inline)
    etree.SubElement(process, _tag("endEvent"), id=f"{task_id} [end]")
    for index, (source, target) in enumerate(
        [(f"{task_id} [start]", task_id), (task_id, f"{task_id} [end]")]
    ):
        etree.SubElement(
            process,
            _tag("sequenceFlow"),
            id=f"{task_id} [flow {index}]",
            sourceRef=source,
            targetRef=target,
        )
    return process


_ZEEBE_CALLS = (
    (_tag("callActivity"), "calledElement", "processId", "calledElement"),
    (_tag("businessRuleTask"), "calledDecision", "decisionId", f"{{{CAMUNDA_NS}}}decisionRef"),
)


def _zeebe_calls(root: etree._Element) -> list[tuple[etree._Element, str, str]]:
    """(element, attribute the library reads, value) for each Camunda 8 call of a process or
    decision that the element does not already name the library's way."""
    found = []
    for tag, extension, name, attribute in _ZEEBE_CALLS:
        for element in root.iter(tag):
            called = element.find(f"{{{BPMN_NS}}}extensionElements/{{{ZEEBE_NS}}}{extension}")
            value = (called.get(name) or "").strip() if called is not None else ""
            if value and not element.get(attribute):
                found.append((element, attribute, value))
    return found


def library_form(root: etree._Element) -> etree._Element:
    """A copy of document `root` with the constructs above rewritten (or `root` itself when
    it holds none)."""
    receive_tasks = instantiating_receive_tasks(root)
    global_tasks = [e for e in root if e.tag in GLOBAL_TASKS]
    if not receive_tasks and not global_tasks and not _zeebe_calls(root):
        return root
    rewritten = copy.deepcopy(root)
    for element, attribute, value in _zeebe_calls(rewritten):
        element.set(attribute, value)
    for task in instantiating_receive_tasks(rewritten):
        _as_message_start(task)
    for task in [e for e in rewritten if e.tag in GLOBAL_TASKS]:
        rewritten.replace(task, _global_task_process(task))
    return rewritten
