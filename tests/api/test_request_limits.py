"""Request bodies are capped before they are read, JSON is capped in depth, and every error under
/api/ answers as problem+json, Django's own refusals included."""

import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, RequestFactory
from rest_framework.authtoken.models import Token

from api.errors import bad_request, csrf_failure, permission_denied, server_error
from engine.exceptions import InvalidInput
from engine.models import ProcessInstance
from engine.services import (
    broadcast_signal,
    complete_human_task,
    correlate_message,
    set_variables,
    start_instance,
)
from processes.models import Deployment
from tests.api.test_endpoints import problem
from tests.engine.service_fixtures import database_url, wait_until
from tests.helpers import build_bpmn, deploy_document

BASE_DIR = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024
VALIDATE = "/api/v1/deployments/validate/"
START = "/api/v1/definitions/expense_approval/start/"
UPLOAD_BYTES = 300 * MiB
MEMORY_BOUND = 100 * 1000 * 1000  # what the server may grow by while it refuses the upload


# --- measuring memory ------------------------------------------------------------------------


class PeakRss:
    """The resident memory of some processes, sampled in a thread every 2 ms: filling 300 MiB
    takes far longer than that, so a body read into memory cannot slip between two samples."""

    def __init__(self, processes: Callable[[], list[psutil.Process]]) -> None:
        self.processes = processes
        self.baseline = self._rss()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _rss(self) -> int:
        total = 0
        for process in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess):  # a worker that just ended
                total += process.memory_info().rss
        return total

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


def multipart_stream(size: int) -> tuple[str, Iterator[bytes], int]:
    """A multipart upload of one `size`-byte file, generated piece by piece (the same 1 MiB
    piece again and again, so the client, in this process too, holds no more than that)."""
    boundary = "baton-test-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
        'filename="huge.bpmn"\r\nContent-Type: application/xml\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    piece = b"<" * MiB

    def pieces() -> Iterator[bytes]:
        yield head
        for _ in range(size // MiB):
            yield piece
        yield tail

    return f"multipart/form-data; boundary={boundary}", pieces(), len(head) + size + len(tail)


@pytest.fixture
def designer_token(transactional_db, make_user) -> str:
    return Token.objects.create(user=make_user("dora_designer", "designers")).key


def test_a_300_mib_upload_is_refused_before_it_is_read(live_server, designer_token):
    content_type, body, length = multipart_stream(UPLOAD_BYTES)
    with PeakRss(lambda: [psutil.Process()]) as memory:
        response = httpx.post(
            live_server.url + VALIDATE,
            content=body,
            timeout=300,
            headers={
                "Content-Type": content_type,
                "Content-Length": str(length),
                "Authorization": f"Token {designer_token}",
            },
        )
    print(f"server memory growth refusing a 300 MiB upload: {memory.growth / MiB:.1f} MiB")
    assert response.status_code == 413, response.text[:300]
    assert response.headers["Content-Type"] == "application/problem+json"
    assert "BATON_MAX_DEPLOYMENT_BYTES" in response.json()["detail"]
    assert memory.growth < MEMORY_BOUND
    # The server serves on: it read at most a little of the refused body, then dropped it.
    assert (
        httpx.get(
            live_server.url + "/api/v1/definitions/",
            headers={"Authorization": f"Token {designer_token}"},
        ).status_code
        == 200
    )


def test_the_development_server_refuses_chunked_bodies(live_server, designer_token):
    """Django's server does not decode chunked bodies: Django would read them as empty."""
    response = httpx.post(
        live_server.url + VALIDATE,
        content=iter([b'{"bpmn_xml": "x"}']),
        headers={"Content-Type": "application/json", "Authorization": f"Token {designer_token}"},
    )
    assert response.status_code == 411
    assert response.headers["Content-Type"] == "application/problem+json"


# --- chunked bodies on the production server ---------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def gunicorn(transactional_db) -> Iterator[tuple[str, psutil.Process]]:
    """Baton under gunicorn (one sync worker), the server production uses; it decodes chunked
    bodies and tells the application so (wsgi.input_terminated)."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--timeout",
            "120",
        ],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert server.poll() is None, "gunicorn exited"
        with contextlib.suppress(httpx.TransportError):
            httpx.get(url + "/api/v1/definitions/", timeout=2)
            return True
        return False

    wait_until(answers, timeout=60, what="gunicorn to answer", poll=0.2)
    yield url, psutil.Process(server.pid)
    server.terminate()
    server.wait(timeout=30)


def test_a_chunked_body_is_read_up_to_its_cap(gunicorn, designer_token):
    url, _ = gunicorn
    body = json.dumps({"bpmn_xml": build_bpmn()}).encode()
    response = httpx.post(
        url + VALIDATE,
        content=iter([body[:100], body[100:]]),
        headers={"Content-Type": "application/json", "Authorization": f"Token {designer_token}"},
    )
    assert response.status_code == 200, response.text[:300]
    assert response.json()["valid"] is True


def test_a_300_mib_chunked_upload_is_refused_as_it_passes_the_cap(gunicorn, designer_token):
    url, master = gunicorn
    content_type, body, _ = multipart_stream(UPLOAD_BYTES)  # no length: sent chunked
    with PeakRss(lambda: [master, *master.children(recursive=True)]) as memory:
        response = httpx.post(
            url + VALIDATE,
            content=body,
            timeout=300,
            headers={"Content-Type": content_type, "Authorization": f"Token {designer_token}"},
        )
    print(
        f"gunicorn memory growth refusing a 300 MiB chunked upload: {memory.growth / MiB:.1f} MiB"
    )
    assert response.status_code == 413, response.text[:300]
    assert response.headers["Content-Type"] == "application/problem+json"
    assert memory.growth < MEMORY_BOUND
    assert not Deployment.objects.exists()


# A client that announces more than it sends: the refused body is drained for a little while, not
# until it ends (it may never end), and the server drops the connection after the 413.

TEN_GB = 10 * 1000 * 1000 * 1000


def answer_to(url: str, head: str, body: bytes = b"") -> tuple[http.client.HTTPResponse, bytes]:
    """Send `head` and `body` on a connection of its own and no more (not even the end of a
    chunked body); the response, and what came after it until the server closed the
    connection. The socket's timeout only keeps a server that never answers from hanging the
    run."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(head.encode() + body)
        response = http.client.HTTPResponse(sock)
        response.begin()
        response.read()
        after = sock.recv(1024)  # b"" once the server has closed the connection
    return response, after


def request_head(path: str, token: str, framing: str) -> str:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token {token}\r\n"
        f"Content-Type: application/json\r\n{framing}\r\n\r\n"
    )


