"""Helpers shared by the tests: example files and a builder for small BPMN documents."""

import itertools
import os
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from processes.services import EXAMPLES_DIR
from processes.validation import UploadedFile

EXPENSE_FILE = EXAMPLES_DIR / "expense_approval.bpmn"
PARALLEL_FILE = EXAMPLES_DIR / "parallel_review.bpmn"
# The shared directory beside the repository checkout (../shared): the corpus of example
# models. Tests reach it through the `shared_dir` fixture (tests/conftest.py). A checkout
# elsewhere (a git worktree) names it with BATON_SHARED_DIR.
SHARED_DIR = Path(
    os.environ.get("BATON_SHARED_DIR") or Path(__file__).resolve().parents[2] / "shared"
)
SPIFF_EXAMPLES = Path("corpus", "spiff-examples")  # inside SHARED_DIR


def production_env(data_dir: Path) -> dict[str, str]:
    """The environment of a child process on the production settings, with what they demand
    (a long secret key, allowed hosts, a database URL) and nothing of this run's."""
    return {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "config.settings.prod",
        "SECRET_KEY": "x" * 20 + "-a-long-random-production-secret-" + "y" * 20,
        "ALLOWED_HOSTS": "baton.example.org",
        "DATABASE_URL": "postgres://u@127.0.0.1:1/none",
        "BATON_DATA_DIR": str(data_dir),
    }


def field_values(row: Any) -> dict[str, Any]:
    """Every column's value of a model instance, by attribute name: to hold a row built or
    written by hand (engine.rows) to what the ORM reads."""
    return {field.attname: getattr(row, field.attname) for field in row._meta.concrete_fields}


def upload_of(path: Path, name: str | None = None) -> UploadedFile:
    return UploadedFile(name=name or path.name, content=path.read_bytes())


def deploy_document(document: str, name: str = "diagram.bpmn") -> None:
    """Deploy one BPMN document as the system would (no actor)."""
    from processes.services import deploy

    deploy(name=name, files=[UploadedFile(name, document.encode())], actor=None)


BPMN_HEADER = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'id="Definitions_{process_id}" targetNamespace="http://bpmn.io/schema/bpmn">\n'
)


def build_bpmn(
    process_id: str = "tiny",
    *,
    name: str = "Tiny process",
    script: str | None = None,
    script_after: str | None = None,
    condition: str | None = None,
    start_event: bool = True,
    candidate_groups: str = "managers",
    assignment: str | None = None,
) -> str:
    """A small Camunda-dialect diagram:
    start -> [script] -> user task `review` -> [script_after] -> [gateway] -> end.

    `script` and `script_after` are Python scripts (tasks `prepare` and `finish`); with
    `condition`, an exclusive gateway `decide` follows: flow `flow_condition` (guarded by the
    condition) leads to `end`, the default flow to `end_other`. Snippets are inserted verbatim
    (escaped for XML) on the same line as their XML element, so an error on a snippet's first
    line is reported at that element's line. The user task has one optional string field `note`.
    `assignment` replaces the user task's candidateGroups attribute with raw `camunda:` attributes.
    """
    assignment = assignment or f'camunda:candidateGroups="{candidate_groups}"'
    lines = [f'  <bpmn:process id="{process_id}" name="{escape(name)}" isExecutable="true">']
    nodes: list[str] = []
    if start_event:
        nodes.append("start")
        lines.append('    <bpmn:startEvent id="start" name="Start" />')
    if script is not None:
        nodes.append("prepare")
        lines.append(
            '    <bpmn:scriptTask id="prepare" name="Prepare" scriptFormat="python">'
            f"<bpmn:script>{escape(script)}</bpmn:script></bpmn:scriptTask>"
        )
    nodes.append("review")
    lines.append(
        f'    <bpmn:userTask id="review" name="Review" {assignment}>'
        "<bpmn:extensionElements><camunda:formData>"
        '<camunda:formField id="note" label="Note" type="string" />'
        "</camunda:formData></bpmn:extensionElements></bpmn:userTask>"
    )
    if script_after is not None:
        nodes.append("finish")
        lines.append(
            '    <bpmn:scriptTask id="finish" name="Finish" scriptFormat="python">'
            f"<bpmn:script>{escape(script_after)}</bpmn:script></bpmn:scriptTask>"
        )
    branch_flows: list[str] = []
    if condition is not None:
        nodes.append("decide")
        lines.append(
            '    <bpmn:exclusiveGateway id="decide" name="Decide" default="flow_default" />'
        )
        lines.append('    <bpmn:endEvent id="end_other" name="Other end" />')
        branch_flows.append(
            '    <bpmn:sequenceFlow id="flow_condition" sourceRef="decide" targetRef="end">'
            '<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">'
            f"{escape(condition)}</bpmn:conditionExpression></bpmn:sequenceFlow>"
        )
        branch_flows.append(
            '    <bpmn:sequenceFlow id="flow_default" sourceRef="decide" targetRef="end_other" />'
        )
    else:
        nodes.append("end")
    lines.append('    <bpmn:endEvent id="end" name="End" />')
    chain_flows = [
        f'    <bpmn:sequenceFlow id="flow_{index}" sourceRef="{source}" targetRef="{target}" />'
        for index, (source, target) in enumerate(itertools.pairwise(nodes))
    ]
    body = "\n".join(lines + chain_flows + branch_flows)
    return (
        BPMN_HEADER.format(process_id=process_id)
        + body
        + "\n  </bpmn:process>\n</bpmn:definitions>\n"
    )


def line_containing(document: str, text: str) -> int:
    """1-based number of the first line of `document` that contains `text`."""
    for number, line in enumerate(document.splitlines(), start=1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} is not in the document")


def open_task_elements(instance) -> set[str]:
    """The element ids of the instance's open (or claimed) human tasks."""
    from engine.models import HumanTask

    return set(
        instance.human_tasks.filter(status__in=HumanTask.ACTIVE_STATUSES).values_list(
            "element_id", flat=True
        )
    )
