"""Long-running calls: an http task with async_callback whose API answers 202 waits for the
API's callback on POST /api/v1/jobs/{id}/callback/ (a real HTTP server: live_server), or
for its timeout. Jobs run in this process (execute_service_job) against an API on 127.0.0.1."""

import datetime
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from xml.sax.saxutils import escape

import httpx
import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from engine.connectors.callbacks import callback_token
from engine.models import InstanceEvent, ProcessInstance, ServiceJob
from engine.selectors.wait_states import wait_states
from engine.services import resume_instance, retry_instance, start_instance, suspend_instance
from engine.services.job_callbacks import expire_callback_waits
from engine.services.job_outcomes import Outcome
from engine.services.job_runs import execute_service_job
from engine.services.job_sweep import sweep_service_jobs
from processes.services import deploy
from processes.validation import UploadedFile
from tests.engine.service_diagrams import HEADER
from tests.engine.service_fixtures import (
    WORKER_SECRET_KEY,
    FakeApi,
    Reply,
    Workers,
    jobs_for_no_worker,
    wait_until,
)

pytestmark = [pytest.mark.django_db(transaction=True)]


def diagram(
    key: str, *, catch: str | None = None, timeout: int = 3600, read_accepted: bool = True
) -> str:
    """start -> `call` (http, async_callback) -> end; with `catch`, an error boundary event
    with that code leads to `handled` (a script that sets handled = True). The output maps
    the callback's body to `answer` and (`read_accepted`) the 202's body to `accepted`."""
    entries = (
        '<camunda:entry key="notify">{{callback_url}}</camunda:entry>'
        '<camunda:entry key="order">${order}</camunda:entry>'
    )
    inputs = (
        '<camunda:inputParameter name="url">${api + "/jobs"}</camunda:inputParameter>'
        '<camunda:inputParameter name="method">POST</camunda:inputParameter>'
        '<camunda:inputParameter name="async_callback">${true}</camunda:inputParameter>'
        f'<camunda:inputParameter name="callback_timeout">${{{timeout}}}</camunda:inputParameter>'
        f'<camunda:inputParameter name="json"><camunda:map>{entries}</camunda:map>'
        "</camunda:inputParameter>"
        '<camunda:outputParameter name="answer">${result["body"]}</camunda:outputParameter>'
    )
    if read_accepted:
        inputs += (
            '<camunda:outputParameter name="accepted">${result["accepted"]["body"]}'
            "</camunda:outputParameter>"
        )
    boundary = ""
    if catch is not None:
        boundary = (
            '<bpmn:boundaryEvent id="on_error" attachedToRef="call">'
            '<bpmn:errorEventDefinition errorRef="err" /></bpmn:boundaryEvent>'
            '<bpmn:scriptTask id="handle" scriptFormat="python">'
            "<bpmn:script>handled = True</bpmn:script></bpmn:scriptTask>"
            '<bpmn:endEvent id="end_handled" />'
            '<bpmn:sequenceFlow id="fe1" sourceRef="on_error" targetRef="handle" />'
            '<bpmn:sequenceFlow id="fe2" sourceRef="handle" targetRef="end_handled" />'
        )
    errors = f'<bpmn:error id="err" name="Error" errorCode="{escape(catch)}" />' if catch else ""
    return (
        HEADER
        + errors
        + f'<bpmn:process id="{key}" isExecutable="true"><bpmn:startEvent id="start" />'
        '<bpmn:serviceTask id="call" name="Order pictures" camunda:type="external" '
        f'camunda:topic="http"><bpmn:extensionElements><camunda:inputOutput>{inputs}'
        "</camunda:inputOutput></bpmn:extensionElements></bpmn:serviceTask>"
        '<bpmn:endEvent id="end" />'
        '<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="call" />'
        '<bpmn:sequenceFlow id="f2" sourceRef="call" targetRef="end" />'
        f"{boundary}</bpmn:process></bpmn:definitions>"
    )


@pytest.fixture
def baton_url(live_server: Any, settings: Any) -> str:
    settings.BATON_BASE_URL = live_server.url
    return str(live_server.url)


