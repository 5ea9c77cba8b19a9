"""Deployments and the process definitions they carry."""

from typing import Any

from django.conf import settings
from django.db import models


class Deployment(models.Model):
    """One upload of BPMN/DMN/JSON files, deployed together."""

    name = models.CharField(max_length=200)
    checksum = models.CharField(max_length=64, db_index=True)
    deployed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.created_at:%Y-%m-%d %H:%M})"


class DeploymentFile(models.Model):
    """A file of a deployment, kept verbatim so that any version can be re-read."""

    class Kind(models.TextChoices):
        BPMN = "bpmn", "BPMN"
        DMN = "dmn", "DMN"
        JSON = "json", "JSON"

    deployment = models.ForeignKey(Deployment, related_name="files", on_delete=models.CASCADE)
    name = models.CharField(max_length=255)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    content = models.TextField()
    checksum = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["deployment", "name"], name="deployment_file_unique_name"
            )
        ]

    def __str__(self) -> str:
        return self.name


class ProcessDefinition(models.Model):
    """One version of one executable BPMN process."""

    # The large columns, which reads that only need the definition's name, key or version
    # leave out (operations take the parsed spec from the definition cache).
    BULK_FIELDS = ("spec", "bpmn_xml", "elements")

    class Dialect(models.TextChoices):
        CAMUNDA = "camunda", "Camunda 7"
        SPIFF = "spiff", "SpiffArena"

    key = models.CharField(max_length=200, help_text="The BPMN process id.")
    version = models.PositiveIntegerField()
    name = models.CharField(max_length=200, blank=True)
    deployment = models.ForeignKey(Deployment, related_name="definitions", on_delete=models.PROTECT)
    file_name = models.CharField(max_length=255)
    bpmn_xml = models.TextField()
    dialect = models.CharField(max_length=16, choices=Dialect.choices)
    # Checksum of everything the parsed spec depends on; equal checksum = same version.
    checksum = models.CharField(max_length=64)
    # The parsed process spec, serialized once at deploy time and shared by every instance.
    spec = models.JSONField()
    # What the runtime needs per BPMN element that the parsed spec does not keep:
    # assignment, due dates, priorities, forms, lanes.
    elements = models.JSONField(default=dict)
    is_executable = models.BooleanField(default=True)
    start_form = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["key", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["key", "version"], name="definition_unique_version")
        ]

    def __str__(self) -> str:
        return f"{self.key} v{self.version}"

    @classmethod
    def bulk_fields(cls, path: str) -> tuple[str, ...]:
        """BULK_FIELDS as seen from another model through `path` ("definition__")."""
        return tuple(f"{path}{name}" for name in cls.BULK_FIELDS)


class CoverageReport(models.Model):
    """Which elements and sequence flows of a process the tests ran (Baton's process tests,
    baton.testing): stored by `manage.py test_processes` or loaded from a pytest run's
    `--baton-coverage` report (`manage.py load_test_coverage`), shown on the process page."""

    key = models.CharField(max_length=200, help_text="The BPMN process id.")
    source = models.CharField(max_length=255, help_text="Where the report came from.")
    recorded_at = models.DateTimeField(auto_now_add=True)
    elements = models.JSONField(default=dict, help_text="Every element of the diagram: id -> kind.")
    flows = models.JSONField(default=list, help_text="Every sequence flow id.")
    elements_run = models.JSONField(default=list)
    flows_taken = models.JSONField(default=list)
    instances = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["key", "-recorded_at"], name="coverage_latest_by_key")]

    def __str__(self) -> str:
        return f"{self.key} ({self.source}, {self.recorded_at:%Y-%m-%d %H:%M})"

    def percent(self, part: list[str], whole: Any) -> float:
        return round(100.0 * len(part) / len(whole), 1) if whole else 100.0

    @property
    def element_percent(self) -> float:
        return self.percent(self.elements_run, self.elements)

    @property
    def flow_percent(self) -> float:
        return self.percent(self.flows_taken, self.flows)
