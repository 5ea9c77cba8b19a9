"""Cron expressions of timer start events, as Camunda (Quartz) and Unix users write them."""

import datetime

import pytest

from engine.bpmn.cron import CronError, CronSchedule, looks_like_cron
from engine.services.start_triggers import next_due

MONDAY_MORNING = datetime.datetime(2027, 1, 25, 4, 46, tzinfo=datetime.UTC)


def next_after(expression: str, moment: datetime.datetime = MONDAY_MORNING) -> datetime.datetime:
    return CronSchedule.parse(expression).next_after(moment)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0 0 9 * * ?", datetime.datetime(2027, 1, 25, 9, 0)),  # every day at 09:00
        ("0 0 9 ? * 2", datetime.datetime(2027, 1, 25, 9, 0)),  # Quartz 2 = Monday
        ("0 0 9 ? * 1", datetime.datetime(2027, 1, 31, 9, 0)),  # Quartz 1 = Sunday
        ("0 0 9 ? * MON-FRI", datetime.datetime(2027, 1, 25, 9, 0)),
        ("0 0 9 ? * 7", datetime.datetime(2027, 1, 30, 9, 0)),  # Saturday
        ("0 30 10 * * ? 2028", datetime.datetime(2028, 1, 1, 10, 30)),
        ("*/5 * * * *", datetime.datetime(2027, 1, 25, 4, 50)),  # Unix: five fields
        ("0 9 * * 0", datetime.datetime(2027, 1, 31, 9, 0)),  # Unix 0 = Sunday
    ],
)
def test_quartz_and_unix_expressions(expression, expected):
    assert next_after(expression) == expected.replace(tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0 0 9 L * ?", datetime.datetime(2027, 1, 31, 9, 0)),  # last day of the month
        ("0 0 9 L 2 ?", datetime.datetime(2027, 2, 28, 9, 0)),
        ("0 0 9 ? * 6L", datetime.datetime(2027, 1, 29, 9, 0)),  # last Friday of the month
        ("0 0 9 ? * 6#3", datetime.datetime(2027, 2, 19, 9, 0)),  # third Friday
        ("0 0 9 ? * 2#1", datetime.datetime(2027, 2, 1, 9, 0)),  # first Monday
    ],
)
def test_quartz_last_and_nth_weekday(expression, expected):
    assert looks_like_cron(expression)
    assert next_after(expression) == expected.replace(tzinfo=datetime.UTC)


def test_the_next_time_is_strictly_after_the_given_one():
    nine = datetime.datetime(2027, 1, 25, 9, 0, tzinfo=datetime.UTC)
    assert next_after("0 0 9 * * ?", nine) == nine + datetime.timedelta(days=1)


@pytest.mark.parametrize(
    "expression",
    [
        "0 0 25 * * ?",
        "0 0 9 ? * 8",
        "0 0 9 ? * 0",
        "0 0 9 30 2 ?",
        "a b c d e",
        "0 0 9",
    ],
)
def test_bad_expressions_are_refused(expression):
    with pytest.raises(CronError):
        CronSchedule.parse(expression)


def test_iso_values_are_not_cron():
    assert not looks_like_cron("R/PT1H")
    assert not looks_like_cron("2030-01-01T09:00:00Z")


def test_a_cron_expression_longer_than_anyone_writes_is_refused_at_once():
    # A diagram could carry megabytes of "cron"; parsing that cost seconds per deploy.
    with pytest.raises(CronError, match="at most 200 characters"):
        CronSchedule.parse("0 0 9 " + ",".join(["1"] * 200) + " * ?")


def test_a_schedule_whose_last_time_has_passed_ends_instead_of_failing_every_start():
    last = datetime.datetime(2027, 1, 1, 9, 0, tzinfo=datetime.UTC)
    assert next_due("0 0 9 1 1 ? 2027", last, None, last) == (None, 0)
