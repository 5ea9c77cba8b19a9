"""Baton's one clock: when timers are due and whether they have fired.

Everything that schedules or fires a timer asks `now()`, and so do the workflow's timer
events (engine.bpmn.timers). Tests move the clock with `advance()` instead of sleeping; in
production the offset stays zero.
"""

import datetime
import threading

_lock = threading.Lock()
_offset = datetime.timedelta(0)


def now() -> datetime.datetime:
    """The current time (aware, UTC), as Baton sees it."""
    return datetime.datetime.now(datetime.UTC) + _offset


def advance(delta: datetime.timedelta) -> datetime.datetime:
    """Move the clock forward (tests); returns the new `now()`."""
    global _offset
    with _lock:
        _offset += delta
    return now()


def reset() -> None:
    """Back to real time."""
    global _offset
    with _lock:
        _offset = datetime.timedelta(0)
