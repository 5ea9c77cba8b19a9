"""Fixtures of the fault tests: one stack for the session (own Postgres, own Redis, the stub
API, a migrated database with a user, a token and the diagrams), and Baton's processes
(gunicorn, a job worker, an events worker, the beat) started afresh for each test and stopped
after it, whatever happened."""

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.checks import DIAGRAMS, JOB_CONCURRENCY, SETTINGS, STUB_DELAY_SECONDS
from tests.faults.stack import Baton, Stack


@pytest.fixture(scope="session")
def fault_stack() -> Iterator[Stack]:
    # This pytest process's own DATABASE_URL / CELERY_BROKER_URL are not the stack's.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE")
    }
    env["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    # Not under pytest's basetemp: another pytest session on the machine prunes old basetemps,
    # and with them the data directory of a Postgres that is still running.
    with (
        tempfile.TemporaryDirectory(prefix="baton-faults-") as root,
        Stack(
            Path(root),
            base_env=env,
            diagrams=DIAGRAMS,
            settings=SETTINGS,
            stub_delay=STUB_DELAY_SECONDS,
        ) as stack,
    ):
        yield stack


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Any:
    report = yield
    setattr(item, f"report_{report.when}", report)  # for the `baton` fixture's teardown
    return report


@pytest.fixture
def baton(fault_stack: Stack, request: pytest.FixtureRequest) -> Iterator[Baton]:
    """Baton's processes for one test; on failure their last log lines join the report."""
    fault_stack.ensure_up()
    with fault_stack.running(
        request.node.name, job_workers=1, concurrency=JOB_CONCURRENCY
    ) as running:
        yield running
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            report.sections.append(("Baton's logs (last lines)", running.log_tail()))
