"""Benchmark: what a diagram script costs users, through Baton's REST API vs plain SpiffWorkflow.

    .venv/bin/python bench/scripts.py [--instances 300] [--warmup 30]

A purchase-order approval (`po_approval`: three script tasks that price the order lines with
Decimals, route it by amount and write a summary, then a user task) is started through
`POST /api/v1/definitions/po_approval/start/` against a real gunicorn server with the
production settings, one request at a time. Its twin `po_approval_plain` is the same diagram
whose three scripts are plain assignments (`priced = True`), which Baton evaluates without a
sandbox. The two are started alternately, and the difference of their latencies, divided by
three, is what one sandboxed script costs on the start path (`per_script_ms`).

Plain SpiffWorkflow runs both diagrams in memory in the same run (its own script engine, no
sandbox at all), for the same difference. Inside a Django process, the benchmark also times
the sandbox round trip alone (`SandboxEnvironment.execute` of the pricing script, each in its
own operation as an instance start does), which is the containment cost without HTTP and
Postgres around it.

Prints ONE JSON object to stdout; progress goes to stderr; results in bench/RESULTS.md.
Postgres and Redis as in `bench/start.py` (its own database `baton_bench`, recreated at
every start).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (
    BASE_DIR,
    SETTINGS_MODULE,
    argument_parser,
    database_label,
    gunicorn_version,
    latency_summary,
    log,
    plain_spiffworkflow,
    prepare_database,
    run_benchmark,
    services,
    timed_starts,
)
from tests.engine.service_diagrams import sequence
from tests.faults.stack import Baton, migrate_and_deploy

BENCH_DATABASE = "baton_bench"
SCRIPTS_PER_START = 3
REUSE_SCOPES = ("definition", "operation")
START_VARIABLES = {
    "supplier": "ACME Tools",
    "lines": [
        {"sku": "HAM-1", "qty": 4, "price": "12.50"},
        {"sku": "SAW-2", "qty": 1, "price": "39.90"},
        {"sku": "NAI-9", "qty": 20, "price": "0.15"},
        {"sku": "DRL-3", "qty": 2, "price": "89.00"},
        {"sku": "TAP-7", "qty": 10, "price": "2.40"},
    ],
}
PRICE_SCRIPT = """from decimal import Decimal
net = Decimal("0")
for line in lines:
    net += Decimal(line["price"]) * line["qty"]
vat = (net * Decimal("0.19")).quantize(Decimal("0.01"))
total = str(net + vat)
net, vat = str(net), str(vat)
line_count = len(lines)"""
ROUTE_SCRIPT = """amount = float(total)
if amount > 1000:
    approvers = "directors"
elif amount > 250:
    approvers = "managers"
else:
    approvers = "team_leads"
urgent = any(line["qty"] > 50 for line in lines)"""
SUMMARY_SCRIPT = """summary = f"{supplier}: {line_count} lines, {total} EUR incl. VAT ({approvers})"
skus = sorted(line["sku"] for line in lines)"""
SCRIPTS = (PRICE_SCRIPT, ROUTE_SCRIPT, SUMMARY_SCRIPT)
PLAIN_SCRIPTS = ("priced = True", 'approvers = "managers"', "summary = supplier")


def diagram(key: str, scripts: tuple[str, ...]) -> str:
    """start -> the scripts -> a user task -> end."""
    tasks = [
        f'    <bpmn:scriptTask id="script_{i}" scriptFormat="python">'
        f"<bpmn:script>{escape(source)}</bpmn:script></bpmn:scriptTask>\n"
        for i, source in enumerate(scripts)
    ]
    approve = (
        '    <bpmn:userTask id="approve_po" name="Approve the order" '
        'camunda:candidateGroups="managers" />\n'
    )
    return sequence(key, [*tasks, approve])


DIAGRAMS = {
    "po_approval": diagram("po_approval", SCRIPTS),
    "po_approval_plain": diagram("po_approval_plain", PLAIN_SCRIPTS),
}


def alternate(start: Any, instances: int, warmup: int, label: str) -> dict[str, Any]:
    """Start both diagrams alternately; latencies of each and the per-script difference."""
    times = timed_starts(start, list(DIAGRAMS), instances, warmup, label)
    scripted = latency_summary(times["po_approval"])
    plain = latency_summary(times["po_approval_plain"])

    def per_script(q: str) -> float | None:
        if scripted[q] is None or plain[q] is None:
            return None
        return round((scripted[q] - plain[q]) / SCRIPTS_PER_START, 3)  # type: ignore[operator]

    return {
        "start_latency_ms": {"po_approval": scripted, "po_approval_plain": plain},
        "per_script_ms": {"p50": per_script("p50"), "p95": per_script("p95")},
    }


# Inside Django: the sandbox round trip alone, one operation per script as a start does, with
# the reuse of sandbox processes the engine uses (see engine/bpmn/sandbox/leases.py); prints
# the latencies and the CPU seconds spent per operation by the engine and its sandbox.
ROUND_TRIP_CODE = """
import json, os, sys, time, django
django.setup()
from engine.bpmn.scripting import build_script_engine, script_context
script, data, count = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
environment = build_script_engine().environment
import psutil
from engine.bpmn.sandbox import leases
def busy():
    # CPU seconds of this process, its zygote and every sandbox process, ended ones included.
    total = sum(psutil.Process().cpu_times()[:2])
    zygote = leases._pool.zygote
    for init in psutil.Process(zygote.process.pid).children() if zygote else []:
        times = init.cpu_times()
        total += times.user + times.system + times.children_user + times.children_system
        total += sum(sum(child.cpu_times()[:2]) for child in init.children())
    return total
