"""Benchmark: starting process instances through Baton's REST API vs plain SpiffWorkflow.

    .venv/bin/python bench/start.py [--instances 500] [--threads 8]

Starts N instances of the example expense approval (a script task, then a user task) with
`POST /api/v1/definitions/expense_approval/start/` from several client threads against a
real gunicorn server, and does the same work with plain SpiffWorkflow in memory in the same
run (parse once; per instance: new workflow, start data, engine steps, serialize to JSON).
Prints ONE JSON object to stdout; progress goes to stderr.

Postgres and Redis: whatever DATABASE_URL / CELERY_BROKER_URL name, otherwise embedded ones
under `.data/bench`. Either way the benchmark uses its own database, `baton_bench`, on that
server, dropped and recreated at every start, so development data is never touched.
Everything the benchmark starts is stopped at the end, on error and on Ctrl-C.
"""

import argparse
import copy
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (
    BASE_DIR,
    SETTINGS_MODULE,
    CpuMeter,
    bench_database_url,
    database_label,
    django_env,
    gunicorn_version,
    latency_summary,
    log,
    postgres_backends,
    recreate_database,
    run_benchmark,
    services,
)
from tests.faults.stack import Baton, migrate_and_deploy

PROCESS_KEY = "expense_approval"
BPMN_FILE = BASE_DIR / "processes" / "bpmn" / "expense_approval.bpmn"
START_VARIABLES = {"amount": 250, "description": "Team dinner", "requester": "bench"}
BENCH_DATABASE = "baton_bench"


# --------------------------------------------------------------------------------------------
# Plain SpiffWorkflow, in memory


def run_spiffworkflow(instances: int, warmup: int) -> dict[str, Any]:
    from SpiffWorkflow.bpmn import BpmnWorkflow
    from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
    from SpiffWorkflow.camunda.parser import CamundaParser
    from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG
    from SpiffWorkflow.util.task import TaskState

    parser = CamundaParser()
    parser.add_bpmn_file(str(BPMN_FILE))
    spec = parser.get_spec(PROCESS_KEY)
    serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(CAMUNDA_CONFIG))

    def start_one() -> tuple[Any, str]:
        workflow = BpmnWorkflow(spec)
        workflow.task_tree.data.update(copy.deepcopy(START_VARIABLES))
        workflow.do_engine_steps()
        return workflow, serializer.serialize_json(workflow)

    workflow, _ = start_one()  # the same end state as Baton's, or the comparison is void
    waiting = [t.task_spec.bpmn_id for t in workflow.get_tasks(state=TaskState.READY, manual=True)]
    if waiting != ["approve_expense"]:
        raise RuntimeError(f"plain SpiffWorkflow stopped at {waiting}, not at approve_expense")
    for _ in range(warmup):
        start_one()
    latencies = []
    began = time.perf_counter()
    for _ in range(instances):
        t0 = time.perf_counter()
        start_one()
        latencies.append(time.perf_counter() - t0)
    wall = time.perf_counter() - began
    return {
        "instances_per_second": round(instances / wall, 1),
        "latency_ms": latency_summary(latencies),
        "threads": 1,
        "wall_seconds": round(wall, 3),
    }


# --------------------------------------------------------------------------------------------
# Database, setup and server


# --------------------------------------------------------------------------------------------
# Load generation


@dataclass
class PhaseResult:
    latencies: list[float]
    errors: int
    wall: float


class LoadGenerator:
    """One keep-alive httpx client per thread, kept across warm-up and measurement."""

    def __init__(self, base_url: str, token: str, threads: int) -> None:
        self.path = f"/api/v1/definitions/{PROCESS_KEY}/start/"
        self.body = {"variables": START_VARIABLES}
        self.clients = [
            httpx.Client(base_url=base_url, headers={"Authorization": f"Token {token}"}, timeout=60)
            for _ in range(threads)
        ]
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.error_samples: list[str] = []

    def close(self) -> None:
        """Let requests in flight finish (on Ctrl-C too), then close the connections."""
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=10)
        for client in self.clients:
            client.close()

    def _start_one(self, client: httpx.Client) -> str | None:
        """Start one instance; None when it started and waits at the user task."""
        try:
            response = client.post(self.path, json=self.body)
        except httpx.HTTPError as error:
            return f"{type(error).__name__}: {error}"
        if response.status_code != 201:
            return f"HTTP {response.status_code}: {response.text[:300]}"
        instance = response.json()
        tasks = [task.get("element_id") for task in instance.get("open_tasks", [])]
        if instance.get("status") != "waiting" or tasks != ["approve_expense"]:
            return f"unexpected instance: status {instance.get('status')}, open tasks {tasks}"
        return None

    def run(self, count: int, label: str) -> PhaseResult:
        lock = threading.Lock()
        taken = 0
        done: list[float] = []
        errors = 0

        def worker(client: httpx.Client) -> None:
            nonlocal taken, errors
            while not self.stop.is_set():
                with lock:
                    if taken >= count:
                        return
                    taken += 1
                began = time.perf_counter()
                error = self._start_one(client)
                elapsed = time.perf_counter() - began
                with lock:
                    if error is None:
                        done.append(elapsed)
                    else:
                        errors += 1
                        if len(self.error_samples) < 5:
                            self.error_samples.append(error)
                            log(f"error: {error}")

        threads = self.threads = [
            threading.Thread(target=worker, args=(client,), daemon=True) for client in self.clients
        ]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        next_report = began + 5
        for thread in threads:
            while thread.is_alive():  # short joins keep Ctrl-C responsive
                thread.join(0.2)
                now = time.perf_counter()
                if now >= next_report:
                    finished = len(done) + errors
                    log(f"{label}: {finished}/{count} ({finished / (now - began):.0f}/s)")
                    next_report = now + 5
        wall = time.perf_counter() - began
        return PhaseResult(latencies=done, errors=errors, wall=wall)


