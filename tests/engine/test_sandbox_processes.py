"""The sandbox processes of an engine process (engine/bpmn/sandbox/leases.py, client.py):
which operations share one, and what happens when one or the zygote goes away."""

import signal
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from engine.bpmn.sandbox import leases
from engine.bpmn.scripting import ScriptLimitExceeded, build_script_engine, script_context
from tests.engine.service_fixtures import wait_until


@pytest.fixture(autouse=True)
def _own_zygote() -> Iterator[None]:
    """Each test starts without sandbox processes and leaves none behind."""
    leases.shutdown()
    yield
    leases.shutdown()


def run(source: str, key: str | None, data: dict[str, Any] | None = None) -> dict[str, Any]:
    context = dict(data or {})
    with script_context(user=None, reuse_key=key, time_limit=2):
        build_script_engine().environment.execute(source, context)
    return context


def idle_pids() -> dict[str, int]:
    return {key: process.pid or 0 for key, process in leases._pool.idle}


def zygote_init() -> psutil.Process:
    zygote = leases._pool.zygote
    assert zygote is not None
    (init,) = psutil.Process(zygote.process.pid).children()
    return init


def test_a_sandbox_process_serves_operations_of_one_definition_only():
    run("x = len('a')", "definition 1")
    run("x = len('b')", "definition 2")
    first = idle_pids()
    assert set(first) == {"definition 1", "definition 2"}
    assert first["definition 1"] != first["definition 2"]

    run("x = len('c')", "definition 1")
    assert idle_pids() == first  # the same process served the definition again
    run("x = len('d')", None)  # outside an instance: a process of its own, gone after
    assert idle_pids() == first


def test_with_reuse_per_operation_every_operation_gets_a_new_process(monkeypatch):
    monkeypatch.setenv("BATON_SANDBOX_REUSE", "operation")
    run("x = len('a')", "definition 1")
    run("x = len('b')", "definition 1")
    assert idle_pids() == {}


def test_the_engine_starts_a_new_zygote_when_its_zygote_dies():
    assert run("x = len('abc')", "definition 1")["x"] == 3
    old = zygote_init()
    old.kill()
    wait_until(
        lambda: leases._pool.zygote is None or not leases._pool.zygote.alive,
        what="the old zygote's end",
    )

    assert run("x = len('abcd')", "definition 1")["x"] == 4
    assert zygote_init().pid != old.pid


def test_a_changed_memory_limit_gets_a_process_with_that_limit(settings):
    run("x = 1", "definition 1")
    settings.BATON_SCRIPT_MEMORY_LIMIT_MB = 128
    with pytest.raises(ScriptLimitExceeded, match="at most 128 MB"):
        run("x = [bytes(9_999_999) for i in range(20)]", "definition 1")


def test_an_interrupted_operation_leaves_no_answer_for_the_next_one():
    """An operation interrupted while its script runs (here by an alarm in this thread) never
    hands its process, with the script's answer still on its way, to the next operation."""

    def interrupt(signum: int, frame: Any) -> None:
        raise RuntimeError("interrupted")

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with pytest.raises(RuntimeError, match="interrupted"):
            run(
                "n = 0\nwhile n < 3_000_000:\n    n += 1\nsecret = 'first operation'",
                "definition 1",
            )
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

    assert run("mine = str('second operation')", "definition 1") == {"mine": "second operation"}
