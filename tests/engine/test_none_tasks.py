"""A task without a type (`bpmn:task`) passes through (BPMN 2.0 13.3.3, Camunda 7)."""

import copy
from pathlib import Path
from typing import Any

from engine.bpmn.serialization import spec_from_json
from processes.validation import UploadedFile, parse_deployment

CASE = Path(__file__).parents[1] / "conformance" / "cases" / "basics" / "none_task.bpmn"


def _stored_spec() -> tuple[str, dict[str, Any]]:
    deployment = parse_deployment([UploadedFile(CASE.name, CASE.read_bytes())])
    return deployment.dialect, deployment.processes[0].spec


def test_a_bare_task_is_stored_under_the_library_type_name_and_waits_for_no_one() -> None:
    dialect, stored = _stored_spec()
    assert stored["spec"]["task_specs"]["noop"]["typename"] == "NoneTask"
    spec, _ = spec_from_json(dialect, stored)
    assert spec.task_specs["noop"].manual is False


def test_a_spec_stored_when_bare_tasks_waited_loads_as_passing_through() -> None:
    dialect, stored = _stored_spec()
    old = copy.deepcopy(stored)
    old["spec"]["task_specs"]["noop"]["manual"] = True
    spec, _ = spec_from_json(dialect, old)
    assert spec.task_specs["noop"].manual is False