def started(key: str, api: str, *, catch: str | None = None, timeout: int = 3600) -> ServiceJob:
    """Deploy, start and run the call once: the job of the instance, after its call."""
    xml = diagram(key, catch=catch, timeout=timeout)
    deploy(name=key, files=[UploadedFile(f"{key}.bpmn", xml.encode())], actor=None)
    with jobs_for_no_worker():
        instance = start_instance(key=key, variables={"api": api, "order": "A-17"})
    job = ServiceJob.objects.get(instance=instance)
    execute_service_job(str(job.id))
    job.refresh_from_db()
    return job


def post_callback(url: str, token: str | None, body: Any) -> httpx.Response:
    headers = {"Baton-Callback-Token": token} if token is not None else {}
    return httpx.post(url, json=body, headers=headers, timeout=30)


def events(instance: ProcessInstance) -> list[str]:
    return list(InstanceEvent.objects.filter(instance=instance).values_list("type", flat=True))


def test_a_202_waits_for_the_callback_which_completes_the_task_once(
    fake_api: FakeApi, baton_url: str, make_staff: Any, client: Client, api_client_for: Any
) -> None:
    fake_api.reply("/jobs", Reply(status=202, body={"ticket": 99}))
    job = started("cb_ok", fake_api.base_url)
    assert job.result == {
        "accepted": {
            "status": 202,
            "headers": {"content-type": "application/json"},
            "body": {"ticket": 99},
        }
    }
    instance = job.instance
    instance.refresh_from_db()
    assert job.status == "waiting" and instance.status == "waiting"
    [state] = wait_states(instance)
    assert state.kind == "service"
    assert state.text.startswith("waiting for callback from 127.0.0.1 since today")
    # The API's instance detail shows the job waiting, and until when.
    operator = make_staff("op", "operators")
    detail = api_client_for(operator).get(f"/api/v1/instances/{instance.pk}/")
    [shown] = detail.json()["jobs"]
    assert shown["status"] == "waiting" and shown["callback_until"]
    assert shown["queue_note"].startswith("for a callback until ")
    assert {
        "type": "service_job",
        "element_id": "call",
        "connector": "http",
        "job": str(job.id),
        "status": "waiting",
    } in detail.json()["waiting_for"]
    # The operator sees it on the admin's instance page, and finds it among the waiting.
    client.force_login(operator)
    page = client.get(reverse("admin:engine_processinstance_change", args=[instance.pk]))
    assert "waiting for callback from 127.0.0.1" in page.content.decode()
    listed = client.get(
        reverse("admin:engine_processinstance_changelist"), {"waiting_for": "service"}
    )
    assert str(instance.pk) in listed.content.decode()

    # The API was told where and with what to call back, in the headers and in the body.
    [seen] = fake_api.requests_to("/jobs")
    url = seen.headers["Baton-Callback-Url"]
    token = seen.headers["Baton-Callback-Token"]
    assert url == f"{baton_url}/api/v1/jobs/{job.id}/callback/"
    assert json.loads(seen.body) == {"notify": url, "order": "A-17"}

    answer = post_callback(url, token, {"pictures": ["a.png", "b.png"]})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"job": str(job.id), "status": "succeeded", "duplicate": False}
    instance.refresh_from_db()
    assert instance.status == "completed"
    assert instance.variables["answer"] == {"pictures": ["a.png", "b.png"]}
    assert instance.variables["accepted"] == {"ticket": 99}
    assert events(instance).count("job_awaiting_callback") == 1
    assert events(instance).count("job_callback_received") == 1

    # The same callback again (a retried delivery) changes nothing, and says so.
    again = post_callback(url, token, {"pictures": ["other.png"]})
    assert again.status_code == 200
    assert again.json() == {"job": str(job.id), "status": "succeeded", "duplicate": True}
    instance.refresh_from_db()
    assert instance.variables["answer"] == {"pictures": ["a.png", "b.png"]}
    assert events(instance).count("job_callback_received") == 1


