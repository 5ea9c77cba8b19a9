"""The jobs and queues API: operators list jobs with filters and cursor pages, requeue,
cancel and reschedule them (audited, with what cancel does to the instance), and read the
depth of each Celery queue (real Redis)."""

import datetime
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from engine.models import InstanceEvent, ProcessInstance, ServiceJob
from engine.services import retry_instance, start_instance
from processes.services import deploy
from processes.validation import UploadedFile
from tests.external_tasks import diagrams

pytestmark = pytest.mark.django_db
LIST = "/api/v1/jobs/"


def action(job: ServiceJob, name: str) -> str:
    return f"{LIST}{job.pk}/{name}/"


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


@pytest.fixture
def operator(make_user: Any) -> Any:
    return make_user("olga_operator", "operators")


@pytest.fixture
def ops(api_client_for: Any, operator: Any) -> Any:
    client = api_client_for(operator)
    client.default_format = "json"
    return client


def start_payments(count: int, *, topic: str = "payments.charge") -> list[ProcessInstance]:
    """Instances each waiting on an external task (a job no Celery worker runs)."""
    xml = diagrams.camunda7(key=f"pay_{topic.replace('.', '_')}", topic=topic)
    deploy(name="pay.bpmn", files=[UploadedFile("pay.bpmn", xml.encode())], actor=None)
    key = f"pay_{topic.replace('.', '_')}"
    return [start_instance(key=key, variables={"amount": n}, actor=None) for n in range(count)]


def job_of(instance: ProcessInstance) -> ServiceJob:
    return ServiceJob.objects.get(instance=instance)


def test_operators_list_jobs_with_filters_and_cursor_pages(ops: Any) -> None:
    charges = start_payments(5)
    [refund] = start_payments(1, topic="payments.refund")
    ServiceJob.objects.filter(instance=charges[0]).update(last_error="Card Declined by bank")

    first = ops.get(LIST, {"page_size": 2})
    assert first.status_code == 200, first.content
    seen = [row["id"] for row in first.json()["results"]]
    page = first.json()
    while page["next"]:
        page = ops.get(page["next"]).json()
        seen += [row["id"] for row in page["results"]]
    assert len(seen) == len(set(seen)) == 6

    refunds = ops.get(LIST, {"connector": "payments.refund"}).json()["results"]
    assert [row["instance"] for row in refunds] == [str(refund.pk)]
    assert refunds[0]["definition"] == "pay_payments_refund"
    by_instance = ops.get(LIST, {"instance": str(charges[1].pk)}).json()["results"]
    assert [row["instance"] for row in by_instance] == [str(charges[1].pk)]
    by_error = ops.get(LIST, {"error": "declined"}).json()["results"]
    assert [row["instance"] for row in by_error] == [str(charges[0].pk)]
    assert len(ops.get(LIST, {"status": "pending,dead"}).json()["results"]) == 6
    assert ops.get(LIST, {"status": "succeeded"}).json()["results"] == []
    assert ops.get(LIST, {"connection": "crm"}).json()["results"] == []


def test_bad_filters_and_bodies_are_problems(ops: Any) -> None:
    [instance] = start_payments(1)
    job = job_of(instance)
    assert {e["field"] for e in problem(ops.get(LIST, {"status": "lost"}), 400)["errors"]} == {
        "status"
    }
    problem(ops.get(LIST, {"instance": "not-a-uuid"}), 400)
    problem(ops.post(action(job, "due"), {"due_at": "tomorrow"}), 400)
    problem(ops.post(action(job, "due"), {}), 400)
    problem(ops.get(LIST, {"page_size": "0"}), 400)
    problem(ops.get(LIST, {"page_size": "null"}), 400)
    problem(ops.post(f"{LIST}00000000-0000-0000-0000-000000000000/requeue/"), 404)
    job.refresh_from_db()
    assert job.status == "pending"
    assert not instance.events.filter(type__startswith="job_").exists()


def test_only_operators_see_and_change_jobs_and_queues(api_client_for: Any, make_user: Any) -> None:
    [instance] = start_payments(1)
    job = job_of(instance)
    designer = api_client_for(make_user("dora", "designers"))
    for response in (
        designer.get(LIST),
        designer.get("/api/v1/queues/"),
        designer.post(action(job, "requeue")),
        designer.post(action(job, "cancel"), {}, format="json"),
        designer.post(action(job, "due"), {"due_at": None}, format="json"),
    ):
        problem(response, 403)
    problem(api_client_for(None).get(LIST), 401)
    job.refresh_from_db()
    assert job.status == "pending"


