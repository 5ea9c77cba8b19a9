"""The history of element runs: one row per element an instance enters, written with the
instance's state, and the hourly roll-ups the insights read."""

import datetime
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db.models import Sum

from engine.models import ElementRollup, ElementRun, ProcessInstance, ServiceJob
from engine.services import complete_human_task, retry_instance, start_instance
from engine.services.job_runs import execute_service_job
from engine.services.retention import delete_finished_instances
from engine.services.timers import fire_due_timers
from processes.services import deploy
from processes.validation import UploadedFile
from tests.conftest import MovableClock
from tests.engine import event_diagrams
from tests.engine.service_diagrams import sequence, service_task
from tests.engine.service_fixtures import FakeApi, Reply, jobs_for_no_worker
from tests.helpers import EXPENSE_FILE, PARALLEL_FILE, build_bpmn, deploy_document

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def operator(make_staff: Any) -> User:
    user: User = make_staff("olga_operator", "operators")
    return user


def deploy_xml(xml: str, name: str = "history.bpmn") -> None:
    deploy(name=name, files=[UploadedFile(name, xml.encode())], actor=None)


def runs(instance: ProcessInstance) -> list[tuple[str, str, str]]:
    """(element id, element type, outcome) of the instance's runs, in the order they began."""
    return list(
        ElementRun.objects.filter(instance=instance)
        .order_by("started_at", "id")
        .values_list("element_id", "element_type", "outcome")
    )


def outcomes(instance: ProcessInstance) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for element_id, _, outcome in runs(instance):
        found.setdefault(element_id, []).append(outcome)
    return found


def complete(instance: ProcessInstance, element_id: str, user: User, **data: Any) -> None:
    task = instance.human_tasks.get(element_id=element_id, status__in=["open", "claimed"])
    complete_human_task(task_id=task.id, user=user, variables=data)


def test_expense_approval_writes_a_run_per_element_it_enters(approver: User) -> None:
    deploy_document(EXPENSE_FILE.read_text(), "expense_approval.bpmn")
    instance = start_instance(
        key="expense_approval",
        variables={"amount": 120, "description": "Taxi", "requester": "ann"},
    )
    assert outcomes(instance) == {
        "expense_approval": [""],
        "expense_submitted": ["completed"],
        "categorise": ["completed"],
        "approve_expense": [""],
    }
    complete(instance, "approve_expense", approver, decision="approve")
    found = runs(instance)
    assert all(outcome == "completed" for _, _, outcome in found)
    types = {element_id: kind for element_id, kind, _ in found}
    assert types["expense_approval"] == "Process"
    assert types["approve_expense"] == "User Task"
    assert types["categorise"] == "Script Task"
    assert "Exclusive Gateway" in types.values()
    assert "End Event" in types.values() or any("End" in kind for kind in types.values())
    approve = ElementRun.objects.get(instance=instance, element_id="approve_expense")
    assert approve.actor == approver.username
    assert approve.ended_at is not None and approve.duration_ms is not None
    assert approve.ended_at >= approve.started_at
    # Every run is counted once in the roll-ups: started and ended.
    totals = ElementRollup.objects.filter(definition_id=instance.definition_id).aggregate(
        started=Sum("started"), ended=Sum("ended"), completed=Sum("completed")
    )
    assert totals == {"started": len(found), "ended": len(found), "completed": len(found)}
    bucket_total = sum(sum(row) for row in ElementRollup.objects.values_list("buckets", flat=True))
    assert bucket_total == len(found)


def test_parallel_review_records_gateways_and_who_completed_each_branch(
    approver: User, legal_user: User, make_user: Any
) -> None:
    deploy_document(PARALLEL_FILE.read_text(), "parallel_review.bpmn")
    instance = start_instance(key="parallel_review", variables={"document": "contract"})
    open_ids = set(instance.human_tasks.filter(status="open").values_list("element_id", flat=True))
    reviewers = {
        task.element_id: (task.candidate_groups or ["managers"])[0]
        for task in instance.human_tasks.filter(status="open")
    }
    users = {group: make_user(f"rev_{group}", group) for group in set(reviewers.values())}
    for element_id in sorted(open_ids):
        complete(instance, element_id, users[reviewers[element_id]])
    instance.refresh_from_db()
    assert instance.status == "completed"
    kinds = [kind for _, kind, _ in runs(instance)]
    assert kinds.count("Parallel Gateway") == 2  # the split once, the join once
    for element_id in open_ids:
        run = ElementRun.objects.get(instance=instance, element_id=element_id)
        assert run.actor == f"rev_{reviewers[element_id]}"


def test_a_boundary_timer_cancels_the_task_and_runs_itself(clock: MovableClock) -> None:
    deploy_xml(event_diagrams.approval_with_escalation("P2D"))
    instance = start_instance(key="escalating_approval")
    assert outcomes(instance) == {
        "escalating_approval": [""],
        "start": ["completed"],
        "approve": [""],  # the waiting boundary timer is no run (yet)
    }
    clock.advance(datetime.timedelta(days=2, minutes=1))
    assert fire_due_timers() == 1
    found = outcomes(instance)
    assert found["approve"] == ["cancelled"]
    assert found["overdue"] == ["completed"]
    assert found["escalate"] == [""]
    approve = ElementRun.objects.get(instance=instance, element_id="approve")
    assert approve.duration_ms is not None and approve.duration_ms >= 2 * 86_400_000
    overdue = ElementRun.objects.get(instance=instance, element_id="overdue")
    assert overdue.element_type == "Timer Boundary Event" or "Boundary" in overdue.element_type


