"""Running every SpiffArena test file under a directory, case by case, outside pytest
(`manage.py test_processes DIR`): the results per case and the coverage of all of them."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth.models import User

from .coverage import Coverage
from .runner import ProcessTester
from .spiffarena import is_case_file, load_cases, run_case

TESTER_USERNAME = "baton-tester"


@dataclass(frozen=True)
class CaseResult:
    file: Path
    case: str
    passed: bool
    message: str = ""

    @property
    def name(self) -> str:
        return f"{self.file}::{self.case}"


def case_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("test_*.json") if is_case_file(p))


def tester_user() -> User:
    return User.objects.filter(username=TESTER_USERNAME).first() or User.objects.create_superuser(
        TESTER_USERNAME, email="baton-tester@example.invalid"
    )


def count_instances(coverage: Coverage) -> Callable[[ProcessTester], None]:
    """What a tester's `on_finish` does: count the instances its test started."""

    def count(tester: ProcessTester) -> None:
        from engine.models import ProcessInstance

        ids = ProcessInstance.objects.filter(created_at__gte=tester.started_at).values_list(
            "id", flat=True
        )
        for instance_id in ids:
            coverage.add_instance(instance_id)

    return count


def run_cases(
    directory: Path, report: Callable[[CaseResult], None] | None = None
) -> tuple[list[CaseResult], Coverage]:
    """Run every case of every test file under `directory` on the current database."""
    coverage = Coverage()
    results: list[CaseResult] = []
    user = tester_user()
    for path in case_files(directory):
        for case in load_cases(path):
            tester = ProcessTester(user, on_finish=count_instances(coverage))
            try:
                run_case(tester, path, case)
                result = CaseResult(path.relative_to(directory), case, True)
            except Exception as exc:  # noqa: BLE001 -- every failure of a case is its result
                result = CaseResult(path.relative_to(directory), case, False, str(exc))
            finally:
                tester.finish()
            results.append(result)
            if report is not None:
                report(result)
    return results, coverage
