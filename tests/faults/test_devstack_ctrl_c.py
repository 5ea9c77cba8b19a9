"""Ctrl-C of `make run`'s supervisor while jobs run, then `make run` again: every job still
runs, each step with one effect."""

import psutil
import pytest

from tests.faults.checks import (
    CHAIN,
    CHAIN_STEPS,
    assert_one_effect_per_step,
    assert_starts_answered_well,
    recovery_bound,
    wait_all_completed,
)
from tests.faults.stack import BatonApi, Fleet, Stack, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.slow]

INSTANCES = 20


def test_ctrl_c_of_make_run_mid_jobs_loses_none(fault_stack: Stack) -> None:
    stub = fault_stack.stub
    assert stub is not None
    fault_stack.ensure_up()
    env = fault_stack.env("devstack")
    env.pop("DJANGO_SETTINGS_MODULE")  # as `make run` runs: its own (development) settings
    devstack = fault_stack.devstack("devstack", env)
    try:
        devstack.start()
        api = BatonApi(devstack.url, fault_stack.token)
        fleet = Fleet(fault_stack, api, CHAIN, "devstack")
        fleet.start(INSTANCES)
        assert_starts_answered_well(fleet)
        assert len(fleet.tags) == INSTANCES
        wait_until(
            lambda: stub.in_flight(fleet.tags) > 0,
            60,
            "a job to be calling",
            watch=devstack.check_alive,
        )

        children = devstack.descendants()
        assert devstack.ctrl_c() == 0, devstack.child and devstack.child.log_text()[-3000:]
        alive = [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not alive, f"left running after Ctrl-C: {[p.cmdline() for p in alive]}"
        assert fleet.unfinished() > 0, "every instance completed before Ctrl-C"

        devstack.start()
        left = fleet.unfinished()
        took = wait_all_completed(
            fleet,
            recovery_bound(fleet),
            "after `make run` started again",
            watch=devstack.check_alive,
        )
        assert_one_effect_per_step(fleet, CHAIN_STEPS)
        print(
            f"make run Ctrl-C: {left} of {INSTANCES} instances were left; all completed "
            f"{took:.1f} s after the restart"
        )
    finally:
        devstack.stop()
        fault_stack.clean_up()
