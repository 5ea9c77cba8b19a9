"""The conformance suite's fixtures, its test connector and its report: a table of
construct -> cases passed, printed at the end of the run."""

from collections import defaultdict
from collections.abc import Generator
from typing import Any

import pytest
from django.contrib.auth.models import User

from engine.connectors import ConnectorCall, connector

_RESULTS: dict[str, list[bool]] = defaultdict(list)


@connector("conformance.echo")
def echo(parameters: dict[str, Any], call: ConnectorCall) -> Any:
    """What the conformance diagrams' service tasks call: answers with its parameters."""
    return dict(parameters)


@pytest.fixture
def operator(make_user) -> User:
    """Completes every task and sends every event of a case."""
    user: User = make_user("conformance_operator")
    user.is_superuser = True
    user.save(update_fields=["is_superuser"])
    return user


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    case = getattr(getattr(item, "callspec", None), "params", {}).get("case")
    # A case counts once: by its call, or by its setup when that failed.
    if case is not None and (report.when == "call" or (report.when == "setup" and report.failed)):
        _RESULTS[case.construct].append(report.passed)
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _RESULTS:
        return
    width = max(len(construct) for construct in _RESULTS)
    passed = sum(sum(results) for results in _RESULTS.values())
    total = sum(len(results) for results in _RESULTS.values())
    terminalreporter.section(f"BPMN conformance: {passed} of {total} cases pass")
    terminalreporter.write_line(f"{'construct':<{width}}  passed")
    for construct in sorted(_RESULTS):
        results = _RESULTS[construct]
        mark = "" if all(results) else "   <- FAILS"
        terminalreporter.write_line(f"{construct:<{width}}  {sum(results)}/{len(results)}{mark}")
