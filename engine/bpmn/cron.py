"""Cron expressions for timer start events (Camunda's `timeCycle` may be a cron expression).

Quartz style (6 or 7 fields: second minute hour day-of-month month day-of-week [year], with
`?`, day-of-week 1-7 = SUN-SAT) and Unix style (5 fields: minute hour day-of-month month
day-of-week, day-of-week 0-7 with 0 and 7 = Sunday). Each field takes `*`, `?`, numbers,
names (JAN-DEC, SUN-SAT), ranges `a-b`, steps `*/n`, `a/n`, `a-b/n` and lists `a,b`.
`L`, `W` and `#` are not supported. Times are in the project's time zone.
"""
import datetime
import re
from dataclasses import dataclass

from django.utils import timezone

_MONTHS = {name: number for number, name in enumerate(
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], start=1)}
_DAYS = {name: number for number, name in enumerate(
    ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}
_FIELD = re.compile(r"^[0-9A-Za-z*?/,\-]+$")
_MAX_DAYS_AHEAD = 366 * 5


class CronError(ValueError):
    """The text is not a cron expression Baton understands."""


def looks_like_cron(text: str) -> bool:
    fields = text.split()
    return 5 <= len(fields) <= 7 and all(_FIELD.match(f) for f in fields)


def _number(token: str, names: dict[str, int], offset: int) -> int:
    upper = token.upper()
    if upper in names:
        return names[upper]
    if not token.isdigit():
        raise CronError(f"{token!r} is not a number or a known name")
    return int(token) - offset


def _parse_field(text: str, low: int, high: int, names: dict[str, int] | None = None,
                 offset: int = 0) -> tuple[set[int], bool]:
    """The values a field allows, and whether it restricts anything (`*`/`?` do not)."""
    if text in ("*", "?"):
        return set(range(low, high + 1)), False
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"bad step {step_text!r}")
            step = int(step_text)
        if part in ("*", "?", ""):
            start, end = low, high
        elif "-" in part:
            first, last = part.split("-", 1)
            start, end = _number(first, names or {}, offset), _number(last, names or {}, offset)
        else:
            start = _number(part, names or {}, offset)
            end = high if step > 1 else start
        if not (low <= start <= high and low <= end <= high and start <= end):
            raise CronError(f"{part!r} is outside {low + offset}-{high + offset}")
        values.update(range(start, end + 1, step))
    return values, True


@dataclass(frozen=True)
class CronSchedule:
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    years: frozenset[int] | None
    days_restricted: bool
    weekdays_restricted: bool

    @classmethod
    def parse(cls, text: str) -> "CronSchedule":
        fields = text.split()
        if not 5 <= len(fields) <= 7:
            raise CronError("a cron expression has 5, 6 or 7 fields")
        quartz = len(fields) >= 6
        if not quartz:
            fields = ["0", *fields]
        seconds, _ = _parse_field(fields[0], 0, 59)
        minutes, _ = _parse_field(fields[1], 0, 59)
        hours, _ = _parse_field(fields[2], 0, 23)
        days, days_restricted = _parse_field(fields[3], 1, 31)
        months, _ = _parse_field(fields[4], 1, 12, _MONTHS)
        if quartz:
            weekdays, weekdays_restricted = _parse_field(fields[5], 0, 6, _DAYS, offset=1)
        else:
            weekdays, weekdays_restricted = _parse_field(fields[5], 0, 7, _DAYS)
            weekdays = {d % 7 for d in weekdays}
        years = None
        if len(fields) == 7 and fields[6] not in ("*", "?"):
            years = frozenset(_parse_field(fields[6], 1970, 2199)[0])
        return cls(frozenset(seconds), frozenset(minutes), frozenset(hours), frozenset(days),
                   frozenset(months), frozenset(weekdays), years, days_restricted,
                   weekdays_restricted)

    def _day_matches(self, day: datetime.date) -> bool:
        if day.month not in self.months or (self.years and day.year not in self.years):
            return False
        in_days = day.day in self.days
        in_weekdays = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_days or in_weekdays  # as cron does when both are given
        return in_days and in_weekdays

    def _first_time(self, after: datetime.time | None) -> datetime.time | None:
        for hour in sorted(self.hours):
            for minute in sorted(self.minutes):
                for second in sorted(self.seconds):
                    candidate = datetime.time(hour, minute, second)
                    if after is None or candidate > after:
                        return candidate
        return None

    def next_after(self, moment: datetime.datetime) -> datetime.datetime:
        """The first time strictly after `moment` that the schedule names (aware)."""
        zone = timezone.get_default_timezone()
        local = moment.astimezone(zone).replace(microsecond=0, tzinfo=None)
        day = local.date()
        after: datetime.time | None = local.time()
        for _ in range(_MAX_DAYS_AHEAD):
            if self._day_matches(day):
                found = self._first_time(after)
                if found is not None:
                    return datetime.datetime.combine(day, found).replace(tzinfo=zone)
            day += datetime.timedelta(days=1)
            after = None
        raise CronError("the expression names no time in the next five years")
