"""Benchmark: starting process instances through Baton's REST API vs plain SpiffWorkflow.

    .venv/bin/python bench/start.py [--instances 500] [--threads 8] [--metrics] [--database NAME]

Starts N instances of the example expense approval (a script task, then a user task) with
`POST /api/v1/definitions/expense_approval/start/` from several client threads against a
real gunicorn server, and does the same work with plain SpiffWorkflow in memory in the same
run (parse once; per instance: new workflow, start data, engine steps, serialize to JSON).
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
    return {**what, **metrics, "baton": baton, "cpu_during_baton": cpu}


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
    parser.add_argument("--database", default=BENCH_DATABASE, help="the benchmark's database")
    parser.add_argument(
        "--metrics", action="store_true", help="Prometheus multiprocess mode, as deployed"
    )
    args = parser.parse_args()
    if args.metrics:  # the server inherits this process's environment (bench/common.py)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="baton-metrics-")
        os.environ["BATON_METRICS_TOKEN"] = METRICS_TOKEN
    if min(args.instances, args.threads) < 1:
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
            # Baton's per-instance time over plain SpiffWorkflow's, both from throughput.
            "overhead_ratio": round(1000 / spiff_ms / rate, 2) if rate else None,
            # The same, from CPU time: Baton's server and Postgres per instance over plain
            # SpiffWorkflow's per instance (throughput above compares all CPUs with one thread).
            "cpu_overhead_ratio": round((cpu["server"] + cpu["postgres_backends"]) / spiff_ms, 1),
        }

    return run_benchmark("start", measure_both, ok=lambda report: report["baton"]["errors"] == 0)


if __name__ == "__main__":
    sys.exit(main())
