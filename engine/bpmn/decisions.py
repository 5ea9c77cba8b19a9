"""Business rule tasks whose decision result goes into one variable (Camunda 8).

`<zeebe:calledDecision decisionId="..." resultVariable="x"/>` puts the decision's result into
`x` instead of merging its outputs into the process's variables (the library's way, kept for
Camunda 7 and SpiffArena diagrams). The result has Camunda 8's shape:
- a decision table with one output gives that output's value per matched rule, with several
  outputs a context (dict) of the output names;
- a single-result hit policy (UNIQUE) gives the matched rule's value, or null when no rule
  matches; COLLECT gives the list of every matched rule's value (empty when none matches).
"""

from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.camunda.parser.task_spec import BusinessRuleTaskParser
from SpiffWorkflow.camunda.specs.business_rule_task import BusinessRuleTask
from SpiffWorkflow.dmn.serializer.task_spec import BaseBusinessRuleTaskConverter
from SpiffWorkflow.dmn.specs.model import HitPolicy
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.task import Task

from .xml import BPMN_NS, ZEEBE_NS

_CALLED_DECISION = f"{{{BPMN_NS}}}extensionElements/{{{ZEEBE_NS}}}calledDecision"


def decision_result(spec: BusinessRuleTask, task: Task) -> Any:
    """The decision's result for `task`'s data, shaped as Camunda 8 gives it."""
    engine = spec.dmnEngine
    outputs = engine.decision_table.outputs
    values = []
    for rule in engine.decide(task):
        out = rule.output_as_dict(task)
        values.append(next(iter(out.values()), None) if len(outputs) == 1 else dict(out))
    if engine.decision_table.hit_policy == HitPolicy.COLLECT.value:
        return values
    return values[0] if values else None


class ResultVariableBusinessRuleTask(BusinessRuleTask):
    """A business rule task that puts its decision's result into `result_variable`."""

    def __init__(self, wf_spec: Any, name: str, dmnEngine: Any, **kwargs: Any) -> None:
        result_variable = kwargs.pop("result_variable", "")
        super().__init__(wf_spec, name, dmnEngine, **kwargs)
        self.result_variable: str = result_variable

    def _run_hook(self, my_task: Task) -> bool:
        try:
            my_task.data[self.result_variable] = decision_result(self, my_task)
        except SpiffWorkflowException as exc:
            exc.add_note(f"Business Rule Task '{self.bpmn_name or self.bpmn_id}'.")
            raise
        except Exception as exc:
            error = WorkflowTaskException(str(exc), task=my_task, exception=exc)
            error.add_note(f"Business Rule Task '{self.bpmn_name or self.bpmn_id}'.")
            raise error from exc
        return True


class ResultVariableBusinessRuleTaskParser(BusinessRuleTaskParser):
    """Camunda 7's parser; a `zeebe:calledDecision resultVariable` makes the task a
    `ResultVariableBusinessRuleTask`."""

    node: etree._Element
    process_parser: Any

    def create_task(self) -> BusinessRuleTask:
        called = self.node.find(_CALLED_DECISION)
        result_variable = (called.get("resultVariable") or "").strip() if called is not None else ""
        if not result_variable:
            task: BusinessRuleTask = super().create_task()
            return task
        engine = self.process_parser.parser.get_engine(self.get_decision_ref(self.node), self.node)
        return ResultVariableBusinessRuleTask(
            self.spec,
            self.bpmn_id,
            dmnEngine=engine,
            result_variable=result_variable,
            **self.bpmn_attributes,
        )


class ResultVariableBusinessRuleTaskConverter(BaseBusinessRuleTaskConverter):
    def to_dict(self, spec: ResultVariableBusinessRuleTask) -> dict[str, Any]:
        dct: dict[str, Any] = super().to_dict(spec)
        dct["result_variable"] = spec.result_variable
        return dct


DECISION_CONVERTERS = {ResultVariableBusinessRuleTask: ResultVariableBusinessRuleTaskConverter}
