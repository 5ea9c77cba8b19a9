"""What every fault scenario asserts: each start answered 201 (or a 503 problem that created
nothing), every instance completes once the fault is over, and every step of every instance
had one effect: all its calls carried one Idempotency-Key, and one job succeeded for it."""

import time
from collections.abc import Callable

from tests.faults.stack import (
    Fleet,
    chain_diagram,
    fanout_diagram,
    timer_diagram,
    wait_until,
)

CHAIN, FANOUT, TIMER = "fault_chain", "fault_fanout", "fault_timer"
STEPS = 3  # service tasks per chain instance
FANOUT_BRANCHES = 20  # service tasks per fan-out instance, all pending at once
TIMER_SECONDS = 3
CHAIN_STEPS = [f"s{i}" for i in range(1, STEPS + 1)]
STUB_DELAY_SECONDS = 0.3
SWEEP_INTERVAL_SECONDS = 2
JOB_CONCURRENCY = 2

DIAGRAMS = {
    CHAIN: chain_diagram(CHAIN, STEPS),
    FANOUT: fanout_diagram(FANOUT, FANOUT_BRANCHES),
    TIMER: timer_diagram(TIMER, TIMER_SECONDS),
}
# What the engine reads (see the `celery_workers` fixture of tests/engine/service_fixtures.py).
SETTINGS = {
    "BATON_RETRY_BASE_SECONDS": "0.2",
    "BATON_RETRY_MAX_SECONDS": "2",
    "BATON_SWEEP_INTERVAL_SECONDS": str(SWEEP_INTERVAL_SECONDS),
}

# After a fault is over, everything completes within this plus the work that was left (at
# the workers' pace). Generous: the promise is the sweep interval + 5 s; a job stuck until the
# job time limit (5 min) fails it.
RECOVERY_SLACK_SECONDS = 60 + SWEEP_INTERVAL_SECONDS


def recovery_bound(fleet: Fleet, steps: int = STEPS) -> float:
    """Seconds a fleet may take to complete once a fault is over (the whole fleet's work at
    the job worker's pace, plus the slack)."""
    work = len(fleet.tags) * steps * STUB_DELAY_SECONDS / JOB_CONCURRENCY
    return RECOVERY_SLACK_SECONDS + work


def assert_starts_answered_well(fleet: Fleet) -> None:
    """201, or a 503 problem+json for a start that left no instance; never a 500 (nor no
    answer at all)."""
    bad = [s for s in fleet.starts if not (s.committed or s.refused_cleanly)]
    assert not bad, "starts answered badly: " + "; ".join(
        f"{s.status} {str(s.body)[:300]}" for s in bad[:5]
    )
    refused = [s.tag for s in fleet.starts if s.refused_cleanly]
    if refused:
        created = fleet.stack.rows(
            "SELECT business_key FROM engine_processinstance WHERE business_key = ANY(%s)",
            (refused,),
        )
        assert not created, f"a 503 answered a start that created its instance: {created}"


def wait_all_completed(
    fleet: Fleet, timeout: float, what: str, watch: Callable[[], None] | None = None
) -> float:
    """Seconds it took (not asserted: the timeout is the bound)."""
    began = time.monotonic()
    wait_until(
        fleet.completed,
        timeout,
        f"every instance to complete {what} "
        f"({fleet.unfinished()} of {len(fleet.tags)} unfinished when it began)",
        watch=watch,
        poll=0.2,
    )
    return time.monotonic() - began


def assert_one_effect_per_step(fleet: Fleet, steps: list[str]) -> None:
    assert fleet.stack.stub is not None
    keys = fleet.stack.stub.keys_per_step(fleet.tags)
    missing = [(tag, step) for tag in fleet.tags for step in steps if (tag, step) not in keys]
    assert not missing, f"steps never called: {missing[:5]}"
    several = {where: found for where, found in keys.items() if len(found) != 1}
    assert not several, f"steps called with more than one key: {list(several.items())[:5]}"
    jobs = fleet.succeeded_jobs_per_step()
    wrong = {
        (tag, step): jobs.get((tag, step), 0)
        for tag in fleet.tags
        for step in steps
        if jobs.get((tag, step), 0) != 1
    }
    assert not wrong, f"steps without exactly one succeeded job: {list(wrong.items())[:5]}"
