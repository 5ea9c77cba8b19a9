"""What the benchmarks in `bench/` share: logging, percentiles, options, their own database,
the environment and web server of the Django processes they start, plain SpiffWorkflow for
comparison, CPU time, and the main every benchmark runs.

Postgres and Redis: whatever DATABASE_URL / CELERY_BROKER_URL name, otherwise embedded ones
under `.data/` (--data-dir). Either way a benchmark uses its own database on that server,
dropped and recreated at every start, so development data is never touched. Everything a
benchmark starts is stopped at the end, on error and on Ctrl-C (or SIGTERM). Each prints ONE
JSON object to stdout; progress goes to stderr.
"""

import argparse
import contextlib
import copy
import json
import math
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parent.parent
SETTINGS_MODULE = "config.settings.prod"
STOP_TIMEOUT_SECONDS = 15


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of a non-empty ascending list."""
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def latency_summary(seconds: list[float]) -> dict[str, float | None]:
    """Milliseconds; all None when nothing succeeded (JSON has no NaN)."""
    values = sorted(seconds)
    if not values:
        return {"p50": None, "p95": None, "max": None, "mean": None}
    return {
        "p50": round(percentile(values, 50) * 1000, 2),
        "p95": round(percentile(values, 95) * 1000, 2),
        "max": round(values[-1] * 1000, 2),
        "mean": round(sum(values) / len(values) * 1000, 2),
    }


def argument_parser(doc: str, data_dir: str) -> argparse.ArgumentParser:
    """A benchmark's options, starting with where embedded Postgres/Redis keep their data."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=BASE_DIR / ".data" / data_dir)
    return parser


# --------------------------------------------------------------------------------------------
# The benchmark's own database


def recreate_database(url: str, database: str) -> str:
    """Drop and create `database` on the server `url` names; returns the server's version."""
    import psycopg
    from psycopg import sql

    # Connect to the database the URL names (when it exists), or else to `postgres`.
    named = urlsplit(url).path.lstrip("/")
    last_error: Exception | None = None
    for dbname in [name for name in (named, "postgres") if name not in ("", database)]:
        try:
            db = psycopg.connect(url, dbname=dbname, autocommit=True)
        except psycopg.OperationalError as error:
            last_error = error
            continue
        with db:
            name = sql.Identifier(database)
            db.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
            db.execute(sql.SQL("CREATE DATABASE {}").format(name))
            row = db.execute("SHOW server_version").fetchone()
            return str(row[0]) if row else "?"
    raise RuntimeError(f"cannot connect to the Postgres server of DATABASE_URL: {last_error}")


def django_env(database_url: str) -> dict[str, str]:
    """Production settings (DEBUG off), plain HTTP on 127.0.0.1, the benchmark database."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
        "DATABASE_URL": database_url,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DEBUG": "0",
        "SECURE_SSL_REDIRECT": "0",
        "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
        # The benchmarks' own APIs listen on 127.0.0.1, which production refuses unless listed.
        "BATON_HTTP_ALLOW": "127.0.0.1",
        "PYTHONUNBUFFERED": "1",
    }


def prepare_database(database: str) -> tuple[dict[str, str], str]:
    """`database` recreated on the server DATABASE_URL names: the environment of the Django
    processes that use it, and the server's version."""
    url = os.environ["DATABASE_URL"]
    version = recreate_database(url, database)
    log(f"database {database} recreated (Postgres {version}); migrating")
    return django_env(urlunsplit(urlsplit(url)._replace(path=f"/{database}"))), version


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --------------------------------------------------------------------------------------------
# Services and processes


@contextlib.contextmanager
def services(data_dir: Path) -> Iterator[Any]:
    """Postgres/Redis from the environment, or embedded ones for whatever it leaves unset.
    Yields the `config.embedded.EmbeddedServices` (its `postgres`/`redis` are None when the
    environment named real servers)."""
    from config.embedded import EmbeddedServices

    with EmbeddedServices(data_dir) as embedded:
        if embedded.started:
            log(f"embedded {' and '.join(embedded.started)} running under {data_dir}")
        yield embedded


def database_label(embedded: Any) -> str:
    return "embedded Postgres (pgserver)" if embedded.postgres is not None else "Postgres"


