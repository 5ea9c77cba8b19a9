"""Camunda 8 input and output mappings (`zeebe:ioMapping`) on call activities, user tasks,
subprocesses, script tasks, business rule tasks and events, with Camunda 8's semantics:

- `<zeebe:input source="= order.total" target="amount"/>`: when the element is entered, each
  source (a FEEL expression after `=`, else a literal text) is evaluated over the variables
  and set as a variable local to the element: the element (its form, script, called or
  embedded process) sees it, the process does not after the element.
- `<zeebe:output source="= approved" target="decision"/>`: when the element completes, each
  source is evaluated over the element's variables and set in the enclosing scope; with
  output mappings, nothing else the element made leaves it (as Camunda 8 keeps a job's or a
  form's variables local when outputs are mapped).
- Without output mappings, everything the element made is merged into the enclosing scope,
  except the input-mapped variables, which were local to it (a variable the process had under
  such a name gets its value back).

Targets may be paths (`order.id`). Service tasks read their own mappings as connector
parameters and result mappings (engine.bpmn.connector_tasks), and are left alone here.

The mappings run through the library's own data associations hooks (each task spec calls
`get` on its input associations when it is entered and `set` on its output associations when
it completes), so every element type takes them without a task spec class of its own.
"""

import copy
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.serializer.helpers.bpmn_converter import BpmnConverter
from SpiffWorkflow.task import Task

from .expressions import is_feel
from .xml import BPMN_NS, ZEEBE_NS

# The element data kept while an element with mappings runs: its variables before the inputs.
BEFORE = "baton_io_before"
# No variable's name: the library drops a data input association's `bpmn_id` from the data.
_NAME = "zeebe:ioMapping [inputs]"

Mapping = tuple[str, str]  # (source, target)

# The elements whose zeebe:ioMapping is read here (service tasks read their own).
MAPPED_TAGS = (
    "userTask",
    "manualTask",
    "task",
    "scriptTask",
    "businessRuleTask",
    "callActivity",
    "subProcess",
    "receiveTask",
    "startEvent",
    "intermediateCatchEvent",
    "intermediateThrowEvent",
    "boundaryEvent",
    "endEvent",
)


def _value(task: Task, source: str, scope: dict[str, Any]) -> Any:
    if not is_feel(source):
        return source
    return task.workflow.script_engine.environment.evaluate(source, scope)


def _set_path(data: dict[str, Any], target: str, value: Any) -> None:
    *parents, last = target.split(".")
    holder = data
    for name in parents:
        if not isinstance(holder.get(name), dict):
            holder[name] = {}
        holder = holder[name]
    holder[last] = value


class ZeebeInputs:
    """The input mappings of an element (a data input association of its task spec)."""

    def __init__(self, mappings: list[Mapping], bpmn_id: str = _NAME) -> None:
        self.bpmn_id = bpmn_id
        self.mappings = [tuple(m) for m in mappings]

    def get(self, my_task: Task) -> None:
        if BEFORE in my_task.internal_data:
            return  # entered already (the hook runs again while the element waits)
        my_task.internal_data[BEFORE] = copy.deepcopy(my_task.data)
        scope = dict(my_task.data)
        for source, target in self.mappings:
            value = copy.deepcopy(_value(my_task, source, scope))
            _set_path(my_task.data, target, value)
            scope[target.split(".")[0]] = my_task.data[target.split(".")[0]]


class ZeebeOutputs:
    """The output mappings of an element (a data output association of its task spec), and
    the scope rule above; `inputs` names the input-mapped variables."""

    def __init__(self, mappings: list[Mapping], inputs: list[str], bpmn_id: str = _NAME) -> None:
        self.bpmn_id = bpmn_id
        self.mappings = [tuple(m) for m in mappings]
        self.inputs = list(inputs)

    def set(self, my_task: Task) -> None:
        before: dict[str, Any] = my_task.internal_data.pop(BEFORE, None) or {}
        if self.mappings:
            scope = dict(my_task.data)
            result = before
            for source, target in self.mappings:
                _set_path(result, target, copy.deepcopy(_value(my_task, source, scope)))
            my_task.data = result
            return
        for name in self.inputs:
            if name in before:
                my_task.data[name] = before[name]
            else:
                my_task.data.pop(name, None)


class ZeebeInputsConverter(BpmnConverter):
    def to_dict(self, spec: ZeebeInputs) -> dict[str, Any]:
        return {"bpmn_id": spec.bpmn_id, "mappings": [list(m) for m in spec.mappings]}

    def from_dict(self, dct: dict[str, Any]) -> ZeebeInputs:
        return ZeebeInputs(**dct)


class ZeebeOutputsConverter(BpmnConverter):
    def to_dict(self, spec: ZeebeOutputs) -> dict[str, Any]:
        return {
            "bpmn_id": spec.bpmn_id,
            "mappings": [list(m) for m in spec.mappings],
            "inputs": spec.inputs,
        }

    def from_dict(self, dct: dict[str, Any]) -> ZeebeOutputs:
        return ZeebeOutputs(**dct)


IO_MAPPING_CONVERTERS = {ZeebeInputs: ZeebeInputsConverter, ZeebeOutputs: ZeebeOutputsConverter}


def _mappings(node: etree._Element, direction: str) -> list[Mapping]:
    path = f"{{{BPMN_NS}}}extensionElements/{{{ZEEBE_NS}}}ioMapping/{{{ZEEBE_NS}}}{direction}"
    return [
        ((m.get("source") or "").strip(), (m.get("target") or "").strip())
        for m in node.iterfind(path)
        if (m.get("target") or "").strip()
    ]


class IoMappingParserMixin:
    """In front of an element's parser: gives its task spec the element's zeebe:ioMapping.
    On a multi-instance activity the mappings apply to each instance, as in Camunda 8."""

    node: etree._Element
    task: Any

    def create_task(self) -> Any:
        task = super().create_task()  # type: ignore[misc]
        inputs, outputs = _mappings(self.node, "input"), _mappings(self.node, "output")
        if inputs or outputs:
            task.data_input_associations.append(ZeebeInputs(inputs))
            names = sorted({target.split(".")[0] for _, target in inputs})
            task.data_output_associations.append(ZeebeOutputs(outputs, names))
        return task

    def _copy_task_attrs(self, original: Any, loop_characteristics: Any = None) -> None:
        super()._copy_task_attrs(original, loop_characteristics)  # type: ignore[misc]
        for kind in ("data_input_associations", "data_output_associations"):
            on_loop = getattr(self.task, kind)
            ours = [a for a in on_loop if isinstance(a, ZeebeInputs | ZeebeOutputs)]
            setattr(self.task, kind, [a for a in on_loop if a not in ours])
            getattr(original, kind).extend(ours)


def io_mapping_overrides(
    parser_classes: dict[str, tuple[type, type]],
) -> dict[str, tuple[type, type]]:
    """The parsers of `parser_classes` for MAPPED_TAGS, each reading zeebe:ioMapping."""
    overrides = {}
    for tag in MAPPED_TAGS:
        full = f"{{{BPMN_NS}}}{tag}"
        if full in parser_classes:
            parser_class, spec_class = parser_classes[full]
            mixed = type(f"Io{parser_class.__name__}", (IoMappingParserMixin, parser_class), {})
            overrides[full] = (mixed, spec_class)
    return overrides