def test_forged_missing_and_other_jobs_tokens_are_refused_and_change_nothing(
    fake_api: FakeApi, baton_url: str
) -> None:
    fake_api.reply("/jobs", Reply(status=202))
    job = started("cb_forged", fake_api.base_url)
    other = started("cb_forged_other", fake_api.base_url)
    url = f"{baton_url}/api/v1/jobs/{job.id}/callback/"
    answers = {
        "missing": post_callback(url, None, {"x": 1}),
        "forged": post_callback(url, "0.1." + "0" * 64, {"x": 1}),
        "garbage": post_callback(url, "not a token", {"x": 1}),
        "other job's": post_callback(url, callback_token(str(other.id), "0.1"), {"x": 1}),
        "another call's": post_callback(url, callback_token(str(job.id), "0.2"), {"x": 1}),
    }
    assert answers.pop("missing").status_code == 401
    assert {name: a.status_code for name, a in answers.items()} == {
        "forged": 403,
        "garbage": 403,
        "other job's": 403,
        "another call's": 409,
    }
    for answer in answers.values():
        assert answer.headers["content-type"] == "application/problem+json"
    job.refresh_from_db()
    assert job.status == "waiting" and job.callback_received_at is None
    assert "job_callback_received" not in events(job.instance)
    # An unknown job with a token made for it: 404 (a token never opens another job).
    unknown = "00000000-0000-4000-8000-000000000000"
    missing = post_callback(
        f"{baton_url}/api/v1/jobs/{unknown}/callback/", callback_token(unknown, "0.1"), {}
    )
    assert missing.status_code == 404


def test_an_error_callback_is_a_bpmn_error_and_a_failure_an_incident(
    fake_api: FakeApi, baton_url: str
) -> None:
    fake_api.reply("/jobs", Reply(status=202))
    job = started("cb_error", fake_api.base_url, catch="OUT_OF_STOCK")
    token = fake_api.requests_to("/jobs")[-1].headers["Baton-Callback-Token"]
    url = f"{baton_url}/api/v1/jobs/{job.id}/callback/"
    answer = post_callback(url, token, {"error_code": "OUT_OF_STOCK", "error_message": "none"})
    assert answer.status_code == 200, answer.text
    instance = ProcessInstance.objects.get(pk=job.instance_id)
    assert instance.status == "completed" and instance.variables.get("handled") is True

    job = started("cb_failure", fake_api.base_url)
    token = fake_api.requests_to("/jobs")[-1].headers["Baton-Callback-Token"]
    url = f"{baton_url}/api/v1/jobs/{job.id}/callback/"
    answer = post_callback(url, token, {"failure": "the printer is on fire"})
    assert answer.status_code == 200 and answer.json()["status"] == "dead"
    instance = ProcessInstance.objects.get(pk=job.instance_id)
    assert instance.status == "incident"
    assert "the printer is on fire" in str(instance.incident)


def test_no_callback_in_time_is_a_catchable_callback_timeout(
    fake_api: FakeApi, baton_url: str, clock: Any
) -> None:
    fake_api.reply("/jobs", Reply(status=202))
    caught = started("cb_timeout", fake_api.base_url, catch="CALLBACK_TIMEOUT", timeout=600)
    uncaught = started("cb_timeout_incident", fake_api.base_url, timeout=600)
    assert expire_callback_waits() == 0  # not due yet
    clock.advance(datetime.timedelta(seconds=601))
    assert expire_callback_waits() == 2

    instance = ProcessInstance.objects.get(pk=caught.instance_id)
    assert instance.status == "completed" and instance.variables.get("handled") is True
    assert "job_callback_timed_out" in events(instance)
    instance = ProcessInstance.objects.get(pk=uncaught.instance_id)
    assert instance.status == "incident" and "CALLBACK_TIMEOUT" in str(instance.incident)

    # The callback that comes too late is refused and changes nothing.
    token = fake_api.requests_to("/jobs")[-1].headers["Baton-Callback-Token"]
    late = post_callback(f"{baton_url}/api/v1/jobs/{uncaught.id}/callback/", token, {"x": 1})
    assert late.status_code == 409
    instance.refresh_from_db()
    assert instance.status == "incident"


def test_an_operators_retry_calls_again_with_a_new_token(
    fake_api: FakeApi, baton_url: str, clock: Any, make_user: Any
) -> None:
    fake_api.reply("/jobs", Reply(status=202))
    job = started("cb_retry", fake_api.base_url, timeout=60)
    first_token = fake_api.requests_to("/jobs")[-1].headers["Baton-Callback-Token"]
    clock.advance(datetime.timedelta(seconds=61))
    expire_callback_waits()
    with jobs_for_no_worker():
        retry_instance(instance_id=str(job.instance_id), actor=make_user("op", "operators"))
    # Due now by the moved clock; a claim asks Postgres's clock, which the test did not move.
    ServiceJob.objects.filter(pk=job.pk).update(next_attempt_at=None)
    execute_service_job(str(job.id))
    second_token = fake_api.requests_to("/jobs")[-1].headers["Baton-Callback-Token"]
    assert second_token != first_token
    url = f"{baton_url}/api/v1/jobs/{job.id}/callback/"
    assert post_callback(url, first_token, {"late": True}).status_code == 409
    assert post_callback(url, second_token, {"fresh": True}).status_code == 200
    instance = ProcessInstance.objects.get(pk=job.instance_id)
    assert instance.status == "completed" and instance.variables["answer"] == {"fresh": True}