def stop_process_group(process: subprocess.Popen[Any] | None, name: str) -> None:
    """SIGTERM a child started with `start_new_session=True`, wait, then SIGKILL its session."""
    if process is None:
        return
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            log(f"{name} did not stop in time; killing it")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # stragglers of its session
    process.wait()


def gunicorn_version() -> str:
    try:
        import gunicorn
    except ImportError:
        raise SystemExit("gunicorn is not installed: .venv/bin/pip install -e '.[dev]'") from None
    return str(gunicorn.__version__)


def processes_label(sizing: Any) -> str:
    """What runs Baton in a benchmark, for its report: `make run`'s processes and sizes."""
    return (
        f"config/launch.py as `make run` starts it: gunicorn {gunicorn_version()} gthread, "
        f"{sizing.web_workers} workers x {sizing.web_threads} threads; jobs worker prefork "
        f"x {sizing.job_concurrency}; {SETTINGS_MODULE} (DEBUG off)"
    )


@contextlib.contextmanager
def web_server(
    data_dir: Path, database: str, setup: Callable[[dict[str, str]], str], **options: Any
) -> Iterator[tuple[Any, str, dict[str, str]]]:
    """Baton's web server as `make run` and production run it (config/launch.py; the prod
    settings) on the benchmark's own database, which `setup(env)` fills, returning an API
    token. Yields the server (a `tests.faults.stack.Baton`, with `options`), the token and what
    both are, for the report."""
    from tests.faults.stack import Baton  # which imports this module

    with services(data_dir) as embedded, tempfile.TemporaryDirectory() as log_dir:
        env, version = prepare_database(database)
        token = setup(env)
        server = Baton(env, Path(log_dir), **options)
        what = {
            "server": processes_label(server.sizing),
            "database": f"{database_label(embedded)} {version}, database {database}",
        }
        try:
            server.start_web()
            server.wait_ready()
            log(f"{what['server']} on {server.url}")
            yield server, token, what
        finally:
            server.stop()


# --------------------------------------------------------------------------------------------
# Starts: plain SpiffWorkflow in memory, and the loop that times any kind of start


def plain_spiffworkflow(
    diagrams: dict[str, str], variables: dict[str, Any], waiting_at: str
) -> Callable[[str], float]:
    """What a start through Baton does, with plain SpiffWorkflow in memory: each diagram parsed
    once; per start a new workflow, the start data, the engine steps, JSON serialization.
    Returns start(key) -> seconds, which refuses a workflow that did not stop at `waiting_at`
    as Baton's does (the comparison would be void)."""
    from SpiffWorkflow.bpmn import BpmnWorkflow
    from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
    from SpiffWorkflow.camunda.parser import CamundaParser
    from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG
    from SpiffWorkflow.util.task import TaskState

    serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(CAMUNDA_CONFIG))
    parser = CamundaParser()
    for key, xml in diagrams.items():
        parser.add_bpmn_str(xml.encode(), filename=f"{key}.bpmn")
    specs = {key: parser.get_spec(key) for key in diagrams}

    def start(key: str) -> float:
        began = time.perf_counter()
        workflow = BpmnWorkflow(specs[key])
        workflow.task_tree.data.update(copy.deepcopy(variables))
        workflow.do_engine_steps()
        serializer.serialize_json(workflow)
        elapsed = time.perf_counter() - began
        ready = [
            t.task_spec.bpmn_id for t in workflow.get_tasks(state=TaskState.READY, manual=True)
        ]
        if ready != [waiting_at]:
            raise RuntimeError(f"plain SpiffWorkflow stopped at {ready} in {key}")
        return elapsed

    return start


def timed_starts(
    start: Callable[[str], float], keys: list[str], count: int, warmup: int, label: str
) -> dict[str, list[float]]:
    """`count` starts of each key after `warmup` unmeasured ones, the keys alternating, one at a
    time: the seconds of each start, by key."""
    for _ in range(warmup):
        for key in keys:
            start(key)
    times: dict[str, list[float]] = {key: [] for key in keys}
    next_report = time.monotonic() + 5
    for index in range(count):
        for key in keys:
            times[key].append(start(key))
        if time.monotonic() >= next_report:
            log(f"{label}: {index + 1}/{count}")
            next_report = time.monotonic() + 5
    return times


