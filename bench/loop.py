"""Benchmark: a loop with a user task through Baton's REST API vs plain SpiffWorkflow (issue 21).

    .venv/bin/python bench/loop.py [--rounds 1000]

The diagram: start -> merge -> script `n = n + 1` -> user task `review` -> exclusive gateway:
back to merge while `n < rounds`, else to the end. Every round adds four tasks to the
library's task tree. Through HTTP on Baton's server as `make run` starts it (config/launch.py,
production settings): the start
(`POST /api/v1/definitions/loop/start/`), then each round's completion of the review
(`POST /api/v1/tasks/{id}/complete/`), one request at a time; between completions the client
reads the instance's next open task (not timed). State size: bytes of the instance's stored
state (its JSON text) read from Postgres at rounds 10, 100 and the last.

Per-round cost: the median of 11 completions around the 10th, the 100th and the last. The
goal: round 1,000 within 1.5x of round 10, and the state as large at the last round as at
the 100th (finished tasks that can no longer influence the run leave it: engine.bpmn.pruning).
The instance must complete exactly after the last round, with `n` equal to the rounds.

Plain SpiffWorkflow does the same in memory in the same run, with its own Camunda parser:
per round it restores the workflow from JSON, completes the task, runs the engine steps and
serializes it again, which is what a server keeping no workflow in memory must do.

Its own database: `baton_bench_loop` (see bench/common.py).
"""

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (
    argument_parser,
    gunicorn_version,
    latency_summary,
    log,
    run_benchmark,
    web_server,
)
from tests.faults.stack import migrate_and_deploy

BENCH_DATABASE = "baton_bench_loop"
PROCESS_KEY = "loop"
GOAL_RATIO = 1.5
WINDOW = 11
# The state at the last round may differ from the 100th's by the digits of `n` and the like.
STATE_TOLERANCE = 0.05


def diagram(rounds: int) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" id="d_loop" targetNamespace="x">
  <bpmn:process id="{PROCESS_KEY}" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:exclusiveGateway id="merge" />
    <bpmn:scriptTask id="count" scriptFormat="python"><bpmn:script>n = n + 1</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:userTask id="review" name="Review" camunda:candidateGroups="operators" />
    <bpmn:exclusiveGateway id="decide" default="again" />
    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="merge" />
    <bpmn:sequenceFlow id="f2" sourceRef="merge" targetRef="count" />
    <bpmn:sequenceFlow id="f3" sourceRef="count" targetRef="review" />
    <bpmn:sequenceFlow id="f4" sourceRef="review" targetRef="decide" />
    <bpmn:sequenceFlow id="done" sourceRef="decide" targetRef="end">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression"
        >n &gt;= {rounds}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="again" sourceRef="decide" targetRef="merge" />
  </bpmn:process>
