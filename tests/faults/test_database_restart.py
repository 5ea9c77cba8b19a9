"""The own Postgres restarts (`pg_ctl restart -m fast`) in the middle of a run while requests
keep coming: no 500, nothing stuck (the issue's third fault)."""

import threading

import httpx
import pytest

from tests.faults.checks import (
    CHAIN,
    CHAIN_STEPS,
    assert_one_effect_per_step,
    assert_starts_answered_well,
    recovery_bound,
    wait_all_completed,
)
from tests.faults.stack import Baton, BatonApi, Fleet, Stack, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.slow]

BEFORE = 10
# Requests after the restart: more than the web server has threads with a kept connection.
AFTER = 12


def test_a_database_restart_answers_no_500_and_loses_no_job(
    fault_stack: Stack, baton: Baton
) -> None:
    stub = fault_stack.stub
    assert stub is not None
    api = BatonApi(baton.url, fault_stack.token)
    fleet = Fleet(fault_stack, api, CHAIN, "pg")
    fleet.start(BEFORE)
    wait_until(
        lambda: len(stub.calls_of(fleet.tags)) >= 3, 60, "the first calls", watch=baton.check_alive
    )

    # Starts keep coming, one after the other, before, during and after the restart.
    restarted = threading.Event()
    starts_after: list[int] = []
    stop = threading.Event()

    def keep_starting() -> None:
        client = BatonApi(baton.url, fault_stack.token)
        try:
            while not stop.is_set():
                was_restarted = restarted.is_set()
                fleet.start(1, api=client)
                if was_restarted:
                    starts_after.append(1)
        finally:
            client.close()

    starter = threading.Thread(target=keep_starting, daemon=True)
    starter.start()
    try:
        fault_stack.postgres.restart_fast()
        restarted.set()
        # Reads too: every kept connection of the web server meets the restart.
        reads: list[httpx.Response] = [
            api.get("/api/v1/instances/?page_size=5") for _ in range(AFTER)
        ]
        wait_until(
            lambda: len(starts_after) >= AFTER,
            120,
            "starts after the restart",
            watch=baton.check_alive,
        )
    finally:
        stop.set()
        starter.join(timeout=120)

    failed_reads = [
        (r.status_code, r.text[:200])
        for r in reads
        if r.status_code != 200
        and not (
            r.status_code == 503
            and r.headers.get("content-type", "").startswith("application/problem")
        )
    ]
    assert not failed_reads, f"reads after the restart answered {failed_reads}"
    assert_starts_answered_well(fleet)
    took = wait_all_completed(
        fleet, recovery_bound(fleet), "after the restart", watch=baton.check_alive
    )
    assert_one_effect_per_step(fleet, CHAIN_STEPS)
    statuses = sorted({s.status for s in fleet.starts})
    print(
        f"database restart: {len(fleet.starts)} starts answered {statuses} "
        f"({sum(not s.committed for s in fleet.starts)} not 201), reads "
        f"{sorted({r.status_code for r in reads})}; {len(fleet.tags)} instances "
        f"completed {took:.1f} s after it"
    )