def cpu_overhead_ratio(cpu: dict[str, Any] | None, spiff: dict[str, Any]) -> float | None:
    if cpu is None:
        return None
    baton_ms = cpu["per_instance_ms"]["server"] + cpu["per_instance_ms"]["postgres_backends"]
    return round(baton_ms / (1000 / spiff["instances_per_second"]), 1)


def parse_args() -> argparse.Namespace:
    cpus = os.cpu_count() or 1
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=500, help="instances to measure")
    parser.add_argument("--threads", type=int, default=8, help="client threads")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured instances first")
    parser.add_argument(
        "--workers", type=int, default=cpus, help="gunicorn worker processes (default: one per CPU)"
    )
    parser.add_argument(
        "--server-threads", type=int, default=4, help="threads per gunicorn worker (gthread)"
    )
    parser.add_argument("--worker-class", choices=["gthread", "sync"], default="gthread")
    parser.add_argument("--server-keep-alive", type=int, default=30)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=BASE_DIR / ".data" / "bench",
        help="where embedded Postgres/Redis keep their data",
    )
    args = parser.parse_args()
    if min(args.instances, args.threads, args.workers, args.server_threads) < 1:
        parser.error("counts must be at least 1")
    return args


def measure(
    args: argparse.Namespace, database: str, gunicorn: str, log_dir: Path
) -> dict[str, Any]:
    postgres_version = recreate_database(os.environ["DATABASE_URL"], BENCH_DATABASE)
    env = django_env(bench_database_url(os.environ["DATABASE_URL"], BENCH_DATABASE))
    log(f"database {BENCH_DATABASE} recreated (Postgres {postgres_version}); migrating")
    token = migrate_and_deploy(env, {PROCESS_KEY: BPMN_FILE.read_text()})

    server = Baton(
        env,
        log_dir,
        web_workers=args.workers,
        web_threads=args.server_threads,
        web_class=args.worker_class,
        keep_alive=args.server_keep_alive,
    )
    threads = f" x {args.server_threads} threads" if args.worker_class == "gthread" else ""
    server_name = (
        f"gunicorn {gunicorn} {args.worker_class}, {args.workers} workers"
        f"{threads}, keep-alive {args.server_keep_alive}s, {SETTINGS_MODULE} "
        "(DEBUG off)"
    )
    load: LoadGenerator | None = None
    try:
        server.start_web()
        server.wait_ready()
        log(f"{server_name} on {server.url}")
        load = LoadGenerator(server.url, token, args.threads)
        warm = load.run(args.warmup, "baton warm-up")
        if warm.errors:
            raise RuntimeError(f"{warm.errors} of {args.warmup} warm-up requests failed")
        log(f"measuring {args.instances} starts with {args.threads} client threads")
        meter = CpuMeter(
            {
                "server": lambda: server.pids("web"),
                "postgres_backends": lambda: postgres_backends(BENCH_DATABASE),
                "client": lambda: [os.getpid()],
            }
        )
        result = load.run(args.instances, "baton")
        cpu = meter.usage(len(result.latencies), "instance")
    finally:
        if load is not None:
            load.close()
        server.stop()
    return {
        "server": server_name,
        "database": f"{database} {postgres_version}, database {BENCH_DATABASE}",
        "baton": {
            "instances_per_second": round(len(result.latencies) / result.wall, 1),
            "latency_ms": latency_summary(result.latencies),
            "errors": result.errors,
            "wall_seconds": round(result.wall, 3),
            **({"error_samples": load.error_samples} if load.error_samples else {}),
        },
        "cpu_during_baton": cpu,
    }


def main() -> int:
    args = parse_args()
    gunicorn = gunicorn_version()  # fail before any setup when it is missing

    def measure_both() -> dict[str, Any]:
        log(f"plain SpiffWorkflow: {args.instances} instances in memory")
        spiff = run_spiffworkflow(args.instances, args.warmup)
        log(f"plain SpiffWorkflow: {spiff['instances_per_second']}/s")
        with (
            services(args.data_dir) as embedded,
            tempfile.TemporaryDirectory(prefix="baton-bench-") as log_dir,
        ):
            baton = measure(args, database_label(embedded), gunicorn, Path(log_dir))
        baton_rate = baton["baton"]["instances_per_second"]
        return {
            "process": PROCESS_KEY,
            "instances": args.instances,
            "warmup": args.warmup,
            "client_threads": args.threads,
            "server": baton["server"],
            "database": baton["database"],
            "baton": baton["baton"],
            "spiffworkflow_in_memory": spiff,
            # Baton's per-instance time over plain SpiffWorkflow's, both from throughput.
            "overhead_ratio": round(spiff["instances_per_second"] / baton_rate, 2)
            if baton_rate
            else None,
            # The same, from CPU time: Baton's server and Postgres per instance over plain
            # SpiffWorkflow's per instance (throughput above compares all CPUs with one thread).
            "cpu_overhead_ratio": cpu_overhead_ratio(baton["cpu_during_baton"], spiff),
            "cpu_during_baton": baton["cpu_during_baton"],
        }

    return run_benchmark("start", measure_both, ok=lambda report: report["baton"]["errors"] == 0)


if __name__ == "__main__":
    sys.exit(main())