def test_cancel_puts_the_instance_in_incident_and_requeue_sends_it_again(
    ops: Any, operator: Any
) -> None:
    [instance] = start_payments(1)
    job = job_of(instance)

    cancelled = ops.post(action(job, "cancel"), {"reason": "wrong amount"})
    assert cancelled.status_code == 200, cancelled.content
    assert cancelled.json()["status"] == "dead"
    assert cancelled.json()["error_code"] == "CANCELLED_BY_OPERATOR"
    instance.refresh_from_db()
    assert instance.status == "incident"
    assert instance.incident is not None
    assert "Cancelled by operator olga_operator: wrong amount" in instance.incident["error"]
    event = instance.events.get(type="job_cancelled")
    assert (event.actor, event.payload["was"]) == (operator, "pending")
    problem(ops.post(action(job, "cancel")), 409)  # dead already
    problem(ops.post(action(job, "due"), {"due_at": None}), 409)

    requeued = ops.post(action(job, "requeue"))
    assert requeued.status_code == 200, requeued.content
    assert requeued.json()["status"] == "pending"
    instance.refresh_from_db()
    assert instance.status == "waiting" and instance.incident is None
    assert instance.events.filter(type="job_requeued", actor=operator).exists()
    assert instance.events.filter(type="job_retried", actor=operator).exists()


def test_a_cancelled_job_is_retried_with_its_instance(ops: Any, operator: Any) -> None:
    [instance] = start_payments(1)
    job = job_of(instance)
    assert ops.post(action(job, "cancel")).status_code == 200
    retry_instance(instance_id=str(instance.pk), actor=operator)
    job.refresh_from_db()
    instance.refresh_from_db()
    assert (job.status, instance.status) == ("pending", "waiting")


def test_due_moves_the_next_attempt_and_is_audited(ops: Any, operator: Any) -> None:
    [instance] = start_payments(1)
    job = job_of(instance)
    later = timezone.now() + datetime.timedelta(hours=2)
    moved = ops.post(action(job, "due"), {"due_at": later.isoformat()})
    assert moved.status_code == 200, moved.content
    job.refresh_from_db()
    assert job.next_attempt_at == later
    # Not due: a worker that fetches now does not get it.
    assert not ServiceJob.objects.filter(pk=job.pk, next_attempt_at__lte=timezone.now()).exists()
    event = instance.events.get(type="job_due_changed")
    assert event.actor == operator and event.payload["to"] == later.isoformat()
    assert ops.post(action(job, "requeue")).status_code == 200
    job.refresh_from_db()
    assert job.next_attempt_at <= timezone.now()
    assert InstanceEvent.objects.filter(instance=instance, type="job_requeued").count() == 1


def test_jobs_of_a_finished_instance_cannot_change(ops: Any, operator: Any) -> None:
    from engine.services import terminate_instance

    [instance] = start_payments(1)
    job = job_of(instance)
    terminate_instance(instance_id=str(instance.pk), actor=operator, reason="test")
    problem(ops.post(action(job, "requeue")), 409)
    problem(ops.post(action(job, "cancel")), 409)


def test_queue_depths_count_the_brokers_messages(ops: Any) -> None:
    from celery import current_app

    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    with current_app.connection_for_write() as connection:
        client = connection.default_channel.client
        client.delete(queue)
        body = ops.get("/api/v1/queues/")
        assert body.status_code == 200, body.content
        rows = {row["role"]: row for row in body.json()}
        assert rows["jobs"]["name"] == queue and rows["jobs"]["messages"] == 0
        assert rows["events"]["name"] == settings.BATON_EVENTS_QUEUE
        [instance] = start_payments(1)  # an external task: no message
        job = job_of(instance)
        ServiceJob.objects.filter(pk=job.pk).update(kind="connector")
        current_app.send_task("baton.run_service_job", args=[str(job.pk)], queue=queue)
        current_app.send_task("baton.run_service_job", args=[str(job.pk)], queue=queue)
        rows = {row["role"]: row for row in ops.get("/api/v1/queues/").json()}
        assert rows["jobs"]["messages"] == 2
        assert rows["jobs"]["age_source"] == "broker"
        assert rows["jobs"]["oldest_age_seconds"] >= 0
        assert rows["jobs"]["pending_jobs"] == 1
        client.delete(queue)
