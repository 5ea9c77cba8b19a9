"""Benchmark: what a diagram script costs users, through Baton's REST API vs plain SpiffWorkflow.

    .venv/bin/python bench/scripts.py [--instances 300] [--warmup 30]

`po_approval` (three script tasks: price the order lines with Decimals, route by amount, write
a summary; then a user task) and its twin `po_approval_plain` (the scripts are plain
assignments, which Baton evaluates without a sandbox) are started alternately through
`POST /api/v1/definitions/{key}/start/` on gunicorn with the production settings, one request
at a time; the difference of their latencies / 3 is what one sandboxed script costs on the
start path (`per_script_ms`). Plain SpiffWorkflow runs both in memory in the same run, for the
same difference. Prints ONE JSON object; results in bench/RESULTS.md.
Postgres and Redis as in `bench/start.py` (its own database `baton_bench`).
"""

import argparse
import sys
import time
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (
    argument_parser,
    gunicorn_version,
    latency_summary,
    log,
    plain_spiffworkflow,
    run_benchmark,
    timed_starts,
    web_server,
)
from tests.engine.service_diagrams import sequence
from tests.faults.stack import migrate_and_deploy

BENCH_DATABASE = "baton_bench"
SCRIPTS_PER_START = 3
ORDER = (("HAM-1", 4, "12.50"), ("SAW-2", 1, "39.90"), ("NAI-9", 20, "0.15"), ("DRL-3", 2, "89.00"))
LINES = [{"sku": sku, "qty": qty, "price": price} for sku, qty, price in ORDER]
START_VARIABLES = {
    "supplier": "ACME Tools",
    "lines": [*LINES, {"sku": "TAP-7", "qty": 10, "price": "2.40"}],
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


def measure_baton(args: argparse.Namespace) -> dict[str, Any]:
    def setup(env: dict[str, str]) -> str:
        return migrate_and_deploy(env, DIAGRAMS)

    with web_server(args.data_dir, BENCH_DATABASE, setup) as (server, token, what):
        headers = {"Authorization": f"Token {token}"}
        client = httpx.Client(base_url=server.url, headers=headers, timeout=60)

        def start(key: str) -> float:
            began = time.perf_counter()
            response = client.post(
                f"/api/v1/definitions/{key}/start/", json={"variables": START_VARIABLES}
            )
            elapsed = time.perf_counter() - began
            tasks = [t.get("element_id") for t in response.json().get("open_tasks", [])]
            if response.status_code != 201 or tasks != ["approve_po"]:
                raise RuntimeError(f"{key}: HTTP {response.status_code} {response.text[:300]}")
            return elapsed

        with client:
            over_http = alternate(start, args.instances, args.warmup, "baton")
    return {**what, **over_http}


def main() -> int:
    parser = argument_parser(__doc__, "bench")
    parser.add_argument("--instances", type=int, default=300, help="starts of each diagram")
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args()
    gunicorn_version()

    def measure() -> dict[str, Any]:
        log(f"plain SpiffWorkflow: {args.instances} starts of each diagram in memory")
        start = plain_spiffworkflow(DIAGRAMS, START_VARIABLES, "approve_po")
        spiff = alternate(start, args.instances, args.warmup, "plain SpiffWorkflow")
        return {
            "process": "po_approval",
            "scripts_per_start": SCRIPTS_PER_START,
            "instances": args.instances,
            "baton": measure_baton(args),
            "spiffworkflow_in_memory": spiff,
        }

    return run_benchmark("scripts", measure)


if __name__ == "__main__":
    sys.exit(main())
