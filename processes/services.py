"""Deploying process definitions: the only code that writes deployments and definitions."""

from dataclasses import dataclass, field
from pathlib import Path

from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.db.models import Max

from engine.actors import Actor, as_user

from .models import CoverageReport, Deployment, DeploymentFile, ProcessDefinition
from .permissions import can_deploy
from .signals import definition_deployed
from .validation import ParsedDeployment, ParsedProcess, Problem, UploadedFile, parse_deployment

EXAMPLES_DIR = Path(__file__).resolve().parent / "bpmn"


@dataclass
class DeploymentResult:
    deployment: Deployment | None
    # Every definition of the upload: new versions and unchanged ones.
    definitions: list[ProcessDefinition] = field(default_factory=list)
    created: list[ProcessDefinition] = field(default_factory=list)
    # What the upload departs from the schema in ways Baton tolerates (processes/quirks.py).
    warnings: list[Problem] = field(default_factory=list)


def validate_files(files: list[UploadedFile]) -> ParsedDeployment:
    """Check an upload without storing anything; raises `DeploymentInvalid`."""
    return parse_deployment(files)


def _lock_process_key(key: str) -> None:
    # Two concurrent deployments of one key must not both take the same next version.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"baton.definition:{key}"])


def _unchanged_definition(process: ParsedProcess) -> ProcessDefinition | None:
    latest = ProcessDefinition.objects.filter(key=process.key).order_by("-version").first()
    if latest is not None and latest.checksum == process.checksum:
        return latest
    return None


def _create_definition(
    deployment: Deployment, parsed: ParsedDeployment, process: ParsedProcess
) -> ProcessDefinition:
    current = ProcessDefinition.objects.filter(key=process.key).aggregate(v=Max("version"))["v"]
    return ProcessDefinition.objects.create(
        key=process.key,
        version=(current or 0) + 1,
        name=process.name,
        deployment=deployment,
        file_name=process.file_name,
        bpmn_xml=process.xml,
        dialect=parsed.dialect,
        checksum=process.checksum,
        spec=process.spec,
        elements=parsed.elements,
        start_form=process.start_form,
    )


def deploy(*, name: str, files: list[UploadedFile], actor: Actor) -> DeploymentResult:
    """Validate and store an upload: one new version per changed executable process.

    `actor` None means a trusted system caller (the run command loading the examples);
    otherwise the actor must be allowed to deploy. Identical content makes no new version.
    Raises `DeploymentInvalid` (nothing stored) or `PermissionDenied`.
    """
    if actor is not None and not can_deploy(actor):
        raise PermissionDenied("Only members of the designers group may deploy processes.")
    parsed = parse_deployment(files)
    with transaction.atomic(durable=True):
        for key in sorted({p.key for p in parsed.processes}):
            _lock_process_key(key)
        unchanged = {p.key: _unchanged_definition(p) for p in parsed.processes}
        if all(unchanged.values()):
            return DeploymentResult(
                deployment=None,
                definitions=[d for d in unchanged.values() if d is not None],
                warnings=parsed.warnings,
            )
        deployment = Deployment.objects.create(
            name=name or parsed.processes[0].name,
            checksum=parsed.checksum,
            deployed_by=as_user(actor),
        )
        DeploymentFile.objects.bulk_create(
            DeploymentFile(
                deployment=deployment, name=f.name, kind=f.kind, content=f.text, checksum=f.checksum
            )
            for f in parsed.files
        )
        result = DeploymentResult(deployment=deployment, warnings=parsed.warnings)
        for process in parsed.processes:
            existing = unchanged[process.key]
            if existing is not None:
                result.definitions.append(existing)
                continue
            definition = _create_definition(deployment, parsed, process)
            definition_deployed.send(sender=ProcessDefinition, definition=definition)
            result.definitions.append(definition)
            result.created.append(definition)
    return result


def deploy_examples() -> list[ProcessDefinition]:
    """Deploy the diagrams shipped in `processes/bpmn/`, each file as its own deployment."""
    created: list[ProcessDefinition] = []
    for path in sorted(EXAMPLES_DIR.glob("*.bpmn")):
        upload = UploadedFile(name=path.name, content=path.read_bytes())
        result = deploy(name=f"Example: {path.stem}", files=[upload], actor=None)
        created.extend(result.created)
    return created


def record_coverage(
    *,
    key: str,
    source: str,
    elements: dict[str, str],
    flows: list[str],
    elements_run: list[str],
    flows_taken: list[str],
    instances: int,
) -> CoverageReport:
    """Store what a test run covered of process `key` (a trusted caller: the management
    commands of baton.testing); the process page shows the newest report."""
    with transaction.atomic(durable=True):
        return CoverageReport.objects.create(
            key=key[:200],
            source=source[:255],
            elements=elements,
            flows=sorted(flows),
            elements_run=sorted(set(elements_run) & set(elements)),
            flows_taken=sorted(set(flows_taken) & set(flows)),
            instances=instances,
        )
