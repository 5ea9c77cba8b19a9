"""The broker (the own Redis) stops in the middle of a run, with every message in it, while
starts keep coming; then it comes back empty (the issue's second fault)."""

import pytest

from tests.faults.checks import (
    CHAIN,
    CHAIN_STEPS,
    FANOUT,
    FANOUT_BRANCHES,
    assert_one_effect_per_step,
    assert_starts_answered_well,
    recovery_bound,
    wait_all_completed,
)
from tests.faults.stack import Baton, BatonApi, Fleet, Stack, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.slow]

BEFORE, DURING, AFTER = 8, 4, 4  # starts before, during and after the outage


def test_a_broker_outage_answers_no_500_and_loses_no_job(fault_stack: Stack, baton: Baton) -> None:
    stub = fault_stack.stub
    assert stub is not None
    fleet = Fleet(fault_stack, BatonApi(baton.url, fault_stack.token), CHAIN, "broker")
    fleet.start(BEFORE)
    # Mid-run: some steps called, most still to come.
    wait_until(
        lambda: len(stub.calls_of(fleet.tags)) >= 3, 60, "the first calls", watch=baton.check_alive
    )

    fault_stack.redis.stop()  # the queued messages are gone with it
    during = fleet.start(DURING)
    # One start that makes many jobs at once: each is marked for the sweep, none waits for
    # a broker connection of its own.
    fanout = Fleet(fault_stack, fleet.api, FANOUT, "broker-fan")
    fanout.start(1)
    fault_stack.redis.start()
    fleet.start(AFTER)

    assert_starts_answered_well(fleet)
    assert_starts_answered_well(fanout)
    assert len(fanout.tags) == 1, fanout.starts
    took = wait_all_completed(
        fleet, recovery_bound(fleet), "after the broker came back", watch=baton.check_alive
    )
    assert_one_effect_per_step(fleet, CHAIN_STEPS)
    wait_all_completed(fanout, recovery_bound(fanout, FANOUT_BRANCHES), "(the fan-out)")
    assert_one_effect_per_step(fanout, [f"b{i:02d}" for i in range(1, FANOUT_BRANCHES + 1)])
    print(
        f"broker outage: starts during it answered {[s.status for s in during]}; "
        f"{len(fleet.tags)} instances completed {took:.1f} s after it"
    )
