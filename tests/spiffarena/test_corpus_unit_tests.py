"""SpiffArena's process-model unit tests (`test_*.json` beside each model of the corpus),
run through Baton's services.

The format, as SpiffArena's test runner reads it: one object per test case,
`{"tasks": {"<process id>:<element id>": {"data": [{...}, ...]}}, "expected_output_json":
{...}}`. Each time a task of that element waits for a person, the next `data` entry is
submitted; the instance must then complete with variables that hold `expected_output_json`
(Baton's variables also keep what SpiffArena leaves in task data only, so the expected
output is compared as a subset). Entries for elements that do not wait for a person (script
tasks SpiffArena recorded while making the test) are not used.

Cases Baton cannot pass are listed in NOT_RUN with the reason (and in the README, which
a test checks); every other case must pass."""

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from engine.models import HumanTask, ProcessInstance
from engine.services import complete_human_task, start_instance
from processes.models import ProcessDefinition
from tests.engine.test_spiff_dialect import deploy_folder
from tests.helpers import SHARED_DIR, SPIFF_EXAMPLES

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

CORPUS = SHARED_DIR / SPIFF_EXAMPLES
README = Path(__file__).resolve().parents[2] / "README.md"
# Cases this runner does not pass, with the reason; the README lists each one.
NOT_RUN: dict[str, str] = {
    "0-2-basic-example/test_user-guide-basics.json::test_case_for_process_instance_6480": (
        "loops back through the quiz by data SpiffArena recorded outside the forms"
    ),
    "1-basic-concepts/1-6-roles/test_my_vacation.json::test_case_for_process_instance_6472": (
        "expects the user who recorded it (get_current_user) in the output"
    ),
    "1-basic-concepts/1-6-roles/test_my_vacation.json::test_case_for_process_instance_6473": (
        "expects the user who recorded it (get_current_user) in the output"
    ),
    "1-basic-concepts/understanding-data-part-1/test_python.json::"
    "test_case_for_process_instance_6477": (
        "mocks a service task's result; the runner does not mock connectors"
    ),
    "2-in-depth/2-5-loops/looping-tasks/test_looping-tasks.json::"
    "test_case_for_process_instance_6493": (
        "reads loopCondition as 'until'; SpiffWorkflow 3.2 (and BPMN) loop while it holds"
    ),
}


def corpus_cases() -> list[Any]:
    if not CORPUS.is_dir():
        return [pytest.param(Path("missing-corpus"), "", id="missing-corpus")]
    params = []
    for path in sorted(CORPUS.rglob("test_*.json")):
        for case in sorted(json.loads(path.read_text())):
            name = f"{path.relative_to(CORPUS)}::{case}"
            if name in NOT_RUN:
                continue
            params.append(pytest.param(path.relative_to(CORPUS), case, id=name))
    return params


def _entry_process(folder: Path, tasks: dict[str, Any]) -> str:
    primary = json.loads((folder / "process_model.json").read_text()).get("primary_process_id")
    if primary and ProcessDefinition.objects.filter(key=primary).exists():
        return str(primary)
    # Some models name a primary process the diagram no longer has: the tests' own prefix.
    prefixes = {key.split(":")[0] for key in tasks}
    deployed = ProcessDefinition.objects.filter(key__in=prefixes).values_list("key", flat=True)
    [key] = set(deployed) or {primary}
    return str(key)


def _open_task(instance: ProcessInstance) -> HumanTask | None:
    return (
        HumanTask.objects.filter(instance=instance, status__in=HumanTask.ACTIVE_STATUSES)
        .order_by("created_at", "pk")
        .first()
    )


def _declared(task: HumanTask, data: dict[str, Any]) -> dict[str, Any]:
    """What of a recorded entry the task's form declares: SpiffArena records the task's whole
    data, Baton takes from a person only the fields the form asks for."""
    schema = task.form.get("schema") if isinstance(task.form, dict) else None
    properties = schema.get("properties") if isinstance(schema, dict) else None
    fields = task.form.get("fields") if isinstance(task.form, dict) else None
    names = set(properties or {}) | {f.get("id") for f in fields or [] if isinstance(f, dict)}
    return {k: v for k, v in data.items() if k in names}


@pytest.fixture(autouse=True)
def _time_for_slow_scripts(settings: Any) -> None:
    """Some corpus scripts count to a million (SpiffArena has no script time limit): these
    tests check what the models compute, not how fast, so a loaded machine must not fail
    them on Baton's default limit of 2 s."""
    settings.BATON_SCRIPT_TIME_LIMIT_SECONDS = 60


@pytest.mark.parametrize(("relative", "case"), corpus_cases())
def test_spiffarena_unit_test(shared_dir: Path, relative: Path, case: str) -> None:
    path = shared_dir / SPIFF_EXAMPLES / relative
    spec = json.loads(path.read_text())[case]
    deploy_folder(path.parent)
    runner = User.objects.create_superuser("spiff_tester", email="tester@example.invalid")
    inputs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for key, task in spec.get("tasks", {}).items():
        inputs[key.split(":", 1)[1]].extend(task.get("data", []))

    instance = start_instance(key=_entry_process(path.parent, spec.get("tasks", {})), actor=runner)
    for _ in range(100):
        instance.refresh_from_db()
        task = _open_task(instance)
        if instance.status != ProcessInstance.Status.WAITING or task is None:
            break
        queued = inputs.get(task.element_id)
        assert queued, f"{task.element_id} waits for a person, but the test gives no more data"
        complete_human_task(task_id=task.id, user=runner, variables=_declared(task, queued.pop(0)))

    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.COMPLETED, instance.incident
    expected = spec.get("expected_output_json", {})
    assert {k: instance.variables.get(k) for k in expected} == expected


def test_every_case_not_run_is_in_the_readme_with_its_reason(shared_dir: Path) -> None:
    readme = " ".join(README.read_text().split())
    for name, reason in NOT_RUN.items():
        assert (shared_dir / SPIFF_EXAMPLES / name.split("::")[0]).is_file(), name
        assert f"`{name.split('::')[1]}`" in readme and reason in readme, name


def corpus_folders() -> list[Any]:
    if not CORPUS.is_dir():
        return [pytest.param(Path("missing-corpus"), id="missing-corpus")]
    folders = sorted({p.parent.relative_to(CORPUS) for p in CORPUS.rglob("*.bpmn")})
    return [pytest.param(folder, id=str(folder)) for folder in folders]


@pytest.mark.parametrize("folder", corpus_folders())
def test_every_corpus_model_deploys(shared_dir: Path, folder: Path) -> None:
    deploy_folder(shared_dir / SPIFF_EXAMPLES / folder)
    keys = {p.stem for p in (shared_dir / SPIFF_EXAMPLES / folder).glob("*.bpmn")}
    assert keys and ProcessDefinition.objects.exists()