def test_an_intermediate_timer_waits_as_one_run(clock: MovableClock) -> None:
    deploy_xml(event_diagrams.wait_for_timer("PT1H"))
    instance = start_instance(key="waits")
    assert outcomes(instance)["wait"] == [""]
    clock.advance(datetime.timedelta(hours=1, seconds=5))
    assert fire_due_timers() == 1
    wait = ElementRun.objects.get(instance=instance, element_id="wait")
    assert wait.outcome == "completed"
    assert wait.duration_ms is not None and wait.duration_ms >= 3_600_000


def test_an_http_error_caught_by_a_boundary_event_ends_the_call_in_error(
    fake_api: FakeApi, settings: Any
) -> None:
    settings.BATON_HTTP_ALLOW = [f"127.0.0.1:{fake_api.server.server_port}"]
    fake_api.reply("/missing", Reply(404, {"detail": "no such customer"}))
    deploy_xml(
        sequence("hist_404", [service_task("lookup", 'api + "/missing"')], catch_error="HTTP_404")
    )
    with jobs_for_no_worker():
        instance = start_instance(key="hist_404", variables={"api": fake_api.base_url})
        assert outcomes(instance)["lookup"] == [""]
        execute_service_job(str(ServiceJob.objects.get(instance=instance).id))
    instance.refresh_from_db()
    assert instance.status == "completed"
    found = outcomes(instance)
    assert found["lookup"] == ["error"]
    assert found["on_error"] == ["completed"]
    assert found["handle"] == ["completed"]
    assert found["end_handled"] == ["completed"]
    assert "end" not in found
    rollup = ElementRollup.objects.filter(element_id="lookup").aggregate(errors=Sum("errors"))
    assert rollup == {"errors": 1}


def test_a_dead_job_ends_its_run_in_incident_and_a_retry_starts_a_new_run(
    fake_api: FakeApi, settings: Any, operator: User
) -> None:
    settings.BATON_HTTP_ALLOW = [f"127.0.0.1:{fake_api.server.server_port}"]
    fake_api.reply("/flaky", Reply(500), Reply(200, {"ok": True}))
    deploy_xml(sequence("hist_500", [service_task("call", 'api + "/flaky"')]))
    with jobs_for_no_worker():
        instance = start_instance(key="hist_500", variables={"api": fake_api.base_url})
        job = ServiceJob.objects.get(instance=instance)
        job.max_attempts = 1
        job.save()
        execute_service_job(str(job.id))
        instance.refresh_from_db()
        assert instance.status == "incident"
        assert outcomes(instance)["call"] == ["incident"]
        retry_instance(instance_id=str(instance.id), actor=operator)
        assert outcomes(instance)["call"] == ["incident", ""]
        execute_service_job(str(job.id))
    instance.refresh_from_db()
    assert instance.status == "completed"
    assert outcomes(instance)["call"] == ["incident", "completed"]
    assert ElementRollup.objects.filter(element_id="call").aggregate(n=Sum("incidents")) == {"n": 1}


def test_a_failing_script_ends_its_run_in_incident() -> None:
    deploy_document(build_bpmn("hist_script", script="x = 1 / 0"))
    instance = start_instance(key="hist_script")
    assert instance.status == "incident"
    assert outcomes(instance)["prepare"] == ["incident"]


def test_history_level_none_writes_nothing(settings: Any) -> None:
    settings.BATON_HISTORY_LEVEL = "none"
    deploy_document(build_bpmn("hist_none"))
    instance = start_instance(key="hist_none")
    assert not ElementRun.objects.filter(instance=instance).exists()
    assert not ElementRollup.objects.exists()


def test_history_level_full_keeps_the_variables_each_step_changed(
    settings: Any, approver: User
) -> None:
    settings.BATON_HISTORY_LEVEL = "full"
    deploy_document(build_bpmn("hist_full", script="total = 3"))
    instance = start_instance(key="hist_full", variables={"a": 1})
    prepare = ElementRun.objects.get(instance=instance, element_id="prepare")
    assert prepare.changes == {"a": 1, "total": 3}
    complete(instance, "review", approver, note="fine")
    review = ElementRun.objects.get(instance=instance, element_id="review")
    assert review.changes == {"note": "fine"}


def test_retention_deletes_runs_with_the_instance_and_keeps_the_rollups(
    approver: User, operator: User
) -> None:
    deploy_document(build_bpmn("hist_gone"))
    instance = start_instance(key="hist_gone")
    complete(instance, "review", approver)
    assert ElementRun.objects.filter(instance=instance).count() == 4
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
    assert delete_finished_instances(actor=operator, finished_before=later) == 1
    assert not ElementRun.objects.exists()
    assert ElementRollup.objects.aggregate(n=Sum("ended")) == {"n": 4}


def test_the_insights_read_the_buckets_the_history_writes() -> None:
    from engine.selectors import insights
    from engine.services import element_history

    assert insights.DURATION_BUCKETS_MS == element_history.DURATION_BUCKETS_MS
    assert insights.PROCESS_TYPE == element_history.PROCESS_TYPE
