"""Timer events that read Baton's clock (`engine.clock.now`).

The library's timer event definitions read the system time themselves; Baton's parsers
create these subclasses instead, and the serializer restores stored timers (saved under the
library's type names) as these subclasses, so every timer decision goes through Baton's clock
without touching the library. Tests move time with time-machine (tests/conftest.py's `clock`).
"""

import datetime
import time
from typing import Any

from SpiffWorkflow.bpmn.serializer.default.event_definition import (
    TimerConditionalEventDefinitionConverter,
)
from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    DurationTimerEventDefinition,
    TimeDateEventDefinition,
    TimerEventDefinition,
)
from SpiffWorkflow.task import Task

from engine import clock

from .schedules import duration_after, recurring_interval

# Internal data of a cycle timer's task: when it fired (`time.time()`, as the library stamps a
# task's `last_state_change`), one entry per firing.
FIRED_AT = "baton_fired_at"


def _expression_value(task: Task, expression: str) -> Any:
    return task.workflow.script_engine.evaluate(task, expression)


def _passed(due: datetime.datetime) -> bool:
    return due < clock.now()


class ClockTimeDateEventDefinition(TimeDateEventDefinition):
    """A timer at a date and time (`timeDate`)."""

    def has_fired(self, my_task: Task) -> bool:
        due_text = my_task._get_internal_data("event_value")
        if due_text is None:
            due_text = _expression_value(my_task, self.expression)
            my_task._set_internal_data(event_value=due_text)
        if _passed(TimerEventDefinition.parse_time_or_duration(due_text)):
            my_task._set_internal_data(event_fired=True)
        return bool(my_task._get_internal_data("event_fired", False))


class ClockDurationTimerEventDefinition(DurationTimerEventDefinition):
    """A timer a duration after the task started waiting (`timeDuration`)."""

    def has_fired(self, my_task: Task) -> bool:
        due_text = my_task._get_internal_data("event_value")
        if due_text is None:
            now = clock.now()
            due_text = (
                now + duration_after(_expression_value(my_task, self.expression), now)
            ).isoformat()
            my_task._set_internal_data(event_value=due_text)
        if _passed(TimerEventDefinition.get_datetime(due_text)):
            my_task._set_internal_data(event_fired=True)
        return bool(my_task._get_internal_data("event_fired", False))


class ClockCycleTimerEventDefinition(CycleTimerEventDefinition):
    """A repeating timer (`timeCycle`): each time its next due time passes, one more path."""

    def cycle_complete(self, my_task: Task) -> bool:
        schedule = my_task._get_internal_data("event_value")
        if schedule is None:
            cycles, start, interval = recurring_interval(
                _expression_value(my_task, self.expression), clock.now()
            )
            schedule = {
                "cycles": cycles,
                "next": start.isoformat(),
                "duration": interval.total_seconds(),
            }
        due_again = False
        if schedule["cycles"] == 0:  # every repetition happened: the timer is done
            my_task.internal_data.pop("event_value", None)
            my_task.internal_data["event_fired"] = True
        else:
            due = datetime.datetime.fromisoformat(schedule["next"])
            if _passed(due):
                schedule["next"] = (
                    due + datetime.timedelta(seconds=schedule["duration"])
                ).isoformat()
                schedule["cycles"] -= 1
                due_again = True
                # Each firing adds a path (children of this task), which stays WAITING for
                # the next: when it fired is kept for the element trace (engine.bpmn.inspection).
                fired = my_task._get_internal_data(FIRED_AT, [])
                my_task._set_internal_data(**{FIRED_AT: [*fired, time.time()]})
        my_task._set_internal_data(event_value=schedule)
        return due_again


# The library's class each clock-reading one stands for (what the parser creates).
CLOCK_TIMERS: dict[type[TimerEventDefinition], type[TimerEventDefinition]] = {
    TimeDateEventDefinition: ClockTimeDateEventDefinition,
    DurationTimerEventDefinition: ClockDurationTimerEventDefinition,
    CycleTimerEventDefinition: ClockCycleTimerEventDefinition,
}


def reading_clock(definition: TimerEventDefinition) -> TimerEventDefinition:
    """The clock-reading counterpart of a timer definition the library's parser made."""
    cls = CLOCK_TIMERS.get(type(definition))
    if cls is None:
        return definition
    return cls(definition.name, definition.expression, description=definition.description)


class ClockTimerConverter(TimerConditionalEventDefinitionConverter):
    """Stores a clock-reading timer under the library's type name, and restores that name
    (also in specs stored before these classes existed) as the clock-reading class."""

    def __init__(self, target_class: type, registry: Any, typename: str | None = None) -> None:
        super().__init__(target_class, registry, typename or target_class.__mro__[1].__name__)


TIMER_CONVERTERS = {cls: ClockTimerConverter for cls in CLOCK_TIMERS.values()}
