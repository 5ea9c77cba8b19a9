"""Per-process caches of what a definition holds. A definition never changes after deployment,
so its primary key is a safe cache key, and its large JSON columns are read only on a miss."""

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from engine.bpmn.expressions import is_expression
from engine.bpmn.serialization import spec_from_json
from engine.bpmn.traits import spec_traits
from engine.bpmn.types import ProcessSpec
from processes.models import ProcessDefinition

Specs = tuple[ProcessSpec, dict[str, ProcessSpec]]


@lru_cache(maxsize=512)
def definition_specs(definition_id: int) -> Specs:
    dialect, spec = ProcessDefinition.objects.values_list("dialect", "spec").get(pk=definition_id)
    return spec_from_json(dialect, spec)


@lru_cache(maxsize=512)
def definition_elements(definition_id: int) -> dict[str, dict[str, Any]]:
    elements: dict[str, dict[str, Any]] = ProcessDefinition.objects.values_list(
        "elements", flat=True
    ).get(pk=definition_id)
    return elements


@lru_cache(maxsize=512)
def definition_key(definition_id: int) -> str:
    """The process key (BPMN process id) of a definition."""
    key: str = ProcessDefinition.objects.values_list("key", flat=True).get(pk=definition_id)
    return key


@dataclass(frozen=True)
class DefinitionTraits:
    """What rows an instance of the definition can have besides its state and human tasks,
    and whether writing them can fail a task (see instance_store.persist_workflow)."""

    timers: bool
    messages_or_signals: bool
    connector_tasks: bool
    writes_may_fail: bool


def _has_expression(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_expression(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_has_expression(item) for item in value)
    return isinstance(value, str) and is_expression(value)


def _may_fail_on_write(info: dict[str, Any]) -> bool:
    """A due date (an expression or a text that may not be ISO 8601) or any expression in what
    the human task takes from the diagram can fail the task while its row is written. Any
    expression, not a list of the fields human_task_projection evaluates: a field added there
    is covered here without a second list to keep in step (too many only costs a savepoint)."""
    return bool(info.get("due_date")) or _has_expression(info)


@lru_cache(maxsize=512)
def definition_traits(definition_id: int) -> DefinitionTraits:
    spec, subprocess_specs = definition_specs(definition_id)
    traits = spec_traits([spec, *subprocess_specs.values()])
    human_tasks = definition_elements(definition_id).values()
    return DefinitionTraits(
        timers=traits.timers,
        messages_or_signals=traits.messages_or_signals,
        connector_tasks=traits.connector_tasks,
        writes_may_fail=traits.connector_tasks or any(map(_may_fail_on_write, human_tasks)),
    )
