"""Read-only queries for operators: the admin's instance page (diagram markers, repair
choices), the incidents page and the status counts."""

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from django.db.models import Count

from engine.bpmn.elements import element_names
from engine.bpmn.inspection import element_markers, reset_targets, skippable_tasks
from engine.models import InstanceEvent, ProcessInstance, ServiceJob
from processes.models import ProcessDefinition

from .workflows import workflow_of


def instance_diagram(instance: ProcessInstance) -> dict[str, Any]:
    """The instance's diagram XML with its markers: per element how often it completed,
    where tokens wait, where it failed (failed tasks and dead jobs), and the activities whose
    compensation started (`compensated`)."""
    definition = ProcessDefinition.objects.only("bpmn_xml").get(pk=instance.definition_id)
    markers = element_markers(workflow_of(instance))
    dead = instance.jobs.filter(status=ServiceJob.Status.DEAD).values_list("element_id", flat=True)
    markers["failed"] = sorted(set(markers["failed"]) | set(dead))
    markers["active"] = [e for e in markers["active"] if e not in markers["failed"]]
    markers["compensated"] = compensated_elements(instance)
    return {"xml": definition.bpmn_xml, **markers}


def compensated_elements(instance: ProcessInstance) -> list[str]:
    """The activities whose compensation handler started, as the audit trail says (one
    `compensation_started` event each time; its element is the compensated activity). The
    workflow forgets a finished compensation, the trail does not."""
    started = instance.events.filter(type=InstanceEvent.Type.COMPENSATION_STARTED).exclude(
        element_id=""
    )
    return sorted(set(started.values_list("element_id", flat=True)))


@lru_cache(maxsize=512)
def element_names_of(definition_id: int) -> dict[str, str]:
    """The element names of a deployed definition, by id (read once per definition: a
    definition never changes once deployed, and list pages ask for every row)."""
    xml = ProcessDefinition.objects.values_list("bpmn_xml", flat=True).get(pk=definition_id)
    return element_names(xml)


def repair_choices(instance: ProcessInstance) -> dict[str, Any]:
    """What an operator can pick for the instance's repairs: the elements to reset to, the
    active tasks to skip, and the other versions of its process."""
    workflow = workflow_of(instance)
    versions = list(
        ProcessDefinition.objects.filter(key=instance.definition.key)
        .exclude(pk=instance.definition_id)
        .order_by("-version")
        .values_list("version", flat=True)
    )
    return {
        "reset_targets": reset_targets(workflow),
        "skippable": skippable_tasks(workflow),
        "versions": versions,
    }


@dataclass
class IncidentGroup:
    """Instances in incident that failed the same way (same process, element and error)."""

    definition: str
    element_id: str
    kind: str
    error: str
    instances: list[dict[str, Any]] = field(default_factory=list)
    # The element names of the group's definition, by id.
    names: dict[str, str] = field(default_factory=dict)


def incident_groups(limit: int = 2000) -> list[IncidentGroup]:
    """Instances in incident grouped by what failed, the largest group first."""
    groups: dict[tuple[str, str, str, str], IncidentGroup] = {}
    rows = (
        ProcessInstance.objects.filter(status=ProcessInstance.Status.INCIDENT)
        .order_by("-updated_at")
        .values(
            "id",
            "business_key",
            "incident",
            "updated_at",
            "definition_id",
            "definition__key",
            "definition__version",
        )[:limit]
    )
    for row in rows:
        incident = row["incident"] or {}
        error = str(incident.get("error") or "").strip().splitlines()[:1]
        summary = (error[0] if error else "(no error recorded)")[:300]
        key = (
            row["definition__key"],
            str(incident.get("element_id") or ""),
            str(incident.get("kind") or ""),
            summary,
        )
        group = groups.setdefault(key, IncidentGroup(*key))
        if not group.names:
            group.names = element_names_of(row["definition_id"])
        group.instances.append(dict(row))
    return sorted(groups.values(), key=lambda g: -len(g.instances))


def status_counts() -> dict[str, int]:
    counts = dict(ProcessInstance.objects.values_list("status").annotate(n=Count("id")).order_by())
    return {status: counts.get(status, 0) for status in ProcessInstance.Status.values}
