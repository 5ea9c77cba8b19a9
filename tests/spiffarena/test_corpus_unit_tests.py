"""SpiffArena's process-model unit tests (`test_*.json` beside each model of the corpus),
run through Baton's services by the same machinery as the pytest collector and
`manage.py test_processes` (baton.testing.spiffarena, whose docstring explains the format).

Cases Baton cannot pass are listed in NOT_RUN with the reason (and in the README, which
a test checks); every other case must pass."""

import json
from pathlib import Path
from typing import Any

import pytest

from baton.testing.runner import ProcessTester
from baton.testing.spiffarena import run_case
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
        "submits delivery_date, which the form's schema does not ask for (only its UI schema)"
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


@pytest.fixture(autouse=True)
def _time_for_slow_scripts(settings: Any) -> None:
    """Some corpus scripts count to a million (SpiffArena has no script time limit): these
    tests check what the models compute, not how fast, so a loaded machine must not fail
    them on Baton's default limit of 2 s."""
    settings.BATON_SCRIPT_TIME_LIMIT_SECONDS = 60


@pytest.mark.parametrize(("relative", "case"), corpus_cases())
def test_spiffarena_unit_test(
    shared_dir: Path, baton: ProcessTester, relative: Path, case: str
) -> None:
    run_case(baton, shared_dir / SPIFF_EXAMPLES / relative, case)


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
