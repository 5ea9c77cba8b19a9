"""Service tasks that call a connector, read from all three dialects into one shape.

A connector task parks itself (STARTED) when it runs; the engine then writes a ServiceJob and
a worker makes the call. Parameters are stored as small JSON trees:
`{"expr": "python expression"}`, `{"value": literal}`, `{"map": {...}}` or `{"list": [...]}`.
"""

import ast
import copy
import json
import re
from collections.abc import Iterator
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.parser.TaskParser import TaskParser
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.serializer.helpers.spec import TaskSpecConverter
from SpiffWorkflow.bpmn.specs.mixins.bpmn_spec_mixin import BpmnSpecMixin
from SpiffWorkflow.bpmn.specs.mixins.service_task import ServiceTask as ServiceTaskMixin
from SpiffWorkflow.spiff.parser.task_spec import SpiffTaskParser
from SpiffWorkflow.spiff.serializer.task_spec import SpiffBpmnTaskConverter
from SpiffWorkflow.spiff.specs.spiff_task import SpiffBpmnTask
from SpiffWorkflow.task import Task

from .expressions import (
    ExpressionFailed,
    ExpressionNotSupported,
    compile_expression,
    is_wrapped,
)
from .scripting import evaluate_expression
from .xml import BPMN_NS, CAMUNDA_NS, ZEEBE_NS

ParamSpec = dict[str, Any]
_RETRY_CYCLE = re.compile(r"^R(\d+)/(P.+)$")


