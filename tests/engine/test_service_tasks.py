"""Service tasks end to end: a real Celery worker, the real broker, Postgres, and an HTTP API
on 127.0.0.1 (DESIGN sections 3 and 5)."""
import pytest
from django.contrib.auth.models import User

from engine.models import InstanceEvent, ProcessInstance, ServiceJob
from engine.services import retry_instance, start_instance
from processes.services import deploy
from processes.validation import UploadedFile
from tests.engine.service_diagrams import sequence, service_task
from tests.engine.service_fixtures import FakeApi, Reply, Workers, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def deploy_xml(key: str, xml: str) -> None:
    deploy(name=key, files=[UploadedFile(f"{key}.bpmn", xml.encode())], actor=None)


def finished(instance: ProcessInstance) -> bool:
    instance.refresh_from_db()
    return instance.status in ("completed", "incident", "terminated")


def event_types(instance: ProcessInstance) -> list[str]:
    return list(InstanceEvent.objects.filter(instance=instance).values_list("type", flat=True))


def test_success_maps_the_result_and_sends_an_idempotency_key(
    celery_workers: Workers, fake_api: FakeApi
) -> None:
    fake_api.reply("/score", Reply(body={"score": 712}))
    deploy_xml("svc_ok", sequence("svc_ok", [service_task(
        "check", 'api + "/score"', outputs={"score": 'result["body"]["score"]'},
    )]))
    instance = start_instance(key="svc_ok", variables={"api": fake_api.base_url})
    assert instance.status == "running"
    wait_until(lambda: finished(instance), what="the instance to finish")
    assert instance.status == "completed", instance.status
    assert instance.variables["score"] == 712
    job = ServiceJob.objects.get(instance=instance)
    assert (job.status, job.attempt, job.result["status"]) == ("succeeded", 1, 200)
    [request] = fake_api.requests_to("/score")
    assert request.headers["Idempotency-Key"] == job.idempotency_key
    assert event_types(instance)[-2:] == ["job_succeeded", "completed"]


def test_503_twice_then_200_takes_three_attempts(
    celery_workers: Workers, fake_api: FakeApi
) -> None:
    fake_api.reply("/flaky", Reply(503), Reply(503), Reply(200, {"n": 1}))
    deploy_xml("svc_flaky", sequence("svc_flaky", [service_task("call", 'api + "/flaky"')]))
    instance = start_instance(key="svc_flaky", variables={"api": fake_api.base_url})
    wait_until(lambda: finished(instance), what="the instance to finish")
    assert instance.status == "completed"
    job = ServiceJob.objects.get(instance=instance)
    assert (job.status, job.attempt) == ("succeeded", 3)
    assert len(fake_api.requests_to("/flaky")) == 3
    assert {r.headers["Idempotency-Key"] for r in fake_api.requests_to("/flaky")} == {
        job.idempotency_key
    }
    assert event_types(instance).count("job_failed") == 2
    assert instance.variables["call_result"]["body"] == {"n": 1}


def test_a_timeout_is_retried(celery_workers: Workers, fake_api: FakeApi) -> None:
    fake_api.reply("/slow", Reply(delay=2.0), Reply(body={"fast": True}))
    deploy_xml("svc_slow", sequence("svc_slow", [
        service_task("call", 'api + "/slow"', timeout=0.5, retry_cycle="R3/PT0.2S"),
    ]))
    instance = start_instance(key="svc_slow", variables={"api": fake_api.base_url})
    wait_until(lambda: finished(instance), what="the instance to finish")
    assert instance.status == "completed"
    failure = InstanceEvent.objects.get(instance=instance, type="job_failed")
    assert "Timed out" in failure.payload["error"]
    assert ServiceJob.objects.get(instance=instance).attempt == 2


def test_a_404_is_caught_by_a_boundary_error_event(
    celery_workers: Workers, fake_api: FakeApi
) -> None:
    fake_api.reply("/missing", Reply(404, {"detail": "no such customer"}))
    deploy_xml("svc_404", sequence(
        "svc_404", [service_task("lookup", 'api + "/missing"')], catch_error="HTTP_404",
    ))
    instance = start_instance(key="svc_404", variables={"api": fake_api.base_url})
    wait_until(lambda: finished(instance), what="the instance to finish")
    assert instance.status == "completed"
    assert instance.variables["handled"] is True
    assert instance.variables["error"]["code"] == "HTTP_404"
    assert instance.variables["error"]["details"]["body"] == {"detail": "no such customer"}
    job = ServiceJob.objects.get(instance=instance)
    assert (job.status, job.error_code, job.attempt) == ("failed", "HTTP_404", 1)


def test_an_uncaught_404_is_an_incident(celery_workers: Workers, fake_api: FakeApi) -> None:
    fake_api.reply("/gone", Reply(404))
    deploy_xml("svc_uncaught", sequence("svc_uncaught", [service_task("call", 'api + "/gone"')]))
    instance = start_instance(key="svc_uncaught", variables={"api": fake_api.base_url})
    wait_until(lambda: finished(instance), what="the incident")
    assert instance.status == "incident"
    job = ServiceJob.objects.get(instance=instance)
    assert (job.status, job.error_code) == ("dead", "HTTP_404")
    assert "incident" in event_types(instance)


def test_exhausted_retries_incident_then_retry_after_the_fix_completes(
    celery_workers: Workers, fake_api: FakeApi, client
) -> None:
    fake_api.reply("/down", Reply(503))
    deploy_xml("svc_down", sequence("svc_down", [
        service_task("call", 'api + "/down"', retry_cycle="R2/PT0.1S"),
    ]))
    instance = start_instance(key="svc_down", variables={"api": fake_api.base_url})
    wait_until(lambda: finished(instance), what="the incident")
    assert instance.status == "incident"
    job = ServiceJob.objects.get(instance=instance)
    assert (job.status, job.attempt) == ("dead", 2)
    assert "gave up after 2 attempts" in job.last_error

    operator = User.objects.create_user("olga", is_superuser=False)
    operator.groups.create(name="operators")
    fake_api.reply("/down", Reply(200, {"back": True}))
    retry_instance(instance_id=str(instance.id), actor=operator)
    wait_until(lambda: finished(instance), what="the retried instance to finish")
    assert instance.status == "completed"
    job.refresh_from_db()
    assert (job.status, job.attempt) == ("succeeded", 1)
    assert InstanceEvent.objects.get(instance=instance, type="job_retried").actor == operator
