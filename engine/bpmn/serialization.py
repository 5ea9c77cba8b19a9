"""Turning specs and workflows into JSON for Postgres, and back.

A definition's spec is serialized once, at deploy time. An instance's state is the workflow
serialized WITHOUT its spec; loading puts the definition's (cached) spec objects back in.
"""

import base64
import datetime
import decimal
from functools import cache
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.workflow import TaskConverter
from SpiffWorkflow.bpmn.serializer.helpers.registry import DefaultRegistry
from SpiffWorkflow.bpmn.serializer.migration.version_migration import MIGRATIONS
from SpiffWorkflow.bpmn.serializer.workflow import VERSION as SERIALIZER_VERSION
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.task import Task

from .call_activities import CALL_ACTIVITY_CONVERTERS
from .compensating import COMPENSATION_CONVERTERS
from .connector_tasks import (
    ConnectorTask,
    ConnectorTaskConverter,
    SpiffConnectorTask,
    SpiffConnectorTaskConverter,
)
from .data_stores import DATA_STORE_CONVERTERS
from .decisions import DECISION_CONVERTERS
from .depth import JOIN_CONVERTERS
from .end_events import END_EVENT_CONVERTERS
from .event_definitions import EVENT_DEFINITION_CONVERTERS
from .event_subprocesses import EVENT_SUBPROCESS_CONVERTERS
from .feel_scripts import FEEL_SCRIPT_CONVERTERS
from .io_mappings import IO_MAPPING_CONVERTERS
from .multi_instance import MULTI_INSTANCE_CONVERTERS
from .none_tasks import NONE_TASK_CONVERTERS, SPIFF_NONE_TASK_CONVERTERS
from .outgoing_flows import OUTGOING_FLOW_CONVERTERS
from .process_specs import PROCESS_SPEC_CONVERTERS
from .scripting import build_script_engine
from .stored_tasks import compact
from .timers import TIMER_CONVERTERS
from .workflow import WORKFLOW_CONVERTERS, BatonWorkflow

VERSION_KEY = BpmnWorkflowSerializer.VERSION_KEY
SPEC_KEYS = ("spec", "subprocess_specs")


class DataConvertingTaskConverter(TaskConverter):
    """SpiffWorkflow 3.2 stores a task's data (and the delta against its parent) without the
    registry's conversions, so a datetime or Decimal that a script leaves in task data could
    not be written as JSON; restoring already converts. Records are stored compactly
    (engine.bpmn.stored_tasks: the workflow converters expand them before restoring)."""

    def to_dict(self, task: Task) -> dict[str, Any]:
        dct: dict[str, Any] = super().to_dict(task)
        if dct.get("data"):
            dct["data"] = self.registry.convert(self.registry.clean(dct["data"]))
        delta = dct.get("delta")
        if delta and delta.get("updates"):
            delta["updates"] = self.registry.convert(self.registry.clean(delta["updates"]))
        return compact(dct)


def data_registry() -> DefaultRegistry:
    """SpiffWorkflow's registry (datetime, timedelta, UUID) plus the other values scripts may
    leave in task data: dates, times, decimals, bytes and sets."""
    registry = DefaultRegistry()
    registry.register(
        datetime.date,
        lambda v: {"value": v.isoformat()},
        lambda v: datetime.date.fromisoformat(v["value"]),
    )
    registry.register(
        datetime.time,
        lambda v: {"value": v.isoformat()},
        lambda v: datetime.time.fromisoformat(v["value"]),
    )
    registry.register(
        decimal.Decimal, lambda v: {"value": str(v)}, lambda v: decimal.Decimal(v["value"])
    )
    registry.register(
        bytes,
        lambda v: {"value": base64.b64encode(v).decode("ascii")},
        lambda v: base64.b64decode(v["value"]),
    )
    registry.register(
        set,
        lambda v: {"items": registry.convert(list(v))},
        lambda v: set(registry.restore(v["items"])),
    )
    registry.register(
        frozenset,
        lambda v: {"items": registry.convert(list(v))},
        lambda v: frozenset(registry.restore(v["items"])),
    )
    return registry