</bpmn:definitions>
"""


def window_ms(latencies: list[float], position: int) -> float:
    """Median (ms) of the WINDOW rounds centred on `position` (1-based), kept inside."""
    start = max(0, min(position - 1 - WINDOW // 2, len(latencies) - WINDOW))
    return round(statistics.median(latencies[start : start + WINDOW]) * 1000, 2)


def growth(latencies: list[float]) -> dict[str, Any]:
    rounds = len(latencies)
    tenth, hundredth, last = (window_ms(latencies, at) for at in (10, 100, rounds))
    return {
        "per_round_ms": latency_summary(latencies),
        "round_10_ms": tenth,
        "round_100_ms": hundredth,
        f"round_{rounds}_ms": last,
        "last_over_10th": round(last / tenth, 2) if tenth else None,
    }


# -- Baton over HTTP ----------------------------------------------------------------------------


class Client:
    def __init__(self, base_url: str, token: str, env: dict[str, str]) -> None:
        self.http = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Token {token}"}, timeout=120
        )
        self.database_url = env["DATABASE_URL"]

    def close(self) -> None:
        self.http.close()

    def start(self) -> dict[str, Any]:
        response = self.http.post(
            f"/api/v1/definitions/{PROCESS_KEY}/start/", json={"variables": {"n": 0}}
        )
        if response.status_code != 201:
            raise RuntimeError(f"start: HTTP {response.status_code} {response.text[:300]}")
        result: dict[str, Any] = response.json()
        return result

    def instance(self, instance_id: str) -> dict[str, Any]:
        response = self.http.get(f"/api/v1/instances/{instance_id}/")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def complete(self, task_id: str) -> float:
        began = time.perf_counter()
        response = self.http.post(f"/api/v1/tasks/{task_id}/complete/", json={"variables": {}})
        elapsed = time.perf_counter() - began
        if response.status_code != 200:
            raise RuntimeError(f"complete: HTTP {response.status_code} {response.text[:300]}")
        return elapsed

    def state_bytes(self, instance_id: str) -> int:
        import psycopg

        with psycopg.connect(self.database_url) as db:
            row = db.execute(
                "SELECT octet_length(state::text) FROM engine_processinstance WHERE id = %s",
                [instance_id],
            ).fetchone()
        return int(row[0]) if row else 0


def run_baton(client: Client, rounds: int) -> dict[str, Any]:
    instance = client.start()
    instance_id = instance["id"]
    latencies: list[float] = []
    sizes: dict[str, int] = {}
    for done in range(1, rounds + 1):
        if instance["status"] != "waiting" or instance["variables"].get("n") != done:
            raise RuntimeError(
                f"round {done}: instance {instance['status']} with n={instance['variables']}"
            )
        tasks = [task["id"] for task in instance["open_tasks"]]
        if len(tasks) != 1:
            raise RuntimeError(f"round {done}: {len(tasks)} open tasks")
        latencies.append(client.complete(tasks[0]))
        if done in (10, 100, rounds - 1):
            sizes[f"round_{done}"] = client.state_bytes(instance_id)
        if done % 100 == 0:
            log(f"baton: round {done}/{rounds}")
        instance = client.instance(instance_id)
    if instance["status"] != "completed" or instance["variables"].get("n") != rounds:
        raise RuntimeError(f"ended {instance['status']} with {instance['variables']}")
    sizes["completed"] = client.state_bytes(instance_id)
    return {"rounds": rounds, "state_bytes": sizes, **growth(latencies)}


# -- plain SpiffWorkflow ------------------------------------------------------------------------


def plain_spiffworkflow(xml: str, rounds: int) -> dict[str, Any]:
    from SpiffWorkflow.bpmn import BpmnWorkflow
    from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
    from SpiffWorkflow.camunda.parser import CamundaParser
    from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG
    from SpiffWorkflow.util.task import TaskState

    serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(CAMUNDA_CONFIG))
    parser = CamundaParser()
    parser.add_bpmn_str(xml.encode(), filename="loop.bpmn")
    workflow = BpmnWorkflow(parser.get_spec(PROCESS_KEY))
    workflow.task_tree.data["n"] = 0
    workflow.do_engine_steps()
    state = serializer.serialize_json(workflow)
    latencies: list[float] = []
    sizes: dict[str, int] = {}
    for done in range(1, rounds + 1):
        began = time.perf_counter()
        workflow = serializer.deserialize_json(state)
        ready = workflow.get_tasks(state=TaskState.READY, manual=True)
        if not ready:
            # The library's walks stop 1,000 tasks below the root (about round 250 here):
            # past that it finds no ready task and reports the workflow completed.
            return {
                "rounds": rounds,
                "stopped_at_round": done,
                "stopped_because": f"no ready task (completed: {workflow.is_completed()})",
                "state_bytes": sizes,
                **growth(latencies),
            }
        ready[0].run()
        workflow.do_engine_steps()
        state = serializer.serialize_json(workflow)
        latencies.append(time.perf_counter() - began)
        if done in (10, 100, rounds - 1):
            sizes[f"round_{done}"] = len(state.encode())
        if done % 100 == 0:
            log(f"plain: round {done}/{rounds}")
    sizes["completed"] = len(state.encode())
    return {"rounds": rounds, "state_bytes": sizes, **growth(latencies)}


# -- main ---------------------------------------------------------------------------------------


def main() -> int:
    parser = argument_parser(__doc__, "bench")
    parser.add_argument("--rounds", type=int, default=1000, help="rounds of the loop")
    parser.add_argument("--skip-plain", action="store_true", help="leave plain SpiffWorkflow out")
    args: argparse.Namespace = parser.parse_args()
    if args.rounds < 100 + WINDOW:
        parser.error(f"at least {100 + WINDOW} rounds")
    gunicorn_version()
    xml = diagram(args.rounds)

    def measure() -> dict[str, Any]:
        plain: dict[str, Any] = {}
        if not args.skip_plain:
            log("plain SpiffWorkflow")
            plain = plain_spiffworkflow(xml, args.rounds)

        def setup(env: dict[str, str]) -> str:
            setup.env = env  # type: ignore[attr-defined]
            return migrate_and_deploy(env, {PROCESS_KEY: xml})

        with web_server(args.data_dir, BENCH_DATABASE, setup) as (server, token, what):
            client = Client(server.url, token, setup.env)  # type: ignore[attr-defined]
            try:
                baton = run_baton(client, args.rounds)
            finally:
                client.close()
        ratio = baton["last_over_10th"]
        sizes = baton["state_bytes"]
        last_size, size_100 = sizes[f"round_{args.rounds - 1}"], sizes["round_100"]
        bounded = abs(last_size - size_100) <= STATE_TOLERANCE * size_100
        return {
            **what,
            "baton": baton,
            "spiffworkflow_in_memory": plain,
            "goal": f"round {args.rounds} within {GOAL_RATIO}x of round 10; state at round "
            f"{args.rounds - 1} within {STATE_TOLERANCE:.0%} of round 100's",
            "state_bounded": bounded,
            "goal_met": ratio is not None and ratio <= GOAL_RATIO and bounded,
        }

    return run_benchmark("loop", measure, ok=lambda report: bool(report["goal_met"]))


if __name__ == "__main__":
    sys.exit(main())
