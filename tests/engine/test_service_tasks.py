"""Service tasks end to end: a real Celery worker, the real broker, Postgres, and an HTTP API
on 127.0.0.1 (DESIGN sections 3 and 5)."""

import signal

import pytest
from celery import current_app
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone

from engine.models import InstanceEvent, ProcessInstance, ServiceJob
from engine.queueing import RUN_SERVICE_JOB
from engine.services import retry_instance, start_instance
from engine.services.job_runs import execute_service_job
from engine.services.job_sweep import sweep_service_jobs
from processes.services import deploy
from processes.validation import UploadedFile
from tests.engine.service_diagrams import parallel, sequence, service_task
from tests.engine.service_fixtures import (
    TEST_SECRET,
    FakeApi,
    Reply,
    Workers,
    task_finished,
    wait_until,
)

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
    deploy_xml(
        "svc_ok",
        sequence(
            "svc_ok",
            [
                service_task(
                    "check",
                    'api + "/score"',
                    outputs={"score": 'result["body"]["score"]'},
                )
            ],
        ),
    )
    instance = start_instance(key="svc_ok", variables={"api": fake_api.base_url})
    assert instance.status == "running"
    wait_until(lambda: finished(instance), what="the instance to finish")
    assert instance.status == "completed", instance.status
    assert instance.variables["score"] == 712
    job = ServiceJob.objects.get(instance=instance)
    assert job.result is not None
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
    deploy_xml(
        "svc_slow",
        sequence(
            "svc_slow",
            [
                service_task("call", 'api + "/slow"', timeout=0.5, retry_cycle="R3/PT0.2S"),
            ],
        ),
    )
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
    deploy_xml(
        "svc_404",
        sequence(
            "svc_404",
            [service_task("lookup", 'api + "/missing"')],
            catch_error="HTTP_404",
        ),
    )
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
    deploy_xml(
        "svc_down",
        sequence(
            "svc_down",
            [
                service_task("call", 'api + "/down"', retry_cycle="R2/PT0.1S"),
            ],
        ),
    )
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


def test_a_worker_killed_mid_call_runs_the_job_again_and_completes_once(
    celery_workers: Workers, fake_api: FakeApi
) -> None:
    fake_api.reply("/slow-once", Reply(delay=30.0), Reply(body={"done": True}))
    deploy_xml("svc_kill", sequence("svc_kill", [service_task("call", 'api + "/slow-once"')]))
    instance = start_instance(key="svc_kill", variables={"api": fake_api.base_url})
    wait_until(lambda: len(fake_api.requests_to("/slow-once")) == 1, what="the first call")
    for child in celery_workers.pool_children():
        child.send_signal(signal.SIGKILL)
    wait_until(lambda: finished(instance), timeout=60, what="the instance to finish")
    assert instance.status == "completed"
    job = ServiceJob.objects.get(instance=instance)
    assert (job.status, job.attempt) == ("succeeded", 2)
    calls = fake_api.requests_to("/slow-once")
    assert len(calls) == 2
    assert calls[0].headers["Idempotency-Key"] == calls[1].headers["Idempotency-Key"]
    types = event_types(instance)
    assert types.count("job_succeeded") == 1 and types.count("completed") == 1


def test_a_duplicated_job_message_changes_nothing(
    celery_workers: Workers, fake_api: FakeApi
) -> None:
    deploy_xml("svc_dup", sequence("svc_dup", [service_task("call", 'api + "/once"')]))
    instance = start_instance(key="svc_dup", variables={"api": fake_api.base_url})
    wait_until(lambda: finished(instance), what="the instance to finish")
    job = ServiceJob.objects.get(instance=instance)
    events_before = event_types(instance)
    state_before = instance.lock_version
    duplicates = [current_app.send_task(RUN_SERVICE_JOB, args=[str(job.id)]) for _ in range(2)]
    execute_service_job(str(job.id))  # and once more right here, in this process
    wait_until(
        lambda: all(task_finished(celery_workers, m.id) for m in duplicates),
        timeout=60,
        what="the workers to handle both duplicates",
    )
    instance.refresh_from_db()
    assert event_types(instance) == events_before
    assert instance.lock_version == state_before
    assert len(fake_api.requests_to("/once")) == 1


def test_fifty_instances_with_four_parallel_service_tasks_keep_every_result(
    celery_workers: Workers, fake_api: FakeApi
) -> None:
    for branch in range(1, 5):
        fake_api.reply(f"/branch{branch}", Reply(body={"branch": branch}))
    tasks = [
        service_task(
            f"call{b}", f'api + "/branch{b}"', outputs={f"r{b}": 'result["body"]["branch"]'}
        )
        for b in range(1, 5)
    ]
    deploy_xml("svc_par", parallel("svc_par", tasks))
    instances = [
        start_instance(key="svc_par", variables={"api": fake_api.base_url, "i": i})
        for i in range(50)
    ]
    ids = [i.id for i in instances]
    wait_until(
        lambda: ProcessInstance.objects.filter(id__in=ids, status="completed").count() == 50,
        timeout=120,
        what="50 parallel instances to complete",
    )
    results = [
        (i.variables.get("r1"), i.variables.get("r2"), i.variables.get("r3"), i.variables.get("r4"))
        for i in ProcessInstance.objects.filter(id__in=ids)
    ]
    assert results == [(1, 2, 3, 4)] * 50
    assert ServiceJob.objects.filter(instance_id__in=ids, status="succeeded").count() == 200