def test_a_callback_while_suspended_is_applied_on_resume(
    fake_api: FakeApi, baton_url: str, make_user: Any
) -> None:
    fake_api.reply("/jobs", Reply(status=202))
    job = started("cb_suspended", fake_api.base_url)
    operator = make_user("op", "operators")
    suspend_instance(instance_id=job.instance_id, actor=operator)
    token = fake_api.requests_to("/jobs")[-1].headers["Baton-Callback-Token"]
    url = f"{baton_url}/api/v1/jobs/{job.id}/callback/"
    assert post_callback(url, token, {"done": 1}).status_code == 200
    instance = ProcessInstance.objects.get(pk=job.instance_id)
    assert instance.status == "suspended"
    assert post_callback(url, token, {"done": 2}).json()["duplicate"] is True
    with jobs_for_no_worker():
        resume_instance(instance_id=job.instance_id, actor=operator)
    instance.refresh_from_db()
    assert instance.status == "completed" and instance.variables["answer"] == {"done": 1}


class QuickApi:
    """An API that calls back before it answers 202: the callback reaches Baton while the
    worker still holds the call (the job is running, not yet waiting). Its 202 echoes the
    token it was given."""

    def __init__(self) -> None:
        self.callback_status: list[int] = []
        self.call_back = True
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                token = self.headers["Baton-Callback-Token"]
                if api.call_back:
                    url = self.headers["Baton-Callback-Url"]
                    answer = post_callback(url, token, {"quick": True})
                    api.callback_status.append(answer.status_code)
                body = json.dumps({"received": f"with token {token}"}).encode()
                self.send_response(202)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"


@pytest.fixture
def quick_api() -> Iterator[QuickApi]:
    api = QuickApi()
    yield api
    api.server.shutdown()
    api.server.server_close()


def test_a_callback_before_the_202_is_recorded_is_not_lost(
    quick_api: QuickApi, baton_url: str
) -> None:
    job = started("cb_quick", quick_api.base_url)
    assert quick_api.callback_status == [200]
    assert job.status == "succeeded"
    instance = ProcessInstance.objects.get(pk=job.instance_id)
    assert instance.status == "completed" and instance.variables["answer"] == {"quick": True}
    assert instance.variables["accepted"] == {"received": "with token ***"}


def test_a_token_the_api_echoes_is_not_stored(quick_api: QuickApi, baton_url: str) -> None:
    quick_api.call_back = False
    job = started("cb_echo", quick_api.base_url)
    assert job.status == "waiting"
    assert job.result == {
        "accepted": {
            "status": 202,
            "headers": {"content-type": "application/json"},
            "body": {"received": "with token ***"},
        }
    }


def test_without_async_callback_a_202_is_an_answer(fake_api: FakeApi) -> None:
    fake_api.reply("/plain", Reply(status=202, body={"queued": True}))
    xml = diagram("cb_plain").replace(
        '<camunda:inputParameter name="async_callback">${true}</camunda:inputParameter>', ""
    )
    xml = xml.replace('api + "/jobs"', 'api + "/plain"').replace(
        '<camunda:outputParameter name="accepted">${result["accepted"]["body"]}'
        "</camunda:outputParameter>",
        "",
    )
    deploy(name="cb_plain", files=[UploadedFile("cb_plain.bpmn", xml.encode())], actor=None)
    with jobs_for_no_worker():
        instance = start_instance(key="cb_plain", variables={"api": fake_api.base_url, "order": 1})
    job = ServiceJob.objects.get(instance=instance)
    execute_service_job(str(job.id))
    instance.refresh_from_db()
    assert instance.status == "completed" and instance.variables["answer"] == {"queued": True}
    assert "Baton-Callback-Token" not in fake_api.requests_to("/plain")[0].headers


