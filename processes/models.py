"""Deployments and the process definitions they carry."""

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
