"""SpiffArena's process-model unit tests (`test_*.json` beside a model's files), run by
Baton's test machinery: the pytest collector, `manage.py test_processes` and Baton's own
corpus test all call `run_case`.

The format, as SpiffArena writes it: one object per test case, `{"tasks":
{"<process id>:<element id>": {"data": [{...}, ...]}}, "expected_output_json": {...}}`.
- A user or manual task: each time a task of that element waits for a person, the next
  `data` entry is submitted (the fields its form declares: SpiffArena records the task's
  whole data, Baton takes from a person only what the form asks for).
- A service task: its entries mock the call (in order, the last one repeated). SpiffArena
  puts the entry into the task's data instead of calling; Baton answers the call with the
  entry's value under the task's result variable (`resultVariable`), or with the whole
  entry when it does not hold that variable.
- Other elements (script tasks SpiffArena recorded while making the test) are not used.
The instance must then complete with variables that hold `expected_output_json` (Baton's
variables also keep what SpiffArena leaves in task data only, so it is compared as a subset).
"""

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.models import HumanTask, ProcessInstance
from engine.selectors.process_paths import service_result_variables
from processes.models import ProcessDefinition

from .runner import ProcessRun, ProcessTester

# Person steps one case may take before it counts as a loop that the test data cannot end.
MAX_STEPS = 100


def is_case_file(path: Path) -> bool:
    """A SpiffArena test file: `test_*.json` in a folder that holds a BPMN model."""
    return (
        path.suffix == ".json" and path.name.startswith("test_") and any(path.parent.glob("*.bpmn"))
    )


def load_cases(path: Path) -> dict[str, dict[str, Any]]:
    cases = json.loads(path.read_text())
    if not isinstance(cases, dict):
        raise ValueError(f"{path}: a SpiffArena test file holds an object of test cases.")
    return {str(name): case for name, case in sorted(cases.items()) if isinstance(case, dict)}


def entry_process(folder: Path, tasks: dict[str, Any]) -> str:
    """The process a case starts: the model's primary process, or (when the diagram no
    longer has it) the one the case's task keys name."""
    model = folder / "process_model.json"
    primary = json.loads(model.read_text()).get("primary_process_id") if model.is_file() else None
    if primary and ProcessDefinition.objects.filter(key=primary).exists():
        return str(primary)
    prefixes = {key.split(":")[0] for key in tasks}
    deployed = set(ProcessDefinition.objects.filter(key__in=prefixes).values_list("key", flat=True))
    if len(deployed) != 1:
        raise AssertionError(f"{folder}: cannot tell which process the test starts")
    return deployed.pop()


def _open_task(run: ProcessRun) -> HumanTask | None:
    return (
        HumanTask.objects.filter(instance_id=run.id, status__in=HumanTask.ACTIVE_STATUSES)
        .order_by("created_at", "pk")
        .first()
    )


def _declared(task: HumanTask, data: dict[str, Any]) -> dict[str, Any]:
    """What of a recorded entry the task's form declares."""
    form = task.form if isinstance(task.form, dict) else {}
    schema = form.get("schema")
    properties = schema.get("properties") if isinstance(schema, dict) else None
    fields = form.get("fields")
    names = set(properties or {}) | {f.get("id") for f in fields or [] if isinstance(f, dict)}
    return {k: v for k, v in data.items() if k in names}


@dataclass
class CaseInputs:
    person: dict[str, list[dict[str, Any]]]  # element id -> entries to submit
    service: dict[str, list[dict[str, Any]]]  # element id -> entries that answer calls


def _inputs(case: dict[str, Any]) -> CaseInputs:
    person: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for key, task in (case.get("tasks") or {}).items():
        entries = task.get("data", []) if isinstance(task, dict) else []
        person[str(key).split(":", 1)[-1]].extend(e for e in entries if isinstance(e, dict))
    return CaseInputs(person=dict(person), service={})


def _mock_service_tasks(tester: ProcessTester, keys: list[str], inputs: CaseInputs) -> None:
    """The entries of service tasks answer their calls (see the module's docstring)."""
    result_variables: dict[str, str] = {}
    for key in keys:
        latest = ProcessDefinition.objects.filter(key=key).order_by("-version").first()
        if latest is not None:
            result_variables.update(service_result_variables(latest.pk))
    for element_id in list(inputs.person):
        if element_id not in result_variables:
            continue
        entries = inputs.service[element_id] = inputs.person.pop(element_id)
        variable = result_variables[element_id]
        for entry in entries:
            tester.mock(element_id, entry.get(variable, entry))


def run_case(tester: ProcessTester, path: Path, name: str) -> ProcessRun:
    """Run case `name` of the SpiffArena test file `path`; fails (AssertionError) with what
    went wrong."""
    case = load_cases(path)[name]
    keys = tester.load(path.parent)
    tasks = case.get("tasks") or {}
    inputs = _inputs(case)
    _mock_service_tasks(tester, keys, inputs)
    key = entry_process(path.parent, tasks)
    run = tester.start(key)
    for _ in range(MAX_STEPS):
        task = _open_task(run)
        if run.status != ProcessInstance.Status.WAITING or task is None:
            break
        queued = inputs.person.get(task.element_id)
        if not queued:
            raise AssertionError(
                f"{task.element_id} waits for a person, but the test gives no more data"
            )
        run.complete(task.element_id, _declared(task, queued.pop(0)))
    instance = run.instance
    if instance.status != ProcessInstance.Status.COMPLETED:
        raise AssertionError(
            f"the instance is {instance.status}, not completed: {instance.incident or ''} "
            f"(path {run.path})"
        )
    expected = case.get("expected_output_json") or {}
    actual = {k: instance.variables.get(k) for k in expected}
    if actual != expected:
        wrong = {k: (expected[k], actual[k]) for k in expected if actual[k] != expected[k]}
        raise AssertionError(f"output differs (expected, got): {wrong}")
    return run
