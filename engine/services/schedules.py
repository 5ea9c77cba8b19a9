"""Timer start events as managed schedules: operators pause and resume them, start an
instance now, and change the schedule (cron, cycle, date, duration) of a deployed version
without deploying again. Each runs under the trigger's row lock and is audited
(`ScheduleEvent`, with the actor).

Only the schedules of the latest version of a process start instances: those of older
versions are shown but cannot be run or changed. Resuming a schedule whose due time passed
while it was paused moves a cron or cycle on to its next due time (what was missed is not
made up); a one-time date that passed starts once, at once.
"""

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Max

from engine import clock
from engine.actors import Person, as_user
from engine.bpmn.cron import looks_like_cron
from engine.exceptions import Conflict, InvalidInput, NotFound
from engine.models import ProcessInstance, ScheduleEvent, StartTrigger
from engine.permissions import is_operator
from processes.models import ProcessDefinition

from .start_triggers import first_due, next_due, start_instance_by_event

MAX_EXPRESSION = 255


def _lock(trigger_id: int, actor: Person, action: str) -> StartTrigger:
    if not is_operator(actor):
        raise PermissionDenied(f"Only operators may {action} schedules.")
    trigger = (
        StartTrigger.objects.select_for_update(no_key=True)
        .select_related("definition")
        .filter(pk=trigger_id, kind=StartTrigger.Kind.TIMER)
        .first()
    )
    if trigger is None:
        raise NotFound(f"There is no schedule {trigger_id}.")
    return trigger


def is_current(trigger: StartTrigger) -> bool:
    """Whether the trigger belongs to the latest version of its process."""
    latest = ProcessDefinition.objects.filter(key=trigger.definition.key).aggregate(
        latest=Max("version")
    )["latest"]
    return bool(trigger.definition.version == latest)


def _require_current(trigger: StartTrigger, action: str) -> None:
    if not is_current(trigger):
        raise Conflict(
            f"This schedule belongs to version {trigger.definition.version} of "
            f"{trigger.definition.key}, not its latest: it cannot be {action}."
        )


def _audit(trigger: StartTrigger, type: str, actor: Person, **payload: Any) -> None:
    ScheduleEvent.objects.create(
        trigger=trigger,
        definition_key=trigger.definition.key,
        element_id=trigger.element_id,
        type=type,
        actor=as_user(actor),
        payload=payload,
    )


def pause_schedule(*, trigger_id: int, actor: Person) -> StartTrigger:
    with transaction.atomic():
        trigger = _lock(trigger_id, actor, "pause")
        if trigger.paused:
            return trigger  # pausing twice changes nothing
        trigger.paused, trigger.claimed_until = True, None
        trigger.save(update_fields=["paused", "claimed_until"])
        _audit(trigger, "paused", actor)
    return trigger


def resume_schedule(*, trigger_id: int, actor: Person) -> StartTrigger:
    with transaction.atomic():
        trigger = _lock(trigger_id, actor, "resume")
        if not trigger.paused:
            return trigger
        now = clock.now()
        text = trigger.timer_expression.strip()
        recurring = looks_like_cron(text) or text.upper().startswith("R")
        if trigger.next_due_at is not None and trigger.next_due_at < now and recurring:
            left = None if trigger.cycles_left is None else trigger.cycles_left + 1
            trigger.next_due_at, trigger.cycles_left = next_due(
                text, trigger.next_due_at, left, now
            )
            trigger.active = trigger.active and trigger.next_due_at is not None
        trigger.paused = False
        trigger.save(update_fields=["paused", "next_due_at", "cycles_left", "active"])
        _audit(trigger, "resumed", actor, next_due_at=_iso(trigger))
    return trigger


def run_schedule_now(*, trigger_id: int, actor: Person) -> ProcessInstance:
    """Start one instance at the timer start event now, paused or not; the schedule's own
    due times stay as they are."""
    with transaction.atomic():
        trigger = _lock(trigger_id, actor, "run")
        _require_current(trigger, "run")
        instance = start_instance_by_event(trigger, actor=actor, run_now=True)
        _audit(trigger, "run_now", actor, instance=str(instance.pk))
    return instance


def check_timer_value(value: Any) -> str:
    """A timer start event's value as deploy accepts it (ISO 8601 date, duration or
    repeating interval, or a cron expression) that is due at least once from now."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("expression must be non-empty text.")
    text = value.strip()
    if len(text) > MAX_EXPRESSION:
        raise InvalidInput(f"expression may have at most {MAX_EXPRESSION} characters.")
    try:
        due, _ = first_due(text, clock.now())
    except Exception as exc:  # noqa: BLE001 -- whatever it raises is refused, as at deploy
        raise InvalidInput(
            f"The timer {text!r} cannot be scheduled: {exc}",
            errors=[{"field": "expression", "message": str(exc)}],
        ) from None
    if due is None:
        raise InvalidInput(f"The timer {text!r} is never due from now on.")
    return text


def change_schedule(*, trigger_id: int, actor: Person, expression: Any) -> StartTrigger:
    """Give a timer start event of the latest version a new schedule; it starts from now
    (a paused schedule stays paused)."""
    text = check_timer_value(expression)
    with transaction.atomic():
        trigger = _lock(trigger_id, actor, "change")
        _require_current(trigger, "changed")
        before = trigger.timer_expression
        trigger.timer_expression = text
        trigger.next_due_at, trigger.cycles_left = first_due(text, clock.now())
        trigger.active, trigger.claimed_until = True, None
        trigger.save(
            update_fields=[
                "timer_expression",
                "next_due_at",
                "cycles_left",
                "active",
                "claimed_until",
            ]
        )
        _audit(trigger, "changed", actor, before=before, after=text, next_due_at=_iso(trigger))
    return trigger


def _iso(trigger: StartTrigger) -> str | None:
    return trigger.next_due_at.isoformat() if trigger.next_due_at else None
