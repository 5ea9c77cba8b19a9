"""Camunda 7 call activities with variable mappings (`camunda:in`, `camunda:out`).

As in Camunda 7, only mapped variables cross the boundary, under their target names:
- `<camunda:in source="a" target="b"/>` gives the called process `b`, the caller's `a` (None
  when the caller has no `a`); `sourceExpression="${...}"` evaluates an expression over the
  caller's data (engine.bpmn.expressions); `variables="all"` passes every variable.
- `<camunda:out .../>` reads the same way, from the called process's data into the caller's.
With any `camunda:in` mapping, only those go in; without one, every variable goes in (Baton's
behaviour before mappings, kept). With any `camunda:out` mapping, the caller keeps its own data
and gets only those; with in-mappings but none out, nothing comes back (Camunda 7); with no
mapping at all, the called process's data comes back whole (the library's behaviour).
`businessKey` is accepted: the called process runs inside the caller's instance, whose
business key it shares.

The mappings are stored with the spec (under the library's `CallActivity` type name); a spec
stored without them loads as the library's call activity behaves.
"""

import copy
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.serializer.default.task_spec import SubWorkflowConverter
from SpiffWorkflow.bpmn.specs.defaults import CallActivity
from SpiffWorkflow.camunda.parser.task_spec import CallActivityParser
from SpiffWorkflow.task import Task

from .expressions import ExpressionNotSupported, compile_expression
from .xml import BPMN_NS, CAMUNDA_NS

LIBRARY_TYPENAME = "CallActivity"

# {"target": name, and one of "source": name, "expression": Python source, "all": True}
Mapping = dict[str, Any]


class CamundaCallActivity(CallActivity):
    def __init__(
        self,
        wf_spec: Any,
        bpmn_id: str,
        subworkflow_spec: str,
        in_mappings: list[Mapping] | None = None,
        out_mappings: list[Mapping] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(wf_spec, bpmn_id, subworkflow_spec, **kwargs)
        self.in_mappings: list[Mapping] = in_mappings or []
        self.out_mappings: list[Mapping] = out_mappings or []

    def copy_data(self, my_task: Task, subworkflow: Any) -> None:
        if not self.in_mappings:
            super().copy_data(my_task, subworkflow)
            return
        start = subworkflow.get_next_task(
            subworkflow.task_tree, skip_subprocesses=True, spec_name="Start"
        )
        start.set_data(**_mapped(self.in_mappings, my_task))

    def update_data(self, my_task: Task, subworkflow: Any) -> None:
        if not self.in_mappings and not self.out_mappings:
            super().update_data(my_task, subworkflow)
            return
        my_task.data.update(_mapped(self.out_mappings, subworkflow.last_task))


def _mapped(mappings: list[Mapping], source_task: Task) -> dict[str, Any]:
    """The variables `mappings` give, read from `source_task`'s data, in the diagram's order."""
    data = source_task.data
    result: dict[str, Any] = {}
    for mapping in mappings:
        if mapping.get("all"):
            result.update(copy.deepcopy(data))
        elif "expression" in mapping:
            engine = source_task.workflow.script_engine
            value = engine.evaluate(source_task, mapping["expression"])
            result[mapping["target"]] = copy.deepcopy(value)
        else:
            result[mapping["target"]] = copy.deepcopy(data.get(mapping["source"]))
    return result


class CamundaCallActivityParser(CallActivityParser):
    node: etree._Element
    filename: str

    def create_task(self) -> CamundaCallActivity:
        task: CamundaCallActivity = super().create_task()
        task.in_mappings = self._mappings("in")
        task.out_mappings = self._mappings("out")
        return task

    def _mappings(self, direction: str) -> list[Mapping]:
        mappings = []
        path = f"./{{{BPMN_NS}}}extensionElements/{{{CAMUNDA_NS}}}{direction}"
        for node in self.node.iterfind(path):
            mapping = self._mapping(node, direction)
            if mapping is not None:
                mappings.append(mapping)
        return mappings

    def _mapping(self, node: etree._Element, direction: str) -> Mapping | None:
        if node.get("variables") == "all":
            return {"all": True}
        target = node.get("target")
        source = node.get("source")
        expression = node.get("sourceExpression")
        if source is None and expression is None:
            if node.get("businessKey") is not None:
                return None  # the called process shares the caller's instance
            self._refuse(f'camunda:{direction} needs source, sourceExpression or variables="all".')
        if not target:
            self._refuse(f"camunda:{direction} needs a target (the variable to set).")
        if source is not None:
            return {"source": source, "target": target}
        try:
            compile_expression(expression or "")
            return {"expression": expression or "", "target": target}
        except ExpressionNotSupported as exc:
            self._refuse(f"camunda:{direction} sourceExpression cannot be read: {exc}")
            raise  # not reached

    def _refuse(self, message: str) -> None:
        raise ValidationException(message, node=self.node, file_name=self.filename)


class CamundaCallActivityConverter(SubWorkflowConverter):
    def __init__(self, target_class: type, registry: Any, typename: str | None = None) -> None:
        super().__init__(target_class, registry, typename or LIBRARY_TYPENAME)

    def to_dict(self, spec: CallActivity) -> dict[str, Any]:
        dct: dict[str, Any] = super().to_dict(spec)
        # Only when there are some: specs without mappings are stored as the library stores them.
        if getattr(spec, "in_mappings", None):
            dct["in_mappings"] = spec.in_mappings
        if getattr(spec, "out_mappings", None):
            dct["out_mappings"] = spec.out_mappings
        return dct


CALL_ACTIVITY_CONVERTERS = {CamundaCallActivity: CamundaCallActivityConverter}