@pytest.mark.parametrize(
    ("framing", "body"),
    [
        (f"Content-Length: {TEN_GB}", b"x" * 1000),  # announces 10 GB, sends a little
        (f"Content-Length: {TEN_GB}", b""),  # announces 10 GB, sends nothing
        # twice the 1 MiB cap of a JSON body, then nothing more: the body never ends
        ("Transfer-Encoding: chunked", f"{2 * MiB:x}\r\n".encode() + b"x" * (2 * MiB) + b"\r\n"),
    ],
    ids=["little-sent", "nothing-sent", "chunked-unfinished"],
)
def test_a_body_announced_but_not_sent_gets_its_413_and_the_connection_closes(
    gunicorn, designer_token, framing, body
):
    url, _ = gunicorn
    response, after = answer_to(url, request_head(START, designer_token, framing), body)
    assert response.status == 413
    assert response.getheader("Content-Type") == "application/problem+json"
    assert response.getheader("Connection") == "close"
    assert after == b""
    # The worker is free again.
    assert (
        httpx.get(
            url + "/api/v1/definitions/", headers={"Authorization": f"Token {designer_token}"}
        ).status_code
        == 200
    )


# --- caps and depth of JSON bodies ------------------------------------------------------------


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.fixture
def starter(db, api_client_for, make_user, expense_definition):
    return api_client_for(make_user("stan_starter"))


VARIABLES = {"amount": 80, "description": "Lunch", "requester": "bob"}


def test_a_json_body_over_its_cap_is_a_413_and_starts_nothing(starter, settings):
    settings.BATON_MAX_JSON_BYTES = 64 * 1024
    padding = "x" * (settings.BATON_MAX_JSON_BYTES + 1)
    response = starter.post(START, {"variables": {**VARIABLES, "note": padding}}, format="json")
    body = problem(response, 413)
    assert "BATON_MAX_JSON_BYTES" in body["detail"]
    assert str(settings.BATON_MAX_JSON_BYTES) in body["detail"]
    assert not ProcessInstance.objects.exists()
    fits = starter.post(START, {"variables": VARIABLES}, format="json")
    assert fits.status_code == 201


def test_a_body_over_django_s_own_limit_is_a_413_problem(starter, settings):
    """What used to be Django's HTML 400 (RequestDataTooBig), here through the idempotency
    check that reads the raw body."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = starter.post(
        START,
        {"variables": {**VARIABLES, "note": "x" * 2000}},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k-1",
    )
    problem(response, 413)
    assert not ProcessInstance.objects.exists()


@pytest.mark.parametrize("depth", [64, 5000])  # the body nests one level more
def test_deeply_nested_json_is_a_400_naming_the_limit(starter, depth):
    tree = "[" * depth + "1" + "]" * depth  # written out: json.dumps itself would recurse
    variables = json.dumps(VARIABLES)[:-1] + f', "tree": {tree}}}'
    response = starter.post(START, f'{{"variables": {variables}}}', content_type="application/json")
    body = problem(response, 400)
    assert "64 levels" in body["detail"] and "BATON_MAX_JSON_DEPTH" in body["detail"]
    assert not ProcessInstance.objects.exists()


def test_json_within_the_depth_limit_is_stored(starter):
    deploy_document(build_bpmn("open_start"))  # no start form: any variables are taken
    response = starter.post(
        "/api/v1/definitions/open_start/start/", {"variables": {"tree": nested(60)}}, format="json"
    )
    assert response.status_code == 201, response.content
    assert ProcessInstance.objects.get().variables["tree"] == nested(60)


def test_the_services_refuse_deeply_nested_variables_too(expense_definition, approver, make_user):
    """Every way in (web forms, commands, workers), not only the API's JSON parser."""
    deep = {"tree": nested(65)}
    instance = start_instance(key="expense_approval", variables=VARIABLES)
    task = instance.human_tasks.get()
    operator = make_user("olga_operator", "operators")
    attempts = {
        "start": lambda: start_instance(key="expense_approval", variables=deep),
        "complete": lambda: complete_human_task(task_id=task.pk, user=approver, variables=deep),
        "message": lambda: correlate_message(name="x", actor=operator, variables=deep),
        "signal": lambda: broadcast_signal(name="x", actor=operator, variables=deep),
        "edit": lambda: set_variables(instance_id=instance.pk, actor=operator, variables=deep),
    }
    for what, attempt in attempts.items():
        with pytest.raises(InvalidInput, match="nested deeper than 64 levels"):
            attempt()
        assert ProcessInstance.objects.count() == 1, what
    instance.refresh_from_db()
    task.refresh_from_db()
    assert task.status == "open" and "tree" not in instance.variables


