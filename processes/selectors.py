"""Read-only queries of deployments and process definitions."""

from django.db.models import Count, OuterRef, QuerySet, Subquery

from engine.exceptions import NotFound

from .models import CoverageReport, ProcessDefinition

LIGHT = ("spec", "elements", "bpmn_xml")


def latest_definitions(
    *, key: str | None = None, name: str | None = None
) -> QuerySet[ProcessDefinition]:
    """The newest version of every process key (versions count 1, 2, ... so it is also the
    number of versions)."""
    newest = ProcessDefinition.objects.filter(key=OuterRef("key")).order_by("-version")
    definitions = ProcessDefinition.objects.defer(*LIGHT).filter(
        pk=Subquery(newest.values("pk")[:1])
    )
    if key:
        definitions = definitions.filter(key__icontains=key)
    if name:
        definitions = definitions.filter(name__icontains=name)
    return definitions.order_by("key")


def definition_versions(key: str) -> QuerySet[ProcessDefinition]:
    versions = ProcessDefinition.objects.defer(*LIGHT).filter(key=key).order_by("-version")
    if not versions.exists():
        raise NotFound(f"There is no process definition with key {key!r}.")
    return versions


def definition(key: str, version: int | None = None) -> ProcessDefinition:
    """One version of a definition (the latest when `version` is None), XML included."""
    versions = ProcessDefinition.objects.defer("spec", "elements").filter(key=key)
    if version is not None:
        versions = versions.filter(version=version)
    found = versions.order_by("-version").first()
    if found is None:
        which = f"version {version} of " if version is not None else ""
        raise NotFound(f"There is no {which}process definition with key {key!r}.")
    return found


def version_history(key: str) -> QuerySet[ProcessDefinition]:
    """Every version of a key, newest first, with who deployed it and its instance count."""
    return (
        definition_versions(key)
        .select_related("deployment__deployed_by")
        .annotate(instance_count=Count("instances"))
    )


def latest_coverage(key: str) -> CoverageReport | None:
    """The newest test coverage report of process `key`, if any was stored."""
    return CoverageReport.objects.filter(key=key).order_by("-recorded_at", "-pk").first()
