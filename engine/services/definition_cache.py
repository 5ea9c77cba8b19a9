"""Per-process caches of what a definition holds. A definition never changes after deployment,
so its primary key is a safe cache key, and its large JSON columns are read only on a miss."""

from functools import lru_cache
from typing import Any

from engine.bpmn.serialization import spec_from_json
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