# --- Django's own refusals under /api/ -----------------------------------------------------


@pytest.fixture
def designer_client(db, api_client_for, designer):
    return api_client_for(designer)


def test_a_host_that_is_not_allowed_is_a_400_problem(designer_client):
    problem(designer_client.get("/api/v1/definitions/", HTTP_HOST="evil.example"), 400)


def test_too_many_files_is_a_400_problem(designer_client, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 3
    files = [SimpleUploadedFile(f"f{i}.bpmn", build_bpmn().encode()) for i in range(4)]
    body = problem(designer_client.post(VALIDATE, {"files": files}, format="multipart"), 400)
    assert "3 files" in body["detail"]


def test_form_fields_over_django_s_memory_limit_are_a_413_problem(designer_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    files = [SimpleUploadedFile("a.bpmn", build_bpmn().encode())]
    response = designer_client.post(
        VALIDATE, {"files": files, "name": "n" * 5000}, format="multipart"
    )
    problem(response, 413)


def test_a_broken_multipart_body_is_a_400_problem(designer_client):
    response = designer_client.post(
        VALIDATE, b"--nothing\r\n", content_type="multipart/form-data; boundary="
    )
    problem(response, 400)


def test_wrong_methods_and_unknown_urls_are_problems(designer_client):
    problem(designer_client.put("/api/v1/messages/", {}, format="json"), 405)
    problem(designer_client.delete(VALIDATE), 405)
    problem(designer_client.get("/api/v1/no-such-thing/"), 404)
    problem(designer_client.get("/api/v1/instances/not-a-uuid/"), 404)


def test_a_session_request_without_its_csrf_token_is_a_403_problem(designer):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(designer)
    response = browser.post(VALIDATE, {"bpmn_xml": build_bpmn()}, content_type="application/json")
    body = problem(response, 403)
    assert "CSRF" in body["detail"]


@pytest.mark.parametrize(("path", "is_api"), [("/api/v1/definitions/", True), ("/tasks/", False)])
def test_the_error_views_answer_problems_under_api_only(db, path, is_api):
    """The views Django calls for its 400, 403, CSRF and 500 answers (set in config/urls.py
    and CSRF_FAILURE_VIEW)."""
    request = RequestFactory().post(path)
    answers = [
        (400, bad_request(request, ValueError("x"))),
        (403, permission_denied(request, PermissionError("x"))),
        (403, csrf_failure(request, reason="CSRF token missing.")),
        (500, server_error(request)),
    ]
    for status, response in answers:
        assert response.status_code == status
        is_problem = response["Content-Type"] == "application/problem+json"
        assert is_problem is is_api, (status, response["Content-Type"])


# --- integers too long for Python to convert ---------------------------------------------------


HUGE_INTEGER = "9" * 5000  # past Python's limit of 4300 digits for converting a decimal string


@pytest.mark.parametrize("url", [VALIDATE, "/api/v1/deployments/"])
def test_a_json_file_with_a_5000_digit_integer_is_reported_as_invalid_json(designer_client, url):
    upload = SimpleUploadedFile("f.json", f'{{\n  "limit": {HUGE_INTEGER}\n}}'.encode())
    body = problem(designer_client.post(url, {"files": [upload]}, format="multipart"), 400)
    (error,) = body["errors"]
    assert error["file"] == "f.json"
    assert error["message"].startswith("Invalid JSON:")
    assert "4300 digits" in error["message"]
    assert "sys.set_int_max_str_digits" not in error["message"]  # nothing to do with the sender
    assert not Deployment.objects.exists()


def test_a_json_body_with_a_5000_digit_integer_is_a_400_problem(starter):
    variables = json.dumps(VARIABLES)[:-1] + f', "big": {HUGE_INTEGER}}}'
    response = starter.post(START, f'{{"variables": {variables}}}', content_type="application/json")
    body = problem(response, 400)
    assert "4300 digits" in body["detail"]
    assert "sys.set_int_max_str_digits" not in body["detail"]
    assert not ProcessInstance.objects.exists()
