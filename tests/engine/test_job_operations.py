"""An operator's requeue, cancel and due-time change of connector jobs, with a real Celery
worker, the real broker and an HTTP API on 127.0.0.1."""

import pytest
from django.contrib.auth.models import Group, User

from engine.models import ProcessInstance, ServiceJob
from engine.services import start_instance
from engine.services.job_operations import cancel_job, requeue_job, set_job_due
from processes.services import deploy
from processes.validation import UploadedFile
from tests.engine.service_diagrams import sequence, service_task
from tests.engine.service_fixtures import FakeApi, Reply, Workers, settle, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def backing_off(fake_api: FakeApi, key: str) -> tuple[ProcessInstance, ServiceJob]:
    """An instance whose job failed once (503) and waits an hour for its next attempt; the
    API answers 200 from now on."""
    fake_api.reply(f"/{key}", Reply(503), Reply(200, {"ok": True}))
    xml = sequence(key, [service_task("call", f'api + "/{key}"', retry_cycle="R3/PT1H")])
    deploy(name=key, files=[UploadedFile(f"{key}.bpmn", xml.encode())], actor=None)
    instance = start_instance(key=key, variables={"api": fake_api.base_url})
    job = ServiceJob.objects.get(instance=instance)

    def failed_once() -> bool:
        job.refresh_from_db()
        return job.status == "pending" and job.attempt == 1

    wait_until(failed_once, what="the first attempt to fail")
    return instance, job


def operator() -> User:
    user = User.objects.create_user("olga")
    user.groups.add(Group.objects.get_or_create(name="operators")[0])
    return user


def test_due_now_runs_a_backing_off_job_at_once(celery_workers: Workers, fake_api: FakeApi) -> None:
    instance, job = backing_off(fake_api, "due_now")
    set_job_due(job_id=job.pk, actor=operator(), due_at=None)
    assert settle(instance).status == "completed"
    job.refresh_from_db()
    assert (job.status, job.attempt) == ("succeeded", 2)


def test_a_cancelled_job_is_an_incident_and_requeue_completes_it(
    celery_workers: Workers, fake_api: FakeApi
) -> None:
    instance, job = backing_off(fake_api, "cancel_then_requeue")
    olga = operator()
    cancel_job(job_id=job.pk, actor=olga, reason="checking the API")
    assert settle(instance).status == "incident"
    assert instance.incident is not None and "checking the API" in instance.incident["error"]
    requeue_job(job_id=job.pk, actor=olga)
    assert settle(instance).status == "completed"
    job.refresh_from_db()
    assert job.status == "succeeded"
    assert job.history[-1]["retried_by"] == "olga"
