"""Baton's process-test tools from the outside: the pytest collector for SpiffArena's
test_*.json run over the corpus in a pytest of its own (as a team runs it, with the plugin
and the coverage report), `manage.py test_processes` and `load_test_coverage`, and the
coverage numbers of one example counted by hand from its XML."""

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from baton.testing.coverage import FORMAT, MAX_REPORT_BYTES, Coverage
from baton.testing.runner import ProcessTester
from baton.testing.storage import store_coverage
from config.queues import events_queue, job_queue
from engine.queueing import queue_message_counts
from processes.models import CoverageReport
from tests.engine.service_diagrams import sequence, service_task
from tests.helpers import EXAMPLES_DIR, SPIFF_EXAMPLES
from tests.processes.test_process_pages import client_for, json_script
from tests.spiffarena.test_corpus_unit_tests import NOT_RUN

REPO = Path(__file__).resolve().parents[2]


def _child_env(database: str) -> dict[str, str]:
    """The environment of a child process on `database` of this run's server."""
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/baton")
    env = dict(os.environ)
    env["DATABASE_URL"] = re.sub(r"/[^/?]+(\?|$)", rf"/{database}\1", url, count=1)
    env["PYTHONPATH"] = str(REPO)
    env["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    return env


@pytest.mark.slow
def test_the_collector_runs_the_corpus_test_files_case_by_case(shared_dir, tmp_path):
    corpus = shared_dir / SPIFF_EXAMPLES
    report = tmp_path / "coverage.json"
    junit = tmp_path / "junit.xml"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(corpus),
            "-p",
            "baton.testing.plugin",
            "-p",
            "no:cacheprovider",
            f"--rootdir={tmp_path}",
            f"--baton-coverage={report}",
            f"--junitxml={junit}",
            "-o",
            "junit_family=xunit2",
            "-q",
        ],
        # pytest-django makes test_<name>, which must not be the one this run's tests use.
        env=_child_env(f"{connection.settings_dict['NAME']}_collector"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    print(result.stdout[-6000:], result.stderr[-3000:])
    text = junit.read_text()
    cases = re.findall(r'<testcase classname="([^"]+)" name="([^"]+)"[^>]*?(/>|>)', text)
    failed = set(re.findall(r'<testcase classname="[^"]+" name="([^"]+)"[^>]*>\s*<failure', text))
    names = {name for _, name, _ in cases}
    expected_failures = {name.split("::")[1] for name in NOT_RUN}
    assert len(names) == sum(len(json.loads(p.read_text())) for p in corpus.rglob("test_*.json"))
    assert failed == expected_failures, result.stdout[-3000:]
    assert "Baton process coverage" in result.stdout
    data = json.loads(report.read_text())
    assert data["format"] == FORMAT
    assert data["processes"]["Process_escalation_events_iq40493"]["element_percent"] == 100.0


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_test_processes_reports_each_case_and_the_coverage_then_stores_it(shared_dir, tmp_path):
    """The command's "real" database is this run's test database (it stores the coverage
    there, and runs the cases in a test database of its own)."""
    folder = shared_dir / SPIFF_EXAMPLES / "2-in-depth" / "events"
    report = tmp_path / "coverage.json"
    result = subprocess.run(
        [sys.executable, "manage.py", "test_processes", str(folder), f"--json={report}"],
        env=_child_env(connection.settings_dict["NAME"]),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line.split("::")[1] for line in lines if line.startswith("PASS ")] == [
        "test_case_for_process_instance_6487",
        "test_case_for_process_instance_6488",
        "test_case_for_process_instance_6489",
        "test_case_for_process_instance_6490",
        "test_case_for_process_instance_6491",
    ]
    assert "5 passed, 0 failed." in lines
    assert any(line.startswith("Process_timer_events_oh3akqq ") for line in lines)
    assert "Stored the coverage of 2 process(es)." in lines
    keys = {"Process_escalation_events_iq40493", "Process_timer_events_oh3akqq"}
    assert Coverage.from_json(json.loads(report.read_text())).processes.keys() == keys
    stored = {r.key: r for r in CoverageReport.objects.all()}
    assert stored.keys() == keys
    timer = stored["Process_timer_events_oh3akqq"]
    assert (len(timer.elements_run), len(timer.elements)) == (3, 5)


@pytest.mark.django_db
def test_test_processes_refuses_a_directory_without_test_files(tmp_path):
    with pytest.raises(CommandError, match="is not a directory"):
        call_command("test_processes", str(tmp_path / "missing"))


@pytest.mark.django_db
def test_expense_approval_coverage_matches_a_count_by_hand(baton: ProcessTester, tmp_path):
    """expense_approval.bpmn holds 8 flow nodes (start, categorise, approve_expense,
    approved_gateway, record_approval, record_rejection, expense_approved, expense_rejected)
    and 7 sequence flows. An approval runs 6 nodes (all but record_rejection and
    expense_rejected) and 5 flows (all but flow_rejected and flow_rejection_to_end)."""
    baton.load(EXAMPLES_DIR / "expense_approval.bpmn")
    run = baton.start("expense_approval", {"amount": 5, "description": "Tea"})
    run.complete("approve_expense", {"decision": "approve"})
    coverage = Coverage()
    coverage.add_instance(run.id)
    entry = coverage.processes["expense_approval"]
    assert (len(entry.elements), len(entry.flows)) == (8, 7)
    assert set(entry.elements) - entry.elements_run == {"record_rejection", "expense_rejected"}
    assert set(entry.flows) - entry.flows_taken == {"flow_rejected", "flow_rejection_to_end"}
    assert (entry.element_percent, entry.flow_percent) == (75.0, 71.4)
    assert "expense_approval  1          6/8 75.0%  5/7 71.4%" in coverage.table()

    path = tmp_path / "report.json"
    coverage.write(path)
    call_command("load_test_coverage", str(path), "--source", "ci #12")
    stored = CoverageReport.objects.get(key="expense_approval")
    assert (stored.source, stored.element_percent, stored.flow_percent) == ("ci #12", 75.0, 71.4)
    assert "flow_rejected" not in stored.flows_taken and "flow_approved" in stored.flows_taken


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content", "problem"),
    [("not json", "Expecting value"), ('{"format": "other"}', "Not a Baton test coverage")],
)
def test_load_test_coverage_refuses_what_is_no_report(tmp_path, content, problem):
    path = tmp_path / "report.json"
    path.write_text(content)
    with pytest.raises(CommandError, match=problem):
        call_command("load_test_coverage", str(path))
    assert not CoverageReport.objects.exists()