class ConnectorTaskMixin:
    """Attributes shared by every connector task, whichever dialect it came from."""

    # Set by the TaskSpec classes this is mixed into.
    name: str
    bpmn_id: str

    def __init__(
        self,
        wf_spec: Any,
        bpmn_id: str,
        *,
        connector: str,
        connector_params: dict[str, ParamSpec],
        result_mappings: dict[str, ParamSpec] | None = None,
        result_variable: str | None = None,
        retry: dict[str, Any] | None = None,
        task_headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(wf_spec, bpmn_id, **kwargs)  # type: ignore[call-arg]
        self.connector = connector
        # Not `parameters`/`outputs`: TaskSpec already uses `outputs` for its outgoing flows.
        self.connector_params = connector_params
        self.result_mappings = result_mappings or {}
        self.result_variable = result_variable or ("" if result_mappings else f"{bpmn_id}_result")
        self.retry = retry or {}
        # Camunda 8 `zeebe:taskHeaders`: static texts the connector or worker gets with the job.
        self.task_headers: dict[str, str] = task_headers or {}

    def _run_hook(self, my_task: Task) -> None:
        # Returning None leaves the task STARTED: the engine writes a job for it, and the
        # worker's result completes it later.
        return None


class ConnectorTask(ConnectorTaskMixin, ServiceTaskMixin, BpmnSpecMixin):
    """A connector task from a Camunda 7 or Camunda 8 diagram."""


class SpiffConnectorTask(ConnectorTaskMixin, ServiceTaskMixin, SpiffBpmnTask):
    """A connector task from a SpiffArena diagram (keeps its pre- and post-scripts)."""


def may_be_external(spec: Any) -> bool:
    """Whether a service task whose connector is not registered runs as an external task:
    a Camunda 7 topic or a Camunda 8 job type names work for outside workers (as Camunda's
    external tasks and job workers do); a SpiffArena operator names a connector, nothing else."""
    return isinstance(spec, ConnectorTask)


def _connector_attributes(spec: ConnectorTaskMixin) -> dict[str, Any]:
    attributes = {
        "connector": spec.connector,
        "connector_params": spec.connector_params,
        "result_mappings": spec.result_mappings,
        "result_variable": spec.result_variable,
        "retry": spec.retry,
    }
    if getattr(spec, "task_headers", None):  # specs without headers are stored as before
        attributes["task_headers"] = spec.task_headers
    return attributes


class ConnectorTaskConverter(TaskSpecConverter):
    def to_dict(self, spec: ConnectorTask) -> dict[str, Any]:
        dct: dict[str, Any] = self.get_default_attributes(spec)
        dct.update(_connector_attributes(spec))
        return dct

    def from_dict(self, dct: dict[str, Any]) -> ConnectorTask:
        spec: ConnectorTask = self.task_spec_from_dict(dct)
        return spec


class SpiffConnectorTaskConverter(SpiffBpmnTaskConverter):
    def to_dict(self, spec: SpiffConnectorTask) -> dict[str, Any]:
        dct: dict[str, Any] = super().to_dict(spec)
        dct.update(_connector_attributes(spec))
        return dct


# -- reading the dialects ---------------------------------------------------------------------


def _camunda_value(node: etree._Element) -> ParamSpec:
    """Camunda semantics: `${...}` is an expression (Python here), plain text is a literal."""
    for child in node:
        if not isinstance(child.tag, str):
            continue
        if child.tag == f"{{{CAMUNDA_NS}}}map":
            return {
                "map": {
                    entry.get("key") or "": _camunda_value(entry)
                    for entry in child.findall(f"{{{CAMUNDA_NS}}}entry")
                }
            }
        if child.tag == f"{{{CAMUNDA_NS}}}list":
            return {"list": [_camunda_value(v) for v in child.findall(f"{{{CAMUNDA_NS}}}value")]}
        if child.tag == f"{{{CAMUNDA_NS}}}script":
            return {"expr": (child.text or "").strip()}
    text = (node.text or "").strip()
    return {"expr": text} if is_wrapped(text) else {"value": text}


# Camunda input parameters of other elements (message and signal throws) read the same way.
camunda_param_tree = _camunda_value


def _zeebe_value(source: str) -> ParamSpec:
    """Camunda 8 marks expressions (FEEL) with a leading `=`."""
    if source.strip().startswith("="):
        return {"expr": source.strip()}
    return {"value": source}


def retry_from_cycle(cycle: str) -> dict[str, Any]:
    from engine import clock

    from .schedules import duration_after

    match = _RETRY_CYCLE.match(cycle.strip())
    if not match:
        raise ValueError(f"failedJobRetryTimeCycle {cycle!r} is not of the form R5/PT30S")
    interval = duration_after(match.group(2), clock.now()).total_seconds()
    return {"max_attempts": int(match.group(1)), "interval_seconds": interval}


class CamundaConnectorTaskParser(TaskParser):
    """Camunda 7 `camunda:type="external"` with `camunda:topic`, or Camunda 8
    `zeebe:taskDefinition`."""

    def _extension(self, namespace: str, path: str) -> list[etree._Element]:
        found: list[etree._Element] = self.node.findall(
            f"{{{BPMN_NS}}}extensionElements/" + path.format(ns=f"{{{namespace}}}")
        )
        return found

    def _fail(self, message: str) -> ValidationException:
        return ValidationException(message, node=self.node, file_name=self.filename)

    def create_task(self) -> ConnectorTask:
        definition = self._extension(ZEEBE_NS, "{ns}taskDefinition")
        if definition:
            return self._zeebe_task(definition[0])
        topic = self.node.get(f"{{{CAMUNDA_NS}}}topic")
        if self.node.get(f"{{{CAMUNDA_NS}}}type") != "external" or not topic:
            raise self._fail(self._not_external_message())
        inputs = {
            p.get("name") or "": _camunda_value(p)
            for p in self._extension(CAMUNDA_NS, "{ns}inputOutput/{ns}inputParameter")
        }
        outputs = {
            p.get("name") or "": _camunda_value(p)
            for p in self._extension(CAMUNDA_NS, "{ns}inputOutput/{ns}outputParameter")
        }
        retry: dict[str, Any] = {}
        cycle = self._extension(CAMUNDA_NS, "{ns}failedJobRetryTimeCycle")
        if cycle and (cycle[0].text or "").strip():
            try:
                retry = retry_from_cycle(cycle[0].text or "")
            except Exception as exc:  # noqa: BLE001 -- any malformed cycle is refused at deploy
                raise self._fail(str(exc)) from None
        return ConnectorTask(
            self.spec,
            self.bpmn_id,
            connector=topic,
            connector_params=inputs,
            result_mappings=outputs,
            retry=retry,
            **self.bpmn_attributes,
        )

    def _not_external_message(self) -> str:
        java = [
            f"camunda:{name}"
            for name in ("class", "delegateExpression", "expression")
            if self.node.get(f"{{{CAMUNDA_NS}}}{name}") is not None
        ]
        ask = (
            'make it an external task: camunda:type="external" with a camunda:topic, either '
            "the name of a Baton connector, or any topic that your own workers fetch and "
            "complete through the REST API (/api/v1/external-tasks/fetch-and-lock/)."
        )
        if java:
            return f"Baton runs no Java delegates ({', '.join(java)}): {ask}"
        return f"This service task says nothing Baton can call: {ask}"

    def _zeebe_task(self, definition: etree._Element) -> ConnectorTask:
        kind = definition.get("type")
        if not kind:
            raise self._fail("zeebe:taskDefinition needs a type naming the connector to call.")
        inputs = {
            m.get("target") or "": _zeebe_value(m.get("source") or "")
            for m in self._extension(ZEEBE_NS, "{ns}ioMapping/{ns}input")
        }
        outputs = {
            m.get("target") or "": _zeebe_value(m.get("source") or "")
            for m in self._extension(ZEEBE_NS, "{ns}ioMapping/{ns}output")
        }
        retries = definition.get("retries")
        retry = {"max_attempts": int(retries)} if retries and retries.isdigit() else {}
        headers = {
            header.get("key") or "": header.get("value") or ""
            for header in self._extension(ZEEBE_NS, "{ns}taskHeaders/{ns}header")
            if header.get("key")
        }
        return ConnectorTask(
            self.spec,
            self.bpmn_id,
            connector=kind,
            connector_params=inputs,
            result_mappings=outputs,
            retry=retry,
            task_headers=headers,
            **self.bpmn_attributes,
        )


class SpiffConnectorTaskParser(SpiffTaskParser):
    """SpiffArena `spiffworkflow:serviceTaskOperator` with its parameters and result variable."""

    def create_task(self) -> SpiffConnectorTask:
        extensions = self.parse_extensions()
        operator = extensions.get("serviceTaskOperator")
        if operator is None:
            raise ValidationException(
                "A service task needs a spiffworkflow:serviceTaskOperator naming the connector.",
                node=self.node,
                file_name=self.filename,
            )
        retry: dict[str, Any] = {}
        if operator.get("retries") is not None:
            retry["max_attempts"] = int(operator["retries"])
        if operator.get("retryBackoffBase") is not None:
            retry["backoff_base_seconds"] = float(operator["retryBackoffBase"])
        return SpiffConnectorTask(
            self.spec,
            self.bpmn_id,
            connector=operator["name"],
            connector_params={k: {"expr": v["value"]} for k, v in operator["parameters"].items()},
            result_variable=operator.get("resultVariable") or None,
            retry=retry,
            prescript=extensions.get("preScript"),
            postscript=extensions.get("postScript"),
            **self.bpmn_attributes,
        )


def evaluate_param_tree(task: Task, tree: ParamSpec, extra: dict[str, Any] | None = None) -> Any:
    """The value of a parameter tree, its expressions evaluated over the task's data."""
    if "expr" in tree:
        return evaluate_expression(task, tree["expr"], extra)
    if "map" in tree:
        return {key: evaluate_param_tree(task, sub, extra) for key, sub in tree["map"].items()}
    if "list" in tree:
        return [evaluate_param_tree(task, sub, extra) for sub in tree["list"]]
    return tree.get("value")


ParamPath = list[str | int]


_NOT_CONSTANT = object()


def _constant(expression: str) -> Any:
    """The value of an expression made of constants only (`"Bearer x"`, `{"a": ["b"]}`,
    `${{'a': 'b'}}`), or _NOT_CONSTANT. literal_eval runs nothing: it only reads literals; a
    Camunda expression counts when it reads no variable (its value is the diagram's text)."""
    try:
        compiled = compile_expression(expression)
    except ExpressionNotSupported:
        return _NOT_CONSTANT
    if compiled is not None:
        if compiled.reads_variables:
            return _NOT_CONSTANT
        try:
            return compiled.evaluate({})
        except ExpressionFailed:
            return _NOT_CONSTANT
    try:
        return ast.literal_eval(expression.strip())
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _NOT_CONSTANT


def _constant_leaves(value: Any, path: ParamPath) -> Iterator[tuple[ParamPath, bool, str]]:
    if isinstance(value, str):
        yield path, True, value
    elif isinstance(value, dict):
        for key, item in value.items():
            # Stored as JSON, where a key 1 or True is the text "1" or "true".
            name = key if isinstance(key, str) else json.dumps(key, default=str)
            yield from _constant_leaves(item, [*path, name])
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _constant_leaves(item, [*path, index])


def param_leaves(tree: ParamSpec, path: ParamPath) -> Iterator[tuple[ParamPath, bool, str]]:
    """(path, literal?, text) for every text leaf of a parameter tree: a literal's text, or
    an expression's source. The texts inside an expression made of constants only are
    literal text of the diagram too (SpiffArena writes every parameter as an expression);
    any other expression is not literal."""
    if "map" in tree:
        for key, sub in tree["map"].items():
            yield from param_leaves(sub, [*path, key])
    elif "list" in tree:
        for index, sub in enumerate(tree["list"]):
            yield from param_leaves(sub, [*path, index])
    elif "expr" in tree:
        constant = _constant(tree["expr"])
        if constant is _NOT_CONSTANT:
            yield path, False, tree["expr"]
        else:
            yield from _constant_leaves(constant, path)
    elif isinstance(tree.get("value"), str):
        yield path, True, tree["value"]


def iter_param_expressions(tree: ParamSpec) -> list[str]:
    """Every Python expression inside a parameter tree (for deploy-time syntax checks)."""
    if "expr" in tree:
        return [tree["expr"]]
    if "map" in tree:
        return [e for sub in tree["map"].values() for e in iter_param_expressions(sub)]
    if "list" in tree:
        return [e for sub in tree["list"] for e in iter_param_expressions(sub)]
    return []


def spiffarena_result(connector: str, result: Any) -> Any:
    """What SpiffArena's connector proxy hands a diagram for its `http/*` commands: the
    response body itself (parsed JSON), or `{"raw_response": text}` when it is not JSON,
    where Baton's own shape is `{status, headers, body}`."""
    if not connector.startswith("http/") or not isinstance(result, dict) or "body" not in result:
        return result
    headers = result.get("headers")
    if not isinstance(headers, dict):
        headers = {}
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    if "json" in str(content_type) or not isinstance(result["body"], str):
        return result["body"]
    return {"raw_response": result["body"]}


def apply_connector_result(task: Task, result: Any) -> None:
    """Put a connector's result into the task's data: whole, or through result mappings.
    A SpiffArena diagram's `http/*` commands get SpiffArena's shape (`spiffarena_result`)."""
    spec: ConnectorTaskMixin = task.task_spec
    if isinstance(spec, SpiffConnectorTask):
        result = spiffarena_result(spec.connector, result)
    if spec.result_variable:
        task.data[spec.result_variable] = copy.deepcopy(result)
    for name, tree in spec.result_mappings.items():
        task.data[name] = evaluate_param_tree(task, tree, {"result": copy.deepcopy(result)})


def apply_external_variables(task: Task, variables: dict[str, Any]) -> None:
    """Put the variables an external worker completed its task with into the task's data,
    then its output mappings (evaluated over that data, the variables also as `result`)."""
    spec: ConnectorTaskMixin = task.task_spec
    task.data.update(copy.deepcopy(variables))
    for name, tree in spec.result_mappings.items():
        task.data[name] = evaluate_param_tree(task, tree, {"result": copy.deepcopy(variables)})
