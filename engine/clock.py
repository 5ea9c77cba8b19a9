"""Baton's one clock: when timers are due and whether they have fired.

Everything that schedules or fires a timer asks `now()`, and so does SpiffWorkflow's timer
code (its module reads `datetime.now`; `install()` points that at this clock). Tests move
the clock with `advance()` instead of sleeping; in production the offset stays zero.
"""
import datetime
import threading

from SpiffWorkflow.bpmn.specs.event_definitions import timer as spiff_timer

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


class ClockDateTime(datetime.datetime):
    """`datetime` whose `now()` is Baton's clock; everything else is the standard class."""

    @classmethod
    def now(cls, tz: datetime.tzinfo | None = None) -> "ClockDateTime":
        moment = now()
        if tz is None:
            return cls.fromtimestamp(moment.timestamp())
        return cls.fromtimestamp(moment.timestamp(), tz)


def install() -> None:
    """Make SpiffWorkflow's timer events read Baton's clock."""
    spiff_timer.datetime = ClockDateTime  # type: ignore[misc]


install()
