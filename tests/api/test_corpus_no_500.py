"""Every diagram we hold (the conformance cases and the SpiffArena corpus), deployed and
started through the REST API, answers without a server error: a deployment is created or
refused (400), a start answers 201 or a 4xx problem, never 500 (issue 19)."""

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.helpers import SPIFF_EXAMPLES

CASES = Path(__file__).resolve().parents[1] / "conformance" / "cases"
MODEL_FILES = (".bpmn", ".dmn", ".json")


def conformance_uploads() -> list[list[Path]]:
    """Each case's diagram with the decision tables of the same name."""
    return [
        [bpmn, *sorted(bpmn.parent.glob(f"{bpmn.stem}*.dmn"))]
        for bpmn in sorted(CASES.rglob("*.bpmn"))
    ]


def corpus_uploads(shared_dir: Path) -> list[list[Path]]:
    """Each corpus model's directory: its diagrams, decision tables and form files."""
    folders = sorted({p.parent for p in (shared_dir / SPIFF_EXAMPLES).rglob("*.bpmn")})
    return [
        sorted(
            p
            for p in folder.iterdir()
            if p.suffix in MODEL_FILES and not p.name.startswith(("test_", "process_model"))
        )
        for folder in folders
    ]


def deploy_and_start(designer_client, starter_client, files: list[Path]) -> list[str]:
    """What answered 500 (empty when nothing did)."""
    name = files[0].name
    response = designer_client.post(
        "/api/v1/deployments/",
        {"files": [SimpleUploadedFile(f.name, f.read_bytes()) for f in files]},
        format="multipart",
    )
    if response.status_code >= 500:
        return [f"deploy {name}: {response.status_code}"]
    if response.status_code not in (200, 201):
        return []
    failures = []
    for definition in response.json()["definitions"]:
        started = starter_client.post(
            f"/api/v1/definitions/{definition['key']}/start/", {"variables": {}}, format="json"
        )
        if started.status_code >= 500:
            failures.append(f"start {definition['key']} ({name}): {started.status_code}")
    return failures


@pytest.mark.slow
def test_no_diagram_we_hold_answers_500(api_client_for, designer, make_user, shared_dir):
    designer_client = api_client_for(designer)
    starter = api_client_for(make_user("sam", "managers", "integrations"))
    starter.raise_request_exception = False
    designer_client.raise_request_exception = False
    failures: list[str] = []
    for files in conformance_uploads() + corpus_uploads(shared_dir):
        failures.extend(deploy_and_start(designer_client, starter, files))
    assert failures == []
