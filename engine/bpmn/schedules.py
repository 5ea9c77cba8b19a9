"""ISO 8601 timer arithmetic, read against a moment the caller gives (Baton's clock), never
against the system time the workflow library would read on its own."""

import datetime

from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition


def duration_after(text: str, start: datetime.datetime) -> datetime.timedelta:
    """The length of ISO 8601 duration `text` (`P1M`, `PT30S`) counted from `start` (months
    and years differ in length)."""
    parsed = TimerEventDefinition.parse_iso_duration(text)
    delta: datetime.timedelta = TimerEventDefinition.get_timedelta_from_start(parsed, start)
    return delta


def moment(text: str) -> datetime.datetime:
    """An ISO 8601 date and time (or week date), aware, in UTC."""
    value = TimerEventDefinition.parse_time_or_duration(text)
    if not isinstance(value, datetime.datetime):
        raise ValueError(f"{text!r} is a duration, not a date and time")
    return value


def recurring_interval(
    text: str, now: datetime.datetime
) -> tuple[int, datetime.datetime, datetime.timedelta]:
    """(repetitions, -1 for no end; first due time; interval) of an ISO 8601 repeating
    interval: `R3/PT1H` (from `now`), `R/<start>/<duration>` or `R5/<duration>/<end>`."""
    repeat, _, rest = text.strip().upper().partition("/")
    count = repeat.lstrip("R")
    cycles = int(count) if count else -1
    parts = rest.replace("--", "/").split("/")
    first = TimerEventDefinition.parse_time_or_duration(parts[0])
    second = TimerEventDefinition.parse_time_or_duration(parts[1]) if len(parts) > 1 else None
    if isinstance(first, datetime.datetime) and isinstance(second, dict):
        return cycles, first, TimerEventDefinition.get_timedelta_from_start(second, first)
    if isinstance(first, dict) and isinstance(second, datetime.datetime):
        interval = TimerEventDefinition.get_timedelta_from_end(first, second)
        return cycles, second - interval, interval
    if isinstance(first, dict) and second is None:
        interval = TimerEventDefinition.get_timedelta_from_start(first, now)
        return cycles, now + interval, interval
    raise ValueError(f"{text!r} is not a repeating interval")
