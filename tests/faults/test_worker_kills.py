"""SIGKILL of Celery worker processes in the middle of a service call: nothing is lost and no
step is called with two keys (the issue's first fault)."""

import pytest

from tests.faults.checks import (
    CHAIN,
    CHAIN_STEPS,
    assert_one_effect_per_step,
    assert_starts_answered_well,
    recovery_bound,
    wait_all_completed,
)
from tests.faults.stack import Baton, BatonApi, Fleet, Stack, job_call_in_flight, sigkill

pytestmark = [pytest.mark.faults, pytest.mark.slow]

INSTANCES = 16


def test_sigkilled_workers_lose_no_job_and_call_every_step_with_one_key(
    fault_stack: Stack, baton: Baton
) -> None:
    stub = fault_stack.stub
    assert stub is not None
    fleet = Fleet(fault_stack, BatonApi(baton.url, fault_stack.token), CHAIN, "kill")
    fleet.start(INSTANCES)
    assert_starts_answered_well(fleet)
    assert len(fleet.tags) == INSTANCES

    # 1. A pool child, mid-call: its worker replaces it.
    child, _ = job_call_in_flight(stub, baton)
    sigkill(child)
    stub.release()

    # 2. A worker's main process, mid-call; a new worker takes its place.
    _, worker = job_call_in_flight(stub, baton)
    baton.kill_main_process(worker)
    stub.release()
    baton.start_job_worker()
    baton.wait_ready()

    # 3. A whole worker group (main process and pool), mid-call; a new worker again.
    _, worker = job_call_in_flight(stub, baton)
    baton.kill_group(worker)
    stub.release()
    baton.start_job_worker()
    baton.wait_ready()

    assert fleet.unfinished() > 0, "the instances finished before the last kill"
    took = wait_all_completed(
        fleet, recovery_bound(fleet), "after the last kill", watch=baton.check_alive
    )
    assert_one_effect_per_step(fleet, CHAIN_STEPS)
    print(f"worker kills: {INSTANCES} instances completed {took:.1f} s after the last kill")