def test_a_secret_in_a_header_reaches_the_api_but_never_the_database_or_logs(
    celery_workers: Workers, fake_api: FakeApi
) -> None:
    fake_api.reply("/crm", Reply(body={"echo": "ok"}))
    deploy_xml(
        "svc_secret",
        sequence(
            "svc_secret",
            [
                service_task(
                    "call",
                    'api + "/crm"',
                    headers={"Authorization": "Bearer secret:CRM_TOKEN"},
                )
            ],
        ),
    )
    instance = start_instance(key="svc_secret", variables={"api": fake_api.base_url})
    wait_until(lambda: finished(instance), what="the instance to finish")
    assert instance.status == "completed"
    [request] = fake_api.requests_to("/crm")
    assert request.headers["Authorization"] == f"Bearer {TEST_SECRET}"
    job = ServiceJob.objects.get(instance=instance)
    assert job.parameters["headers"]["Authorization"] == "Bearer secret:CRM_TOKEN"
    with connection.cursor() as cursor:
        for table in (
            "engine_servicejob",
            "engine_processinstance",
            "engine_instanceevent",
            "engine_humantask",
            "processes_processdefinition",
        ):
            cursor.execute(
                f"SELECT count(*) FROM {table} t WHERE t::text LIKE %s",  # noqa: S608
                [f"%{TEST_SECRET}%"],
            )
            assert cursor.fetchone()[0] == 0, table
    assert TEST_SECRET not in celery_workers.log_text()


def test_the_sweep_enqueues_a_job_whose_message_was_lost(
    celery_workers: Workers, fake_api: FakeApi
) -> None:
    from config.celery import app

    deploy_xml("svc_lost", sequence("svc_lost", [service_task("call", 'api + "/lost"')]))
    queue = app.conf.task_default_queue
    app.conf.task_default_queue = "nobody-listens-here"  # the message goes nowhere
    try:
        instance = start_instance(key="svc_lost", variables={"api": fake_api.base_url})
    finally:
        app.conf.task_default_queue = queue
    assert ServiceJob.objects.get(instance=instance).status == "pending"
    # With no message in the job queue, a pending job a moment late lost its message.
    wait_until(lambda: sweep_service_jobs() == 1, what="the sweep to hand the job over again")
    wait_until(lambda: finished(instance), what="the swept job to finish")
    assert instance.status == "completed"


def test_the_sweep_takes_over_a_running_job_whose_worker_is_gone(
    celery_workers: Workers, fake_api: FakeApi
) -> None:
    deploy_xml("svc_gone", sequence("svc_gone", [service_task("call", 'api + "/gone-worker"')]))
    instance = start_instance(key="svc_gone", variables={"api": fake_api.base_url})
    wait_until(lambda: finished(instance), what="the first run")
    job = ServiceJob.objects.get(instance=instance)
    # Rewind: as if a worker had claimed the job a moment ago and died without a trace. Its
    # run lock is free, so it is taken over at once, however young the claim.
    ServiceJob.objects.filter(pk=job.pk).update(status="running", started_at=timezone.now())
    ProcessInstance.objects.filter(pk=instance.pk).update(status="running")
    # The first run's worker lets go of the run lock just after it committed the result, so
    # the instance may look finished a moment before: wait for the sweep to take over.
    wait_until(
        lambda: sweep_service_jobs() == 1,
        timeout=60,
        what="the sweep to take the job over once its run lock is free",
    )
    # The second run carries on to its end (and no worker is still writing when the test's
    # tables are flushed).
    wait_until(
        lambda: ServiceJob.objects.filter(pk=job.pk, attempt=2, status="succeeded").exists(),
        timeout=60,
        what="the second run to succeed",
    )
    assert len(fake_api.requests_to("/gone-worker")) == 2


def test_429_waits_for_retry_after(celery_workers: Workers, fake_api: FakeApi) -> None:
    fake_api.reply("/limited", Reply(429, headers={"Retry-After": "1"}), Reply(body={"ok": 1}))
    deploy_xml("svc_429", sequence("svc_429", [service_task("call", 'api + "/limited"')]))
    instance = start_instance(key="svc_429", variables={"api": fake_api.base_url})
    wait_until(lambda: finished(instance), what="the instance to finish")
    assert instance.status == "completed"
    failure = InstanceEvent.objects.get(instance=instance, type="job_failed")
    assert failure.payload["retry_in_seconds"] == 1.0
    first, second = fake_api.requests_to("/limited")
    assert second.received_at - first.received_at >= 0.9