@pytest.mark.slow
def test_with_real_workers_the_callback_completes_the_task(
    celery_workers: Workers, fake_api: FakeApi, settings: Any
) -> None:
    """The whole way: a Celery worker calls the API and parks the job on its 202; the API's
    callback over HTTP completes the task. Web and workers share SECRET_KEY, as they must."""
    settings.SECRET_KEY = WORKER_SECRET_KEY
    fake_api.reply("/jobs", Reply(status=202, body={"ticket": 5}))
    deploy(
        name="cb_workers",
        files=[UploadedFile("cb_workers.bpmn", diagram("cb_workers").encode())],
        actor=None,
    )
    instance = start_instance(key="cb_workers", variables={"api": fake_api.base_url, "order": 3})
    job = ServiceJob.objects.get(instance=instance)

    def parked() -> bool:
        job.refresh_from_db()
        return job.status == "waiting"

    wait_until(parked, what="the job to wait for its callback")
    [seen] = fake_api.requests_to("/jobs")
    answer = post_callback(
        seen.headers["Baton-Callback-Url"], seen.headers["Baton-Callback-Token"], {"done": 3}
    )
    assert answer.status_code == 200, answer.text
    instance.refresh_from_db()
    assert instance.status == "completed" and instance.variables["answer"] == {"done": 3}


def test_a_bad_callback_timeout_is_refused_before_the_call(fake_api: FakeApi) -> None:
    fake_api.reply("/jobs", Reply(status=202))
    job = started("cb_bad_timeout", fake_api.base_url, timeout=0)
    assert job.status == "dead" and "HTTP_BAD_PARAMETERS" in job.last_error
    assert fake_api.requests_to("/jobs") == []


def test_a_call_answered_by_its_callback_is_not_made_again_after_a_worker_died(
    fake_api: FakeApi,
) -> None:
    """The API called back before the worker recorded its 202, and then the worker died: the
    sweep hands the job over again, and the next worker applies the callback instead of
    calling the API a second time."""
    xml = diagram("cb_died", read_accepted=False)  # the dead worker's 202 answer is lost
    deploy(name="cb_died", files=[UploadedFile("cb_died.bpmn", xml.encode())], actor=None)
    with jobs_for_no_worker():
        instance = start_instance(key="cb_died", variables={"api": fake_api.base_url, "order": 1})
    # The state the dead worker left: running, its call answered by the early callback.
    early = Outcome(result={"body": {"early": True}, "accepted": None}).stored()
    ServiceJob.objects.filter(instance=instance).update(
        status="running",
        attempt=1,
        result={"early_callback": early},
        callback_received_at=timezone.now(),
    )
    with jobs_for_no_worker():
        assert sweep_service_jobs() == 1
    execute_service_job(str(ServiceJob.objects.get(instance=instance).id))
    instance.refresh_from_db()
    assert instance.status == "completed" and instance.variables["answer"] == {"early": True}
    assert fake_api.requests_to("/jobs") == []


def test_a_callback_after_a_transient_error_of_the_same_call_is_applied_not_called_again(
    fake_api: FakeApi, baton_url: str
) -> None:
    """The API accepted the work, but the worker's read timed out (a transient error: the job
    is pending for its next attempt, with the same call number); the API's callback comes
    then. It is kept, and the next attempt applies it instead of calling again."""
    xml = diagram("cb_after_timeout", read_accepted=False)
    deploy(
        name="cb_after_timeout",
        files=[UploadedFile("cb_after_timeout.bpmn", xml.encode())],
        actor=None,
    )
    with jobs_for_no_worker():
        instance = start_instance(
            key="cb_after_timeout", variables={"api": fake_api.base_url, "order": 1}
        )
    # The state the timed-out attempt left: pending, due after its backoff.
    ServiceJob.objects.filter(instance=instance).update(
        status="pending",
        attempt=1,
        last_error="Timed out after 10 s: POST http://127.0.0.1/jobs",
        next_attempt_at=timezone.now() + datetime.timedelta(minutes=5),
    )
    job = ServiceJob.objects.get(instance=instance)
    with jobs_for_no_worker():
        answer = post_callback(
            f"{baton_url}/api/v1/jobs/{job.id}/callback/",
            callback_token(str(job.id), "0.1"),
            {"done": True},
        )
    assert answer.status_code == 200, answer.text
    execute_service_job(str(job.id))
    instance.refresh_from_db()
    assert instance.status == "completed" and instance.variables["answer"] == {"done": True}
    assert fake_api.requests_to("/jobs") == []