def once():
    context = dict(data)
    with script_context(user=None, instance_id="bench", reuse_key="definition bench"):
        began = time.perf_counter()
        environment.execute(script, context)
        elapsed = time.perf_counter() - began
    time.sleep(0.005)  # as between requests: spare processes are forked meanwhile
    return elapsed
for _ in range(50):
    once()
before = busy()
latencies = [once() for _ in range(count)]
print(json.dumps({"latencies": latencies, "cpu_per_operation": (busy() - before) / count}))
"""


def round_trip(env: dict[str, str], count: int, reuse: str) -> dict[str, Any]:
    arguments = [PRICE_SCRIPT, json.dumps(START_VARIABLES), str(count)]
    result = subprocess.run(
        [sys.executable, "-c", ROUND_TRIP_CODE, *arguments],
        cwd=BASE_DIR,
        env={**env, "BATON_SANDBOX_REUSE": reuse},
        check=True,
        capture_output=True,
        text=True,
    )
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    return {
        "latency_ms": latency_summary(measured["latencies"]),
        "cpu_ms_per_operation": round(measured["cpu_per_operation"] * 1000, 2),
    }


def measure_baton(args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    env, postgres_version = prepare_database(BENCH_DATABASE)
    token = migrate_and_deploy(env, DIAGRAMS)
    log("the sandbox round trip alone, inside Django")
    round_trips = {reuse: round_trip(env, args.instances, reuse) for reuse in REUSE_SCOPES}
    server = Baton(env, log_dir, web_workers=args.workers, web_threads=4, keep_alive=30)
    headers = {"Authorization": f"Token {token}"}
    try:
        server.start_web()
        server.wait_ready()
        log(f"gunicorn on {server.url}")
        with httpx.Client(base_url=server.url, timeout=60, headers=headers) as client:

            def start(key: str) -> float:
                began = time.perf_counter()
                response = client.post(
                    f"/api/v1/definitions/{key}/start/", json={"variables": START_VARIABLES}
                )
                elapsed = time.perf_counter() - began
                body = response.json()
                tasks = [t.get("element_id") for t in body.get("open_tasks", [])]
                if response.status_code != 201 or tasks != ["approve_po"]:
                    raise RuntimeError(f"{key}: HTTP {response.status_code} {str(body)[:300]}")
                return elapsed

            over_http = alternate(start, args.instances, args.warmup, "baton")
    finally:
        server.stop()
    return {
        "server": f"gunicorn gthread, {args.workers} workers x 4 threads, {SETTINGS_MODULE}",
        "database": f"Postgres {postgres_version}, database {BENCH_DATABASE}",
        **over_http,
        # One script per operation; "definition" is the default, "operation" forks a sandbox
        # process that never ran anything for every operation (BATON_SANDBOX_REUSE).
        "sandbox_round_trip": round_trips,
    }


def main() -> int:
    parser = argument_parser(__doc__, "bench")
    parser.add_argument("--instances", type=int, default=300, help="starts of each diagram")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    gunicorn_version()

    def measure() -> dict[str, Any]:
        log(f"plain SpiffWorkflow: {args.instances} starts of each diagram in memory")
        start = plain_spiffworkflow(DIAGRAMS, START_VARIABLES, "approve_po")
        spiff = alternate(start, args.instances, args.warmup, "plain SpiffWorkflow")
        with services(args.data_dir) as embedded, tempfile.TemporaryDirectory() as log_dir:
            baton = measure_baton(args, Path(log_dir))
            baton["database"] = f"{database_label(embedded)}: {baton['database']}"
        return {
            "process": "po_approval",
            "scripts_per_start": SCRIPTS_PER_START,
            "instances": args.instances,
            "baton": baton,
            "spiffworkflow_in_memory": spiff,
        }

    return run_benchmark("scripts", measure)


if __name__ == "__main__":
    sys.exit(main())