def _report(**entry: object) -> str:
    process = {"elements": {"a": "task"}, "flows": [], "elements_run": [], "flows_taken": []}
    good = {"key": {**process, "instances": 1}}
    return json.dumps({"format": FORMAT, "processes": {**good, "other": {**process, **entry}}})


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (_report(instances=-1), "'instances' must be a whole number"),
        (_report(instances=2**40), "'instances' must be a whole number"),
        (_report(instances=True), "'instances' must be a whole number"),
        (_report(flows="abc"), "'flows' must be a list"),
        (_report(elements=["a"]), "'elements' must be an object"),
        (_report(elements_run=[{"x": 1}]), "elements_run must be ids"),
        (_report(flows=["f" * 256]), "flows must be ids"),
        (_report(elements={"a": 3}), "element kinds must be ids"),
        (json.dumps({"format": FORMAT, "processes": []}), "'processes' must be an object"),
        ("[" * 100_000, "Not JSON"),
        (b"\xff\xfe{}", "Not JSON"),
    ],
)
def test_load_test_coverage_refuses_a_malformed_report_whole(tmp_path, content, problem):
    """A report from elsewhere (a CI artefact) is checked before anything is stored: a bad
    entry is named, and the good entries beside it are not stored either."""
    path = tmp_path / "report.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(CommandError, match=re.escape(problem)):
        call_command("load_test_coverage", str(path))
    assert not CoverageReport.objects.exists()


@pytest.mark.django_db
def test_load_test_coverage_reads_no_more_than_a_report_can_be(tmp_path):
    path = tmp_path / "huge.json"
    with path.open("w") as stream:
        stream.write(json.dumps({"format": FORMAT, "processes": {}})[:-1] + ', "pad": "')
        stream.write("x" * MAX_REPORT_BYTES + '"}')
    with pytest.raises(CommandError, match="larger than 10 MiB"):
        call_command("load_test_coverage", str(path))
    # A device that never ends is refused the same way, not read until memory runs out.
    with pytest.raises(CommandError, match="larger than 10 MiB"):
        call_command("load_test_coverage", "/dev/zero")
    assert not CoverageReport.objects.exists()


@pytest.mark.django_db
def test_the_process_page_offers_the_stored_coverage(baton: ProcessTester, designer):
    baton.load(EXAMPLES_DIR / "expense_approval.bpmn")
    client = client_for(designer)
    page = client.get("/processes/expense_approval/").content.decode()
    assert "coverage-toggle" not in page
    assert json_script(page, "viewer-config")["coverage"] is None

    run = baton.start("expense_approval", {"amount": 5, "description": "Tea"})
    run.complete("approve_expense", {"decision": "reject"})
    coverage = Coverage()
    coverage.add_instance(run.id)
    store_coverage(coverage, "nightly <run>")

    page = client.get("/processes/expense_approval/").content.decode()
    assert 'id="coverage-toggle"' in page
    assert "6 of 8 elements (75.0%)" in page and "5 of 7 sequence flows (71.4%)" in page
    assert "nightly &lt;run&gt;" in page and "nightly <run>" not in page
    marks = json_script(page, "viewer-config")["coverage"]
    assert "record_rejection" in marks["covered"] and "flow_rejected" in marks["covered"]
    assert set(marks["uncovered"]) == {
        "record_approval",
        "expense_approved",
        "flow_approved",
        "flow_approval_to_end",
    }


def _case_folder(folder: Path) -> Path:
    """A model whose case hands work to a worker: a service task (a job, handed over after
    its commit), answered by the case's data."""
    folder.mkdir()
    (folder / "call.bpmn").write_text(
        sequence("tp_broker", [service_task("call_api", "'http://127.0.0.1:9/quote'")])
    )
    case = {"tasks": {"tp_broker:call_api": {"data": [{"price": 7}]}}, "expected_output_json": {}}
    (folder / "test_call.json").write_text(json.dumps({"test_case_call": case}))
    return folder


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_test_processes_hands_nothing_to_the_real_broker(tmp_path):
    """The cases commit on their own test database, where a job's hand-over fires: its
    message must not reach the broker's queues, where a real worker would look for the job
    in the real database."""
    queue = f"left-tp-{uuid.uuid4().hex[:8]}"
    queues = [job_queue({"BATON_CELERY_QUEUE": queue}), events_queue({"BATON_CELERY_QUEUE": queue})]
    assert {name: count for name, (count, _) in queue_message_counts(queues).items()} == {
        name: 0 for name in queues
    }
    env = _child_env(connection.settings_dict["NAME"]) | {"BATON_CELERY_QUEUE": queue}
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "test_processes",
            str(_case_folder(tmp_path / "m")),
            "--no-store",
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 0 failed." in result.stdout.splitlines()
    assert {name: count for name, (count, _) in queue_message_counts(queues).items()} == {
        name: 0 for name in queues
    }
