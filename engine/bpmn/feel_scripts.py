"""Camunda 8 script tasks: `<zeebe:script expression="= a + b" resultVariable="sum"/>`.

The FEEL expression is evaluated over the task's variables (engine.bpmn.expressions) and its
value put into the result variable. A script task with a `bpmn:script` (Python, as Baton and
SpiffArena write them) runs as before.
"""

from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.serializer.default.task_spec import ScriptTaskConverter
from SpiffWorkflow.bpmn.specs.defaults import ScriptTask
from SpiffWorkflow.camunda.parser.task_spec import ScriptTaskParser
from SpiffWorkflow.task import Task

from .expressions import ExpressionNotSupported, compile_expression, is_feel
from .xml import BPMN_NS, ZEEBE_NS

_ZEEBE_SCRIPT = f"{{{BPMN_NS}}}extensionElements/{{{ZEEBE_NS}}}script"


class FeelScriptTask(ScriptTask):
    """A script task whose `script` is a FEEL expression whose value goes into
    `result_variable`."""

    def __init__(
        self, wf_spec: Any, bpmn_id: str, script: str, result_variable: str = "", **kwargs: Any
    ) -> None:
        super().__init__(wf_spec, bpmn_id, script, **kwargs)
        self.result_variable = result_variable

    def _execute(self, task: Task) -> bool:
        task.data[self.result_variable] = task.workflow.script_engine.evaluate(task, self.script)
        return True


class FeelScriptTaskParser(ScriptTaskParser):
    """The library's script task parser; a `zeebe:script` makes the task a FeelScriptTask."""

    node: etree._Element
    filename: str

    def create_task(self) -> ScriptTask:
        script = self.node.find(_ZEEBE_SCRIPT)
        if script is None:
            task: ScriptTask = super().create_task()
            return task
        expression = (script.get("expression") or "").strip()
        result_variable = (script.get("resultVariable") or "").strip()
        if not is_feel(expression) or not result_variable:
            raise ValidationException(
                "zeebe:script needs a FEEL expression (starting with =) and a resultVariable "
                'to put its value in, e.g. expression="= price * 2" resultVariable="total".',
                node=self.node,
                file_name=self.filename,
            )
        try:
            compile_expression(expression)
        except ExpressionNotSupported as exc:
            raise ValidationException(
                f"The zeebe:script expression cannot be read: {exc}",
                node=self.node,
                file_name=self.filename,
            ) from None
        return FeelScriptTask(
            self.spec,
            self.bpmn_id,
            script=expression,
            result_variable=result_variable,
            **self.bpmn_attributes,
        )


class FeelScriptTaskConverter(ScriptTaskConverter):
    def to_dict(self, spec: FeelScriptTask) -> dict[str, Any]:
        dct: dict[str, Any] = super().to_dict(spec)
        dct["result_variable"] = spec.result_variable
        return dct


FEEL_SCRIPT_CONVERTERS = {FeelScriptTask: FeelScriptTaskConverter}
