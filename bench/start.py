"""Benchmark: starting process instances and completing user tasks through Baton's REST API vs
plain SpiffWorkflow.

    .venv/bin/python bench/start.py [--instances 500] [--threads 8] [--completions 200]
                                    [--metrics] [--database NAME]

Starts N instances of the example expense approval (a script task, then a user task) with
`POST /api/v1/definitions/expense_approval/start/` from --threads client threads (the goal:
400/s with 8 on 2 cores), then completes --completions of their user tasks with
`POST /api/v1/tasks/{id}/complete/` (approve: a gateway, a script task, the end), one request
at a time from one client (the goal: p50 <= 10 ms). The server is Baton's web server exactly
as `make run` starts it (config/launch.py, sized for this machine; WEB_WORKERS and WEB_THREADS
override as for `make run`), with the production settings. Plain SpiffWorkflow does the same
work in memory in the same run: per start parse once, new workflow, start data, engine steps,
serialize to JSON; per completion restore from JSON, complete the task, engine steps,
serialize.
Its own database: `baton_bench` (see bench/common.py), or --database. With --metrics the
server runs with Prometheus's multiprocess directory (as `make run` and a deployment with
metrics do), and the report adds what /metrics counted, to measure what metrics cost.
"""

import argparse
import os
import secrets
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (
    BASE_DIR,
    CpuMeter,
    argument_parser,
    gunicorn_version,
    latency_summary,
    log,
    plain_spiffworkflow,
    postgres_backends,
    run_benchmark,
    timed_starts,
    web_server,
)
from tests.faults.stack import migrate_and_deploy

PROCESS_KEY = "expense_approval"
BPMN_FILE = BASE_DIR / "processes" / "bpmn" / "expense_approval.bpmn"
START_VARIABLES = {"amount": 250, "description": "Team dinner", "requester": "bench"}
BENCH_DATABASE = "baton_bench"


class LoadGenerator:
    """Client threads, each with one keep-alive httpx client kept across warm-up and
    measurement, starting instances as fast as the server answers."""

    def __init__(self, base_url: str, token: str, threads: int) -> None:
        self.headers = {"Authorization": f"Token {token}"}
        self.base_url = base_url
        self.path = f"/api/v1/definitions/{PROCESS_KEY}/start/"
        self.pool = ThreadPoolExecutor(threads)
        self.local = threading.local()
        self.clients: list[httpx.Client] = []
        self.error_samples: list[str] = []
        self.task_ids: list[str] = []  # the user task of every instance started

    def close(self) -> None:
        """Let requests in flight finish (on Ctrl-C too), then close the connections."""
        self.pool.shutdown(wait=True, cancel_futures=True)
        for client in self.clients:
            client.close()

    def _start_one(self, _: int) -> tuple[float, str | None]:
        """Seconds, and an error unless the instance started and waits at the user task."""
        if not hasattr(self.local, "client"):
            client = httpx.Client(base_url=self.base_url, headers=self.headers, timeout=60)
            self.local.client = client
            self.clients.append(self.local.client)
        began = time.perf_counter()
        try:
            response = self.local.client.post(self.path, json={"variables": START_VARIABLES})
        except httpx.HTTPError as error:
            return time.perf_counter() - began, f"{type(error).__name__}: {error}"
        elapsed = time.perf_counter() - began
        if response.status_code != 201:
            return elapsed, f"HTTP {response.status_code}: {response.text[:300]}"
        instance = response.json()
        tasks = [task.get("element_id") for task in instance.get("open_tasks", [])]
        if instance.get("status") != "waiting" or tasks != ["approve_expense"]:
            return elapsed, f"unexpected instance: {instance.get('status')}, open tasks {tasks}"
        self.task_ids.append(str(instance["open_tasks"][0]["id"]))  # atomic: threads share it
        return elapsed, None

    def run(self, count: int, label: str) -> tuple[list[float], int, float]:
        """The latencies of the starts that succeeded, the errors, the wall time."""
        latencies, errors = [], 0
        began = time.perf_counter()
        next_report = began + 5
        for elapsed, error in self.pool.map(self._start_one, range(count)):
            if error is None:
                latencies.append(elapsed)
            else:
                errors += 1
                if len(self.error_samples) < 5:
                    self.error_samples.append(error)
                    log(f"error: {error}")
            if (now := time.perf_counter()) >= next_report:
                done = len(latencies) + errors
                log(f"{label}: {done}/{count} ({done / (now - began):.0f}/s)")
                next_report = now + 5
        return latencies, errors, time.perf_counter() - began


