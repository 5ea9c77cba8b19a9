"""Baton's one clock: when timers are due and whether they have fired.

Everything that schedules or fires a timer asks `now()`, and so do the workflow's timer
events (engine.bpmn.timers). Tests move time for the whole test process with time-machine
(the `clock` fixture of tests/conftest.py) instead of sleeping; nothing here is for tests.
"""

import datetime


def now() -> datetime.datetime:
    """The current time (aware, UTC)."""
    return datetime.datetime.now(datetime.UTC)