# --------------------------------------------------------------------------------------------
# The main of every benchmark


def raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_benchmark(
    name: str,
    measure: Callable[[], dict[str, Any]],
    ok: Callable[[dict[str, Any]], bool] = lambda report: True,
) -> int:
    """Every benchmark's main: SIGTERM and Ctrl-C stop everything it started (`measure`
    cleans up on KeyboardInterrupt); prints ONE JSON object: the name, what `measure`
    returned, the machine and the total time. Exit code 0 when `ok(report)`."""
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    began = time.perf_counter()
    busy_before = machine_busy_percent()
    if busy_before > 20:
        log(f"warning: the machine is already {busy_before:.0f}% busy; figures will be off")
    try:
        report = {"benchmark": name, **measure()}
    except KeyboardInterrupt:
        log("interrupted; everything stopped")
        return 130
    except (subprocess.CalledProcessError, RuntimeError, AssertionError, OSError) as error:
        log(f"failed: {type(error).__name__}: {error}")
        return 1
    report["machine"] = {
        "cpus": os.cpu_count(),
        "busy_percent_before_start": busy_before,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    report["total_wall_seconds"] = round(time.perf_counter() - began, 1)
    print(json.dumps(report, default=str))
    return 0 if ok(report) else 1


# --------------------------------------------------------------------------------------------
# CPU time


def machine_busy_percent(seconds: float = 1.0) -> float:
    import psutil

    return float(psutil.cpu_percent(interval=seconds))


def postgres_backends(database: str) -> list[int]:
    """The Postgres backends serving `database` on this machine (their titles name it:
    "postgres: user baton_bench [local] idle"); a remote Postgres counts as nothing."""
    import psutil

    pids = []
    for process in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            title = " ".join(process.info["cmdline"] or [])
            if title.startswith("postgres:") and f" {database} " in title:
                pids.append(process.pid)
    return pids


class CpuMeter:
    """CPU seconds used by groups of processes (`roles`: name -> their pids now) and by the
    whole machine from construction to `usage()`; "other" is the rest of the machine. A
    process's children that ended count with it (reaped Postgres backends, pool processes)."""

    def __init__(self, roles: dict[str, Callable[[], list[int]]]) -> None:
        self.roles = roles
        self.began = time.perf_counter()
        self.first = self._snapshot()

    def _snapshot(self) -> tuple[float, dict[str, dict[int, float]]]:
        import psutil

        seconds: dict[str, dict[int, float]] = {}
        for role, pids in self.roles.items():
            seconds[role] = {}
            for pid in pids():
                with contextlib.suppress(psutil.Error):
                    times = psutil.Process(pid).cpu_times()
                    seconds[role][pid] = (
                        times.user + times.system + times.children_user + times.children_system
                    )
        machine = psutil.cpu_times()
        return sum(machine) - machine.idle - getattr(machine, "iowait", 0.0), seconds

    def usage(self, units: int, unit: str) -> dict[str, Any]:
        """Seconds and shares per role, and milliseconds per `unit` (a job, a request...)."""
        busy_after, after = self._snapshot()
        busy_before, before = self.first
        wall = time.perf_counter() - self.began

        def grown(old: dict[int, float], new: dict[int, float]) -> float:
            gone = sum(seconds for pid, seconds in old.items() if pid not in new)
            return sum(seconds - old.get(pid, 0.0) for pid, seconds in new.items()) - gone

        busy = busy_after - busy_before
        used = {role: grown(before[role], after[role]) for role in self.roles}
        used["other"] = busy - sum(used.values())
        return {
            "wall_seconds": round(wall, 2),
            "busy_percent_of_all_cpus": round(100 * busy / (wall * (os.cpu_count() or 1)), 1),
            "seconds": {role: round(value, 2) for role, value in used.items()},
            f"per_{unit}_ms": {
                role: round(value / max(units, 1) * 1000, 2) for role, value in used.items()
            },
            f"total_per_{unit}_ms": round(busy / max(units, 1) * 1000, 2),
        }
