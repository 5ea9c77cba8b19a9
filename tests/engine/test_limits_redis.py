"""The shared limiter's decisions against the real Redis, one call at a time (the workers'
end-to-end behaviour is in test_connection_limits.py)."""

import logging
from typing import Any
from uuid import uuid4

from django.test import override_settings

from engine.connectors import limits
from engine.connectors.connections import ConnectionConfig
from tests.engine.service_fixtures import wait_until

OK, FAIL, LIMITED = limits.CallOutcome.OK, limits.CallOutcome.FAIL, limits.CallOutcome.LIMITED


def connection(**values: float) -> ConnectionConfig:
    name = f"unit-{uuid4().hex[:10]}"
    return ConnectionConfig(name=name, base_url="https://api.test", **values)  # type: ignore[arg-type]


def test_the_rate_limit_lets_20_through_and_tells_the_21st_how_long_to_wait() -> None:
    config = connection(rate_limit=20)
    decisions = [limits.acquire(config, f"job-{i}") for i in range(25)]
    assert [d.allowed for d in decisions] == [True] * 20 + [False] * 5
    refused = decisions[20]
    assert refused.verdict == limits.Verdict.RATE
    assert 0 < refused.wait_seconds <= limits.MAX_WAIT_SECONDS
    assert limits.health(config)["rate"]["calls_in_window"] == 20


def test_the_cap_holds_slots_until_they_are_given_back() -> None:
    config = connection(max_concurrent=3)
    assert all(limits.acquire(config, f"job-{i}").allowed for i in range(3))
    assert limits.acquire(config, "job-3").verdict == limits.Verdict.BUSY
    assert limits.health(config)["concurrency"]["in_use"] == 3
    limits.release(config, "job-0", OK, held_seconds=0.1)
    assert limits.acquire(config, "job-3").allowed
    assert limits.acquire(config, "job-4").verdict == limits.Verdict.BUSY


def test_the_breaker_opens_after_3_failures_lets_one_probe_and_closes() -> None:
    config = connection(breaker_failures=3, breaker_cooldown_seconds=0.3)
    transitions = []
    for i in range(3):
        assert limits.acquire(config, f"job-{i}").allowed
        transitions.append(limits.release(config, f"job-{i}", FAIL, held_seconds=0.01))
    assert transitions == ["", "", "open"]
    assert limits.acquire(config, "job-9").verdict == limits.Verdict.OPEN
    probe = wait_until(
        lambda: (d := limits.acquire(config, "job-p")).allowed and d,
        timeout=5,
        what="the cool-down to end",
        poll=0.05,
    )
    assert probe.probe
    assert limits.acquire(config, "job-other").verdict == limits.Verdict.OPEN  # one probe only
    assert limits.release(config, "job-p", OK, held_seconds=0.01) == "closed"
    assert limits.acquire(config, "job-other").allowed


def test_a_failed_probe_opens_the_breaker_again() -> None:
    config = connection(breaker_failures=1, breaker_cooldown_seconds=0.2)
    limits.acquire(config, "a")
    assert limits.release(config, "a", FAIL, held_seconds=0.01) == "open"
    wait_until(lambda: limits.acquire(config, "p").allowed, timeout=5, poll=0.05)
    assert limits.release(config, "p", FAIL, held_seconds=0.01) == "open"
    assert limits.acquire(config, "q").verdict == limits.Verdict.OPEN


def test_an_error_rate_in_the_window_opens_the_breaker() -> None:
    config = connection(breaker_error_rate=50, breaker_min_calls=4)
    outcomes = [OK, FAIL, OK, FAIL]
    transitions = []
    for i, outcome in enumerate(outcomes):
        limits.acquire(config, f"j{i}")
        transitions.append(limits.release(config, f"j{i}", outcome, held_seconds=0.01))
    assert transitions == ["", "", "", "open"]


def test_a_429_pauses_every_call_and_halves_the_rate() -> None:
    config = connection(rate_limit=10)
    assert limits.acquire(config, "a").allowed
    limits.release(config, "a", LIMITED, held_seconds=0.01, retry_after=2)
    paused = limits.acquire(config, "b")
    assert paused.verdict == limits.Verdict.PAUSED and paused.wait_seconds >= 1.5
    health = limits.health(config)
    assert health["rate"]["slowed_after_429"] and health["rate"]["effective_limit"] == 5
    assert health["rate"]["paused_for_seconds"] > 1.5


def test_an_operator_holds_the_breaker_open_and_reset_forgets_everything() -> None:
    config = connection(rate_limit=1)
    limits.hold_open(config.name)
    assert limits.acquire(config, "a").verdict == limits.Verdict.OPEN
    assert limits.health(config)["breaker"]["held_open"] is True
    limits.reset(config.name)
    assert limits.acquire(config, "a").allowed
    assert limits.acquire(config, "b").verdict == limits.Verdict.RATE
    limits.reset(config.name)
    assert limits.acquire(config, "b").allowed


@override_settings(BATON_LIMITS_REDIS_URL="redis://127.0.0.1:1/0")
def test_calls_go_ahead_when_the_limits_redis_is_down() -> None:
    config = connection(rate_limit=1, max_concurrent=1)
    assert all(limits.acquire(config, f"job-{i}").allowed for i in range(3))
    assert limits.release(config, "job-0", FAIL, held_seconds=0.01) == ""


def test_a_guessed_limits_redis_is_named_in_the_log_once(caplog: Any) -> None:
    """With a RabbitMQ broker and no BATON_LIMITS_REDIS_URL, the limits use a guessed Redis:
    each process says so once, not silently."""
    url = "redis://127.0.0.1:6379/14"
    with (
        override_settings(BATON_LIMITS_REDIS_URL=url, BATON_LIMITS_REDIS_URL_GUESSED=True),
        caplog.at_level(logging.WARNING, logger="engine.connectors.limits"),
    ):
        limits.redis_client()
        limits.redis_client()
    warned = [r.getMessage() for r in caplog.records if "BATON_LIMITS_REDIS_URL" in r.getMessage()]
    assert warned == [
        "BATON_LIMITS_REDIS_URL is not set and the broker is not Redis: the limits of "
        f"connections use {url}. Set BATON_LIMITS_REDIS_URL to the Redis every worker shares."
    ]
