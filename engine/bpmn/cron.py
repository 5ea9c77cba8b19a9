"""Cron expressions for timer start events (Camunda's `timeCycle` may be a cron expression).

Quartz style (6 or 7 fields: second minute hour day-of-month month day-of-week [year], with
`?`, day-of-week 1-7 = SUN-SAT, `L` for the last day of the month or the last given weekday
of the month, `W` for the nearest weekday, `n#k` for the k-th weekday n of the month) and Unix
style (5 fields: minute hour day-of-month month day-of-week, day-of-week 0-7 with 0 and 7 =
Sunday). croniter evaluates them; this module only translates Quartz's day-of-week numbering
into croniter's. Times are in the project's time zone.
"""

import datetime
import re
from dataclasses import dataclass

from croniter import CroniterError, croniter
from django.utils import timezone

_FIELD = re.compile(r"^[0-9A-Za-z*?/,#\-]+$")
_NUMBER = re.compile(r"\d+")
_MAX_YEARS_AHEAD = 5
_QUARTZ_DAY_OF_WEEK = 5  # field index
# Longer than any schedule a person writes; a diagram's megabyte-long "cron" would cost
# seconds of CPU in the parser at every deploy and firing.
MAX_CRON_CHARACTERS = 200


class CronError(ValueError):
    """The text is not a cron expression Baton understands."""


def looks_like_cron(text: str) -> bool:
    fields = text.split()
    return 5 <= len(fields) <= 7 and all(_FIELD.match(f) for f in fields)


def _weekday_number(match: re.Match[str]) -> str:
    """Quartz counts SUN-SAT as 1-7, croniter as 0-6."""
    quartz = int(match.group())
    if not 1 <= quartz <= 7:
        raise CronError(f"{quartz} is outside 1-7")
    return str(quartz - 1)


def _weekday_part(part: str) -> str:
    """One comma-separated part of a Quartz day-of-week field in croniter's terms."""
    base, slash, step = part.partition("/")
    if base.upper() == "L":
        return "6"  # Quartz: `L` alone in day-of-week is Saturday
    if "#" in base:
        day, _, nth = base.partition("#")
        return f"{_NUMBER.sub(_weekday_number, day)}#{nth}{slash}{step}"
    if len(base) > 1 and base.upper().endswith("L"):
        return f"L{_NUMBER.sub(_weekday_number, base[:-1])}{slash}{step}"  # last weekday n
    return f"{_NUMBER.sub(_weekday_number, base)}{slash}{step}"


def _croniter_expression(fields: list[str]) -> str:
    """The Quartz fields as croniter reads them (seconds first, weekdays from 0)."""
    translated = list(fields)
    weekdays = fields[_QUARTZ_DAY_OF_WEEK]
    if weekdays not in ("*", "?"):
        translated[_QUARTZ_DAY_OF_WEEK] = ",".join(
            _weekday_part(part) for part in weekdays.split(",")
        )
    return " ".join(translated)


@dataclass(frozen=True)
class CronSchedule:
    expression: str  # in croniter's syntax
    seconds_first: bool

    @classmethod
    def parse(cls, text: str) -> "CronSchedule":
        if len(text) > MAX_CRON_CHARACTERS:
            raise CronError(f"a cron expression has at most {MAX_CRON_CHARACTERS} characters")
        fields = text.split()
        if not 5 <= len(fields) <= 7:
            raise CronError("a cron expression has 5, 6 or 7 fields")
        quartz = len(fields) >= 6
        expression = _croniter_expression(fields) if quartz else " ".join(fields)
        if not croniter.is_valid(expression, second_at_beginning=quartz, strict=True):
            raise CronError(f"{text!r} is not a valid cron expression")
        return cls(expression, quartz)

    def next_after(self, moment: datetime.datetime) -> datetime.datetime:
        """The first time strictly after `moment` that the schedule names (aware)."""
        local = moment.astimezone(timezone.get_default_timezone()).replace(microsecond=0)
        try:
            schedule = croniter(
                self.expression,
                local,
                second_at_beginning=self.seconds_first,
                max_years_between_matches=_MAX_YEARS_AHEAD,
            )
            found: datetime.datetime = schedule.get_next(datetime.datetime)
        except CroniterError as exc:
            raise CronError("the expression names no time in the next five years") from exc
        return found