def measure_baton(args: argparse.Namespace) -> dict[str, Any]:
    def setup(env: dict[str, str]) -> str:
        return migrate_and_deploy(env, {PROCESS_KEY: BPMN_FILE.read_text()})

    with web_server(args.data_dir, args.database, setup) as (server, token, what):
        load = LoadGenerator(server.url, token, args.threads)
        try:
            if load.run(args.warmup, "baton warm-up")[1]:
                raise RuntimeError(f"warm-up requests failed: {load.error_samples}")
            log(f"measuring {args.instances} starts with {args.threads} client threads")
            roles = {"server": lambda: server.pids("web"), "client": lambda: [os.getpid()]}
            meter = CpuMeter(
                {**roles, "postgres_backends": lambda: postgres_backends(args.database)}
            )
            latencies, errors, wall = load.run(args.instances, "baton")
            cpu = meter.usage(len(latencies), "instance")
            counted = counted_starts(server.url) if args.metrics else None
            log(f"completing {args.completions} user tasks, one at a time")
            completions = complete_tasks(server.url, token, load.task_ids, args.completions)
        finally:
            load.close()
    baton = {
        "instances_per_second": round(len(latencies) / wall, 1),
        "latency_ms": latency_summary(latencies),
        "errors": errors,
        "wall_seconds": round(wall, 3),
        **({"error_samples": load.error_samples} if load.error_samples else {}),
    }
    metrics = {"metrics": {"multiprocess": True, "starts_counted": counted}} if args.metrics else {}
    return {
        **what,
        **metrics,
        "baton": baton,
        "cpu_during_baton": cpu,
        "baton_user_task_completion": completions,
    }


COMPLETION = {"decision": "approve", "comment": "bench"}


def complete_tasks(base_url: str, token: str, task_ids: list[str], count: int) -> dict[str, Any]:
    """One client completes `count` tasks one at a time (a few unmeasured first): latencies."""
    headers = {"Authorization": f"Token {token}"}
    warmup = min(10, len(task_ids) // 10)
    if len(task_ids) < count + warmup:
        raise RuntimeError(f"{len(task_ids)} tasks open, {count + warmup} wanted")
    latencies: list[float] = []
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:
        for index, task_id in enumerate(task_ids[: count + warmup]):
            began = time.perf_counter()
            response = client.post(
                f"/api/v1/tasks/{task_id}/complete/", json={"variables": COMPLETION}
            )
            elapsed = time.perf_counter() - began
            if response.status_code != 200:
                raise RuntimeError(
                    f"completion: HTTP {response.status_code}: {response.text[:300]}"
                )
            if index >= warmup:
                latencies.append(elapsed)
        instance = client.get(f"/api/v1/instances/{response.json()['instance']}/").json()
    if instance["status"] != "completed" or instance["variables"].get("outcome") != "approved":
        raise RuntimeError(f"a completed task left its instance {instance['status']}")
    return {
        "completions": len(latencies),
        "client_threads": 1,
        "latency_ms": latency_summary(latencies),
    }


def plain_completions(count: int) -> dict[str, Any]:
    """Plain SpiffWorkflow in memory: the same completion of the same task, the workflow
    restored from JSON before and serialized after (what a stateless server must do)."""
    from SpiffWorkflow.bpmn import BpmnWorkflow
    from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
    from SpiffWorkflow.camunda.parser import CamundaParser
    from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG
    from SpiffWorkflow.util.task import TaskState

    serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(CAMUNDA_CONFIG))
    parser = CamundaParser()
    parser.add_bpmn_str(BPMN_FILE.read_bytes(), filename=BPMN_FILE.name)
    spec = parser.get_spec(PROCESS_KEY)
    latencies: list[float] = []
    for index in range(count + 10):
        workflow = BpmnWorkflow(spec)
        workflow.task_tree.data.update(START_VARIABLES)
        workflow.do_engine_steps()
        state = serializer.serialize_json(workflow)
        began = time.perf_counter()
        workflow = serializer.deserialize_json(state)
        [task] = workflow.get_tasks(state=TaskState.READY, manual=True)
        task.data.update(COMPLETION)
        task.run()
        workflow.do_engine_steps()
        serializer.serialize_json(workflow)
        elapsed = time.perf_counter() - began
        if not workflow.completed:
            raise RuntimeError("plain SpiffWorkflow did not complete the expense approval")
        if index >= 10:
            latencies.append(elapsed)
    return {"completions": count, "threads": 1, "latency_ms": latency_summary(latencies)}


