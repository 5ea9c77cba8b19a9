"""Baton's pytest plugin: test BPMN processes like code.

- the `baton` fixture (a `ProcessTester`, baton.testing.runner) on pytest-django's test
  database: load diagrams, start instances, complete user tasks, mock connectors, move the
  clock, send messages and signals, assert on the path;
- a collector for SpiffArena's `test_*.json` files beside `.bpmn` files (one test per case);
- process coverage: a table at the end of the session, and `--baton-coverage=FILE` (JSON).

Registered through the `pytest11` entry point named `baton.testing.plugin`, the module's own
name, so that `-p baton.testing.plugin` or `pytest_plugins = ["baton.testing.plugin"]` in a
project that also has the entry point installed does not register it twice.
"""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# Django's models are imported only once pytest-django has set Django up (in fixtures and
# hooks), never when pytest loads this module.
if TYPE_CHECKING:
    from .coverage import Coverage
    from .runner import ProcessTester

COVERAGE: "pytest.StashKey[Coverage]" = pytest.StashKey()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("baton", "Baton process tests")
    group.addoption(
        "--baton-coverage",
        metavar="FILE",
        default=None,
        help="write the process coverage (elements and flows run) as JSON to FILE",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "baton_case: a SpiffArena test case (test_*.json)")


@pytest.fixture
def baton(request: pytest.FixtureRequest, db: None) -> Iterator["ProcessTester"]:
    """Baton's engine for one test, on the test database (see docs/testing-processes.md)."""
    from .cases import count_instances, tester_user
    from .coverage import Coverage
    from .runner import ProcessTester

    coverage = request.config.stash.setdefault(COVERAGE, Coverage())
    tester = ProcessTester(tester_user(), on_finish=count_instances(coverage))
    try:
        yield tester
    finally:
        tester.finish()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    coverage = config.stash.get(COVERAGE, None)
    if not coverage:
        return
    terminalreporter.write_sep("=", "Baton process coverage")
    terminalreporter.write_line(coverage.table())
    target = config.getoption("baton_coverage")
    if target:
        coverage.write(Path(target))
        terminalreporter.write_line(f"coverage report written to {target}")


# --- SpiffArena's test_*.json ----------------------------------------------------------


def _case_test(path: Path, case: str) -> Callable[..., None]:
    def test_case(baton: "ProcessTester") -> None:
        from .spiffarena import run_case

        run_case(baton, path, case)

    return test_case


class SpiffArenaFile(pytest.File):
    """A SpiffArena `test_*.json`: one test per case."""

    def collect(self) -> Iterator[pytest.Item]:
        from .spiffarena import load_cases

        for case in load_cases(self.path):
            item = pytest.Function.from_parent(self, name=case, callobj=_case_test(self.path, case))
            item.add_marker(pytest.mark.django_db)
            item.add_marker(pytest.mark.baton_case)
            yield item


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    from .spiffarena import is_case_file

    if is_case_file(file_path):
        collector: pytest.Collector = SpiffArenaFile.from_parent(parent, path=file_path)
        return collector
    return None
