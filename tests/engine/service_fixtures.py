"""Real infrastructure for service-task tests: an HTTP API on 127.0.0.1 that answers as told,
and real Celery worker processes against the test database and the test broker."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote
from uuid import uuid4

import psutil
import pytest
from django.db import connection

from config.queues import events_queue
from tests.faults.stack import wait_until

__all__ = ["wait_until"]  # the tests of tests/engine import it from here

BASE_DIR = Path(__file__).resolve().parents[2]
TEST_SECRET = "s3cr3t-token-for-the-crm-7f1c"
# A secret whose URL, base64 and hex encodings all differ from it.
TEST_PASSWORD = "p@ss w/rd+&=é?-2b9f"
# In the workers' environment but not declared as a secret: diagrams must not reach it.
WORKER_SECRET_KEY = "worker-django-secret-key-not-a-connector-secret-91d0"


@dataclass
class Reply:
    status: int = 200
    body: Any = field(default_factory=lambda: {"ok": True})
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float = field(default_factory=time.monotonic)
    answered_at: float | None = None  # when the reply was written (monotonic)


class FakeApi:
    """Replies per path in order; the last reply of a path repeats. Unknown paths get 200."""

    def __init__(self) -> None:
        self.replies: dict[str, list[Reply]] = {}
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?")[0]
                record = Seen(self.command, self.path, dict(self.headers), body)
                with api.lock:
                    api.seen.append(record)
                    queue = api.replies.get(path) or [Reply()]
                    reply = queue.pop(0) if len(queue) > 1 else queue[0]
                time.sleep(reply.delay)
                # Before the reply leaves: the caller cannot have had it before this moment.
                record.answered_at = time.monotonic()
                # A reply with a Content-Type of its own sends a text body as it is.
                own_type = any(k.lower() == "content-type" for k in reply.headers)
                raw = own_type and isinstance(reply.body, str)
                payload = reply.body.encode() if raw else json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    if not own_type:
                        self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            do_GET = do_POST = do_PUT = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def reply(self, path: str, *replies: Reply) -> None:
        with self.lock:
            self.replies[path] = list(replies)

    def requests_to(self, path: str) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.path.split("?")[0] == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    api = FakeApi()
    yield api
    api.close()


def database_url() -> str:
    """The URL of the test database this session created, for processes we start."""
    db = connection.settings_dict
    host = db.get("HOST") or ""
    if host.startswith("/"):
        host = quote(host, safe="")
    user = quote(db.get("USER") or "", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{user}{password}@{host}{port}/{db['NAME']}"


# host:port of a service the workers count as Baton's own (BATON_OWN_SERVICES).
OWN_SERVICE_HOST, OWN_SERVICE_PORT = "127.0.0.2", 45432
OWN_SERVICE = f"{OWN_SERVICE_HOST}:{OWN_SERVICE_PORT}"


class Workers:
    def __init__(
        self, processes: list[subprocess.Popen[bytes]], logs: list[Path], metrics_dir: Path
    ) -> None:
        self.processes = processes
        self.logs = logs
        # Their Prometheus metrics (PROMETHEUS_MULTIPROC_DIR): /metrics reads them from here.
        self.metrics_dir = metrics_dir

    def log_text(self) -> str:
        return "\n".join(path.read_text(errors="replace") for path in self.logs)

    def pool_children(self) -> list[psutil.Process]:
        return [c for p in self.processes for c in psutil.Process(p.pid).children()]

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# The workers of this test session. conftest files of several test packages import the
# fixture, which makes one fixture per package: they share these workers, whose logs are
# then the only ones (and one queue never has two sets of consumers).
_session_workers: Workers | None = None


@pytest.fixture(scope="session")
def celery_workers(
    django_db_setup: None,
    django_db_blocker: Any,
    live_server: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Workers]:
    """Two Celery worker processes (prefork, 2 children each) on a queue of this session."""
    global _session_workers
    if _session_workers is not None:
        yield _session_workers
        return
    with django_db_blocker.unblock():
        url = database_url()
    _session_workers = _start_workers(url, live_server.url, tmp_path_factory)
    yield _session_workers
    _session_workers.stop()
    _session_workers = None


def _start_workers(url: str, live_url: str, tmp_path_factory: pytest.TempPathFactory) -> Workers:
    from django.conf import settings

    from config.celery import app

    # Diagrams reach "Baton itself" (the demo API) at the live server, here and on the workers.
    settings.BATON_BASE_URL = live_url
    queue = f"baton-test-{os.getpid()}"
    events = events_queue({"BATON_CELERY_QUEUE": queue})
    app.conf.task_default_queue = queue
    app.conf.task_routes = {name: {"queue": events} for name in settings.CELERY_TASK_ROUTES}
    # Celery keeps the routes it read at its first send: a test that sent a routed task
    # before these workers started would otherwise keep sending to the settings' queue.
    app.amqp.flush_routes()
    app.amqp.router = app.amqp.Router()
    logs_dir = tmp_path_factory.mktemp("workers")
    # The declared secret store, mounted as Docker and Kubernetes do: one file per secret.
    secrets_dir = tmp_path_factory.mktemp("secrets")
    (secrets_dir / "CRM_TOKEN").write_text(TEST_SECRET + "\n")
    (secrets_dir / "CRM_PASSWORD").write_text(TEST_PASSWORD)
    metrics_dir = tmp_path_factory.mktemp("metrics")
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "BATON_CELERY_QUEUE": queue,
        "BATON_RETRY_BASE_SECONDS": "0.2",
        "BATON_RETRY_MAX_SECONDS": "2",
        "BATON_BASE_URL": live_url,
        "BATON_SECRETS": str(secrets_dir),
        # A service of Baton's own that connectors must never reach (the outbound tests
        # listen there); named here, as the database and broker may be unix sockets.
        "BATON_OWN_SERVICES": OWN_SERVICE,
        "SECRET_KEY": WORKER_SECRET_KEY,
        "PYTHONUNBUFFERED": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        # Tests create connections and call them at once: no worker keeps an old list (the
        # host of a plain URL finds a connection made a moment ago).
        "BATON_CONNECTIONS_CACHE_SECONDS": "0",
    }
    processes, logs = [], []
    for index in (1, 2):
        log = logs_dir / f"worker{index}.log"
        logs.append(log)
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "config",
                    "worker",
                    "-P",
                    "prefork",
                    "-c",
                    "2",
                    "-n",
                    f"test{index}-{os.getpid()}@%h",
                    "-Q",
                    f"{queue},{events}",
                    "-l",
                    "info",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                ],
                cwd=BASE_DIR,
                env=env,
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
            )
        )
    workers = Workers(processes, logs, metrics_dir)

    def alive() -> None:
        if any(p.poll() is not None for p in processes):
            raise RuntimeError("a Celery worker exited:\n" + workers.log_text()[-3000:])

    try:
        wait_until(
            lambda: workers.log_text().count(" ready.") >= 2,
            timeout=90,
            what="the Celery workers to start",
            watch=alive,
            poll=0.2,
        )
    except (AssertionError, RuntimeError):
        workers.stop()
        raise
    return workers


def no_job_running() -> bool:
    """No worker holds the run lock of a job of this database: the session advisory lock a
    worker holds from its claim until the outcome is applied (engine/services)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND pid <> pg_backend_pid()"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        row = cursor.fetchone()
        return row is not None and row[0] == 0


def task_finished(workers: "Workers", task_id: str) -> bool:
    """A worker logged the end of the Celery task `task_id` (succeeded or failed)."""
    text = workers.log_text()
    return f"[{task_id}] succeeded" in text or f"[{task_id}] raised" in text


@contextmanager
def jobs_for_no_worker() -> Iterator[None]:
    """Jobs enqueued inside go to a queue no worker reads, for a test that runs them itself
    (`execute_service_job`) under settings of its own; the queue is deleted afterwards."""
    from config.celery import app

    queue, app.conf.task_default_queue = app.conf.task_default_queue, f"nobody-{uuid4().hex}"
    try:
        yield
    finally:
        unread, app.conf.task_default_queue = app.conf.task_default_queue, queue
        with app.connection_for_write() as conn:
            conn.default_channel.queue_delete(unread)


def settle(instance: Any) -> Any:
    """Wait until `instance` (a ProcessInstance) has completed, failed or ended; returns it."""

    def settled() -> bool:
        instance.refresh_from_db()
        return instance.status in ("completed", "incident", "terminated")

    wait_until(settled, what="the instance to settle")
    return instance
