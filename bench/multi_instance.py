"""Benchmark: multi-instance user tasks through Baton's REST API vs plain SpiffWorkflow.

    .venv/bin/python bench/multi_instance.py [--parallel 100] [--sequential 1000]

Two diagrams, each a multi-instance user task collecting every instance's `ok` into a list by
index (`loopDataOutputRef`/`outputDataItem`): a parallel one over a loop cardinality of
`--parallel` (all inbox tasks open at once) and a sequential one of `--sequential` (one open
at a time). Through HTTP on a real gunicorn server (production settings): the start
(`POST /api/v1/definitions/{key}/start/`), then every completion
(`POST /api/v1/tasks/{id}/complete/`), one request at a time; between completions the client
reads the instance's next open task (not timed). State size: bytes of the instance's stored
state (its JSON text) read from Postgres after the start and along the way.

Per-completion cost: the median of 11 completions around the 10th and of the last 11. The
goal: the 1,000th sequential completion within 1.5x of the 10th (state and work per
completion do not grow with the completions behind it).

Plain SpiffWorkflow does the same in memory in the same run, with its own Camunda parser and
multi-instance task: per completion it restores the workflow from JSON, completes the task,
runs the engine steps and serializes it again, which is what a stateless server must do.

Its own database: `baton_bench_mi` (see bench/common.py).
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

BENCH_DATABASE = "baton_bench_mi"
GOAL_RATIO = 1.5
WINDOW = 11


def diagram(key: str, cardinality: int, sequential: bool) -> str:
    flag = "true" if sequential else "false"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d_{key}" targetNamespace="x">
  <bpmn:process id="{key}" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:userTask id="approve" name="Approve" camunda:candidateGroups="operators">
      <bpmn:extensionElements><camunda:formData>
        <camunda:formField id="ok" type="boolean" />
      </camunda:formData></bpmn:extensionElements>
      <bpmn:multiInstanceLoopCharacteristics isSequential="{flag}">
        <bpmn:loopCardinality>{cardinality}</bpmn:loopCardinality>
        <bpmn:loopDataOutputRef>oks</bpmn:loopDataOutputRef>
        <bpmn:outputDataItem id="ok" name="ok" />
      </bpmn:multiInstanceLoopCharacteristics>
    </bpmn:userTask>
    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="approve" />
    <bpmn:sequenceFlow id="f2" sourceRef="approve" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""


def window_ms(latencies: list[float], position: int) -> float:
    """Median (ms) of the WINDOW completions centred on `position` (1-based), kept inside."""
    start = max(0, min(position - 1 - WINDOW // 2, len(latencies) - WINDOW))
    return round(statistics.median(latencies[start : start + WINDOW]) * 1000, 2)


def growth(latencies: list[float]) -> dict[str, Any]:
    tenth, last = window_ms(latencies, 10), window_ms(latencies, len(latencies))
    return {
        "per_completion_ms": latency_summary(latencies),
        "at_10th_ms": tenth,
        f"at_{len(latencies)}th_ms": last,
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

    def start(self, key: str) -> tuple[dict[str, Any], float]:
        began = time.perf_counter()
        response = self.http.post(f"/api/v1/definitions/{key}/start/", json={"variables": {}})
        elapsed = time.perf_counter() - began
        if response.status_code != 201:
            raise RuntimeError(f"start of {key}: HTTP {response.status_code} {response.text[:300]}")
        return response.json(), elapsed

    def open_tasks(self, instance_id: str) -> list[str]:
        response = self.http.get(f"/api/v1/instances/{instance_id}/")
        response.raise_for_status()
        return [task["id"] for task in response.json()["open_tasks"]]

    def complete(self, task_id: str) -> float:
        began = time.perf_counter()
        response = self.http.post(
            f"/api/v1/tasks/{task_id}/complete/", json={"variables": {"ok": True}}
        )
        elapsed = time.perf_counter() - began
        if response.status_code != 200:
            raise RuntimeError(f"complete: HTTP {response.status_code} {response.text[:300]}")
        return elapsed

    def instance(self, instance_id: str) -> dict[str, Any]:
        response = self.http.get(f"/api/v1/instances/{instance_id}/")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def state_bytes(self, instance_id: str) -> int:
        import psycopg

        with psycopg.connect(self.database_url) as db:
            row = db.execute(
                "SELECT octet_length(state::text) FROM engine_processinstance WHERE id = %s",
                [instance_id],
            ).fetchone()
        return int(row[0]) if row else 0


def run_parallel(client: Client, key: str, count: int) -> dict[str, Any]:
    started, start_seconds = client.start(key)
    instance_id = started["id"]
    tasks = [task["id"] for task in started["open_tasks"]]
    if len(tasks) != count:
        raise RuntimeError(f"{key}: {len(tasks)} open tasks, not {count}")
    sizes = {"after_start": client.state_bytes(instance_id)}
    latencies = []
    for index, task_id in enumerate(tasks, start=1):
        latencies.append(client.complete(task_id))
        if index == count // 2:
            sizes["half_done"] = client.state_bytes(instance_id)
        if index % 25 == 0:
            log(f"{key}: {index}/{count}")
    sizes["completed"] = client.state_bytes(instance_id)
    final = client.instance(instance_id)
    if final["status"] != "completed" or final["variables"].get("oks") != [True] * count:
        raise RuntimeError(
            f"{key}: ended {final['status']} with oks {final['variables'].get('oks')}"
        )
    return {
        "instances": count,
        "start_ms": round(start_seconds * 1000, 2),
        "state_bytes": sizes,
        **growth(latencies),
    }


def run_sequential(client: Client, key: str, count: int) -> dict[str, Any]:
    started, start_seconds = client.start(key)
    instance_id = started["id"]
    sizes = {"after_start": client.state_bytes(instance_id)}
    latencies = []
    tasks = [task["id"] for task in started["open_tasks"]]
    for index in range(1, count + 1):
        if len(tasks) != 1:
            raise RuntimeError(f"{key}: {len(tasks)} open tasks before completion {index}")
        latencies.append(client.complete(tasks[0]))
        if index in (10, count // 2, count - 1):
            sizes[f"after_{index}"] = client.state_bytes(instance_id)
        if index % 100 == 0:
            log(f"{key}: {index}/{count}")
        tasks = client.open_tasks(instance_id) if index < count else []
    final = client.instance(instance_id)
    if final["status"] != "completed" or final["variables"].get("oks") != [True] * count:
        raise RuntimeError(f"{key}: ended {final['status']}")
    sizes["completed"] = client.state_bytes(instance_id)
    return {
        "instances": count,
        "start_ms": round(start_seconds * 1000, 2),
        "state_bytes": sizes,
        **growth(latencies),
    }


# -- plain SpiffWorkflow ------------------------------------------------------------------------


def plain_spiffworkflow(xml: str, key: str, count: int, sequential: bool) -> dict[str, Any]:
    from SpiffWorkflow.bpmn import BpmnWorkflow
    from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
    from SpiffWorkflow.camunda.parser import CamundaParser
    from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG
    from SpiffWorkflow.util.task import TaskState

    serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(CAMUNDA_CONFIG))
    parser = CamundaParser()
    parser.add_bpmn_str(xml.encode(), filename=f"{key}.bpmn")
    spec = parser.get_spec(key)

    began = time.perf_counter()
    workflow = BpmnWorkflow(spec)
    workflow.do_engine_steps()
    state = serializer.serialize_json(workflow)
    start_seconds = time.perf_counter() - began
    sizes = {"after_start": len(state.encode())}
    latencies = []
    for index in range(1, count + 1):
        began = time.perf_counter()
        workflow = serializer.deserialize_json(state)
        ready = workflow.get_tasks(state=TaskState.READY, manual=True)
        if not ready:
            raise RuntimeError(f"plain SpiffWorkflow: no ready task at completion {index}")
        task = ready[0]
        task.data["ok"] = True
        task.run()
        workflow.do_engine_steps()
        state = serializer.serialize_json(workflow)
        latencies.append(time.perf_counter() - began)
        if index in (10, count // 2, count - 1):
            sizes[f"after_{index}"] = len(state.encode())
        if sequential and index % 100 == 0:
            log(f"plain {key}: {index}/{count}")
    if not workflow.is_completed():
        raise RuntimeError(f"plain SpiffWorkflow: {key} did not complete")
    sizes["completed"] = len(state.encode())
    return {
        "instances": count,
        "start_ms": round(start_seconds * 1000, 2),
        "state_bytes": sizes,
        **growth(latencies),
    }


# -- main ---------------------------------------------------------------------------------------


def main() -> int:
    parser = argument_parser(__doc__, "bench")
    parser.add_argument("--parallel", type=int, default=100, help="instances of the parallel one")
    parser.add_argument("--sequential", type=int, default=1000, help="of the sequential one")
    parser.add_argument("--skip-plain", action="store_true", help="leave plain SpiffWorkflow out")
    args: argparse.Namespace = parser.parse_args()
    if min(args.parallel, args.sequential) < 2 * WINDOW:
        parser.error(f"at least {2 * WINDOW} instances each")
    gunicorn_version()
    diagrams = {
        "mi_parallel": diagram("mi_parallel", args.parallel, sequential=False),
        "mi_sequential": diagram("mi_sequential", args.sequential, sequential=True),
    }

    def measure() -> dict[str, Any]:
        plain: dict[str, Any] = {}
        if not args.skip_plain:
            log("plain SpiffWorkflow: parallel")
            plain["parallel"] = plain_spiffworkflow(
                diagrams["mi_parallel"], "mi_parallel", args.parallel, sequential=False
            )
            log("plain SpiffWorkflow: sequential")
            plain["sequential"] = plain_spiffworkflow(
                diagrams["mi_sequential"], "mi_sequential", args.sequential, sequential=True
            )

        def setup(env: dict[str, str]) -> str:
            setup.env = env  # type: ignore[attr-defined]
            return migrate_and_deploy(env, diagrams)

        with web_server(args.data_dir, BENCH_DATABASE, setup) as (server, token, what):
            client = Client(server.url, token, setup.env)  # type: ignore[attr-defined]
            try:
                client.start("mi_parallel")  # warm-up: caches, sandbox, connections
                parallel = run_parallel(client, "mi_parallel", args.parallel)
                sequential = run_sequential(client, "mi_sequential", args.sequential)
            finally:
                client.close()
        ratio = sequential["last_over_10th"]
        return {
            **what,
            "baton": {"parallel": parallel, "sequential": sequential},
            "spiffworkflow_in_memory": plain,
            "goal": f"sequential: completion {args.sequential} within {GOAL_RATIO}x of the 10th",
            "goal_met": ratio is not None and ratio <= GOAL_RATIO,
        }

    return run_benchmark("multi_instance", measure, ok=lambda report: bool(report["goal_met"]))


if __name__ == "__main__":
    sys.exit(main())
