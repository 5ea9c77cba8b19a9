"""Timers due while hundreds of service jobs wait for the job worker fire before that backlog
is worked off: timer ticks have a queue and a worker of their own (the issue's fourth
fault: 20 timers due in 5 s fired 70 s late behind ~500 queued jobs)."""

import pytest

from tests.faults.checks import (
    FANOUT,
    FANOUT_BRANCHES,
    TIMER,
    assert_starts_answered_well,
)
from tests.faults.stack import Baton, BatonApi, Fleet, Stack, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.slow]

BACKLOG_INSTANCES = 20  # x FANOUT_BRANCHES service jobs, all pending at once
TIMERS = 12
# When every timer has fired, at least this many of the backlog's jobs still wait: the
# job worker (2 calls of 0.3 s at a time) has worked off only a few dozen by then.
STILL_WAITING = 100


def test_timers_fire_while_a_backlog_of_service_jobs_waits(
    fault_stack: Stack, baton: Baton
) -> None:
    api = BatonApi(baton.url, fault_stack.token)
    backlog = Fleet(fault_stack, api, FANOUT, "backlog")
    backlog.start(BACKLOG_INSTANCES)
    assert_starts_answered_well(backlog)
    assert len(backlog.tags) == BACKLOG_INSTANCES
    timers = Fleet(fault_stack, api, TIMER, "timer")
    timers.start(TIMERS)
    assert_starts_answered_well(timers)
    assert len(timers.tags) == TIMERS

    def counts() -> tuple[int, int, int]:
        """(timers not fired, timer instances not completed, backlog jobs not yet claimed),
        in one snapshot."""
        row = fault_stack.rows(
            "SELECT (SELECT count(*) FROM engine_timer t JOIN engine_processinstance i "
            "        ON i.id = t.instance_id WHERE i.business_key = ANY(%s) AND NOT t.fired),"
            "       (SELECT count(*) FROM engine_processinstance "
            "        WHERE business_key = ANY(%s) AND status <> 'completed'),"
            "       (SELECT count(*) FROM engine_servicejob j JOIN engine_processinstance i "
            "        ON i.id = j.instance_id WHERE i.business_key = ANY(%s) "
            "        AND j.status = 'pending')",
            (sorted(timers.tags), sorted(timers.tags), sorted(backlog.tags)),
        )[0]
        return int(row[0]), int(row[1]), int(row[2])

    def backlog_when_all_fired() -> int | None:
        unfired, unfinished, waiting = counts()
        return waiting + 1 if unfired == 0 and unfinished == 0 else None  # + 1: truthy

    _, _, waiting_at_start = counts()
    assert waiting_at_start > STILL_WAITING, "no backlog to speak of"
    waiting = (
        wait_until(
            backlog_when_all_fired,
            120,
            "every timer instance to fire and complete",
            watch=baton.check_alive,
        )
        - 1
    )
    print(
        f"timers behind a backlog: {waiting_at_start} jobs waited when the timers were "
        f"set, {waiting} still waited when all {TIMERS} had fired"
    )
    assert waiting >= STILL_WAITING, (
        f"the timers fired only once the backlog was (nearly) worked off: {waiting} of "
        f"{BACKLOG_INSTANCES * FANOUT_BRANCHES} jobs still waited"
    )