@cache
def serializer_for(dialect: str) -> BpmnWorkflowSerializer:
    if dialect == "spiff":
        config = {**SPIFF_CONFIG, SpiffConnectorTask: SpiffConnectorTaskConverter}
        config.update(SPIFF_NONE_TASK_CONVERTERS)  # stored under the library's type name
    else:
        config = {**CAMUNDA_CONFIG, ConnectorTask: ConnectorTaskConverter}
        config.update(NONE_TASK_CONVERTERS)
        config.update(CALL_ACTIVITY_CONVERTERS)  # stored as the library's CallActivity
        config.update(DECISION_CONVERTERS)  # Camunda 8 zeebe:calledDecision resultVariable
        config.update(FEEL_SCRIPT_CONVERTERS)  # Camunda 8 zeebe:script
        config.update(IO_MAPPING_CONVERTERS)  # Camunda 8 zeebe:ioMapping
    config[Task] = DataConvertingTaskConverter
    config.update(EVENT_DEFINITION_CONVERTERS)
    config.update(TIMER_CONVERTERS)  # after the library's: stored timers restore as Baton's
    config.update(WORKFLOW_CONVERTERS)  # the same for the workflow itself
    config.update(PROCESS_SPEC_CONVERTERS)  # and for process specs
    config.update(JOIN_CONVERTERS)  # and for the joins, which must work at any depth
    config.update(MULTI_INSTANCE_CONVERTERS)
    config.update(END_EVENT_CONVERTERS)  # stored end events restore as Baton's
    config.update(OUTGOING_FLOW_CONVERTERS)  # the splits of activities' outgoing flows
    config.update(EVENT_SUBPROCESS_CONVERTERS)  # event subprocess starts, conditions
    config.update(DATA_STORE_CONVERTERS)  # SpiffArena's data stores
    config.update(COMPENSATION_CONVERTERS)  # compensation events; throw events restore as Baton's
    return BpmnWorkflowSerializer(
        BpmnWorkflowSerializer.configure(config, registry=data_registry())
    )


def spec_to_json(
    dialect: str, spec: BpmnProcessSpec, subprocess_specs: dict[str, BpmnProcessSpec]
) -> dict[str, Any]:
    registry = serializer_for(dialect).registry
    return {
        "spec": registry.convert(spec),
        "subprocess_specs": {name: registry.convert(sub) for name, sub in subprocess_specs.items()},
        VERSION_KEY: SERIALIZER_VERSION,
    }


def unsupported_elements(
    dialect: str, spec: BpmnProcessSpec, subprocess_specs: dict[str, BpmnProcessSpec]
) -> list[tuple[str, str]]:
    """(element id, element type) of each task spec the serializer cannot store."""
    known = serializer_for(dialect).registry.typenames
    found = []
    for process in [spec, *subprocess_specs.values()]:
        for task_spec in process.task_specs.values():
            if type(task_spec) not in known:
                found.append((task_spec.bpmn_id or task_spec.name, type(task_spec).__name__))
    return found


def spec_from_json(
    dialect: str, data: dict[str, Any]
) -> tuple[BpmnProcessSpec, dict[str, BpmnProcessSpec]]:
    registry = serializer_for(dialect).registry
    spec = registry.restore(data["spec"])
    subprocess_specs = {
        name: registry.restore(sub) for name, sub in data.get("subprocess_specs", {}).items()
    }
    return spec, subprocess_specs


def new_workflow(
    spec: BpmnProcessSpec, subprocess_specs: dict[str, BpmnProcessSpec]
) -> BatonWorkflow:
    return BatonWorkflow(spec, subprocess_specs, script_engine=build_script_engine())


def workflow_to_state(dialect: str, workflow: BpmnWorkflow) -> dict[str, Any]:
    state: dict[str, Any] = serializer_for(dialect).to_dict(workflow)
    for key in SPEC_KEYS:
        state.pop(key, None)
    state[VERSION_KEY] = SERIALIZER_VERSION
    return state


def _in_tree_order(workflow_dict: dict[str, Any]) -> dict[str, Any]:
    """Return the workflow dict with its tasks ordered parents-first.

    Tasks store their data as a delta against their parent, so a parent must be restored
    before its children. Postgres JSONB does not keep key order, hence the re-ordering.
    """
    tasks = workflow_dict["tasks"]
    ordered: dict[str, Any] = {}
    pending = [workflow_dict["root"]]
    while pending:
        task_id = pending.pop()
        task = tasks.get(task_id)
        if task is None or task_id in ordered:
            continue
        ordered[task_id] = task
        pending.extend(reversed(task["children"]))
    for task_id, task in tasks.items():  # anything unreachable keeps its place at the end
        ordered.setdefault(task_id, task)
    return {**workflow_dict, "tasks": ordered}


def workflow_from_state(
    dialect: str,
    state: dict[str, Any],
    spec: BpmnProcessSpec,
    subprocess_specs: dict[str, BpmnProcessSpec],
) -> BatonWorkflow:
    data = _in_tree_order(state)
    data["subprocesses"] = {
        key: _in_tree_order(sub) for key, sub in state.get("subprocesses", {}).items()
    }
    version = data.pop(VERSION_KEY, SERIALIZER_VERSION)
    if version in MIGRATIONS:
        raise ValueError(f"Instance state of serializer version {version} needs a migration.")
    # The registry passes non-dict values through untouched, so the cached spec objects are
    # used as they are instead of being rebuilt for every load.
    data["spec"] = spec
    data["subprocess_specs"] = subprocess_specs
    workflow: BatonWorkflow = serializer_for(dialect).from_dict(data)
    workflow.script_engine = build_script_engine()
    return workflow