METRICS_TOKEN = secrets.token_urlsafe(16)


def counted_starts(base_url: str) -> float:
    """What /metrics says: instances of the benchmark's process started (all gunicorn workers)."""
    text = httpx.get(
        f"{base_url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    ).text
    prefix = f'baton_instances_started_total{{process="{PROCESS_KEY}"}} '
    return sum(float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix))


def main() -> int:
    parser = argument_parser(__doc__, "bench")
    parser.add_argument("--instances", type=int, default=500, help="instances to measure")
    parser.add_argument("--threads", type=int, default=8, help="client threads")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured instances first")
    parser.add_argument(
        "--completions", type=int, default=200, help="user tasks to complete, one at a time"
    )
    parser.add_argument("--database", default=BENCH_DATABASE, help="the benchmark's database")
    parser.add_argument(
        "--metrics", action="store_true", help="Prometheus multiprocess mode, as deployed"
    )
    args = parser.parse_args()
    if args.metrics:  # the server inherits this process's environment (bench/common.py)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="baton-metrics-")
        os.environ["BATON_METRICS_TOKEN"] = METRICS_TOKEN
    if min(args.instances, args.threads, args.completions) < 1:
        parser.error("counts must be at least 1")
    gunicorn_version()  # fail before any setup when it is missing

    def measure_both() -> dict[str, Any]:
        log(f"plain SpiffWorkflow: {args.instances} instances in memory")
        diagrams = {PROCESS_KEY: BPMN_FILE.read_text()}
        start = plain_spiffworkflow(diagrams, START_VARIABLES, "approve_expense")
        latencies = timed_starts(start, [PROCESS_KEY], args.instances, args.warmup, "plain")[
            PROCESS_KEY
        ]
        spiff_ms = sum(latencies) / len(latencies) * 1000
        spiff = {
            "instances_per_second": round(1000 / spiff_ms, 1),
            "latency_ms": latency_summary(latencies),
            "threads": 1,
            "wall_seconds": round(sum(latencies), 3),
        }
        log(f"plain SpiffWorkflow: {spiff['instances_per_second']}/s")
        plain_completion = plain_completions(args.completions)
        baton = measure_baton(args)
        rate = baton["baton"]["instances_per_second"]
        cpu = baton["cpu_during_baton"]["per_instance_ms"]
        return {
            "process": PROCESS_KEY,
            "instances": args.instances,
            "warmup": args.warmup,
            "client_threads": args.threads,
            **baton,
            "spiffworkflow_in_memory": spiff,
            "spiffworkflow_in_memory_user_task_completion": plain_completion,
            # Baton's per-instance time over plain SpiffWorkflow's, both from throughput.
            "overhead_ratio": round(1000 / spiff_ms / rate, 2) if rate else None,
            # The same, from CPU time: Baton's server and Postgres per instance over plain
            # SpiffWorkflow's per instance (throughput above compares all CPUs with one thread).
            "cpu_overhead_ratio": round((cpu["server"] + cpu["postgres_backends"]) / spiff_ms, 1),
        }

    return run_benchmark("start", measure_both, ok=lambda report: report["baton"]["errors"] == 0)


if __name__ == "__main__":
    sys.exit(main())
