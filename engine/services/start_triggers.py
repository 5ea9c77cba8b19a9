"""Message, signal and timer start events: registering them at deploy time, starting
instances at them, and the timer start schedule (`R/PT1H`, cron, a date, a duration).

Only the latest version of a process starts on events: deploying a new version deactivates
the triggers of the older ones. A timer trigger fires once per due time: the beat claims
due triggers with a lease (`SELECT ... FOR UPDATE SKIP LOCKED`), and each start runs in a
transaction that holds the trigger's row lock and checks the due time again.
"""

import datetime
import logging
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.db.models import Q

from engine import clock
from engine.actors import Actor, as_user
from engine.bpmn.cron import CronError, CronSchedule, looks_like_cron
from engine.bpmn.events import event_starts, prepare_start
from engine.bpmn.failures import run_engine_steps
from engine.bpmn.schedules import duration_after, moment, recurring_interval
from engine.bpmn.scripting import build_script_engine, describe_error
from engine.bpmn.types import Workflow
from engine.bpmn.walks import set_start_data
from engine.exceptions import InvalidInput
from engine.models import ProcessInstance, StartTrigger
from processes.models import ProcessDefinition

from .audit import events_in_one_insert, record_event
from .definition_cache import definition_specs
from .instance_store import new_run, persist_workflow
from .running import running_as

logger = logging.getLogger(__name__)
LEASE = datetime.timedelta(seconds=60)
Kind = StartTrigger.Kind


# -- the schedule -----------------------------------------------------------------------------


def _as_plain(moment: datetime.datetime) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(moment.timestamp(), datetime.UTC)


def _cycle_interval(value: str) -> datetime.timedelta:
    return recurring_interval(value, clock.now())[2]


def first_due(value: str, now: datetime.datetime) -> tuple[datetime.datetime | None, int | None]:
    """(first due time, starts left: None for no end) of a timer start event's value."""
    text = value.strip()
    if looks_like_cron(text):
        return CronSchedule.parse(text).next_after(now), None
    if text.upper().startswith("R"):
        cycles, start, duration = recurring_interval(text, now)
        due, left = _as_plain(start), (None if cycles < 0 else cycles)
        while due < now and left != 0:  # a start date in the past: skip what was missed
            due += duration
            left = None if left is None else left - 1
        return (due, left) if left != 0 else (None, 0)
    if text.upper().startswith("P"):
        return now + duration_after(text, now), 1
    return _as_plain(moment(text)), 1


def next_due(
    value: str, due: datetime.datetime, left: int | None, now: datetime.datetime
) -> tuple[datetime.datetime | None, int | None]:
    """After a start at `due`: (the next due time or None when done, starts left)."""
    text = value.strip()
    if left is not None:
        left -= 1
        if left <= 0:
            return None, 0
    if looks_like_cron(text):
        try:
            return CronSchedule.parse(text).next_after(max(due, now)), left
        except CronError:  # no time left that matches (e.g. its last year has passed): done
            return None, 0
    if not text.upper().startswith("R"):
        return None, 0
    interval = _cycle_interval(text)
    following = due + interval
    while following <= now:  # missed while nothing ran: start once, not once per miss
        following += interval
        if left is not None:
            left -= 1
            if left <= 0:
                return None, 0
    return following, left


def _timer_value(source: str, element_id: str) -> str:
    """A timer start event's value: its text, or what its expression gives (no instance
    data exists yet, so the expression sees none)."""
    try:
        value = build_script_engine().environment.evaluate(source, {})
    except Exception as exc:  # noqa: BLE001 -- whatever it raises is refused at deploy
        raise InvalidInput(
            f"{element_id}: the timer start event's value cannot be computed: "
            f"{describe_error(exc)}",
            errors=[{"element_id": element_id, "message": describe_error(exc)}],
        ) from None
    if not isinstance(value, str):
        raise InvalidInput(f"{element_id}: a timer start event's value must be ISO 8601 text.")
    return value


# -- registering -----------------------------------------------------------------------------


def on_definition_deployed(sender: Any, *, definition: ProcessDefinition, **kwargs: Any) -> None:
    """Receiver of `processes.signals.definition_deployed`."""
    register_start_triggers(definition)


def register_start_triggers(definition: ProcessDefinition) -> list[StartTrigger]:
    """Called when `definition` becomes the latest version of its process: its message,
    signal and timer start events start instances from now on, the older versions' no more."""
    StartTrigger.objects.filter(definition__key=definition.key, active=True).exclude(
        definition=definition
    ).update(active=False, claimed_until=None)
    spec, _ = definition_specs(definition.pk)
    now = clock.now()
    triggers = []
    for start in event_starts(spec):
        trigger = StartTrigger(
            definition=definition,
            element_id=start.element_id,
            kind=start.kind,
            event_name=start.name,
        )
        if start.kind == Kind.TIMER:
            expression = getattr(start.definition, "expression", "")
            trigger.timer_expression = _timer_value(expression, start.element_id)
            try:
                trigger.next_due_at, trigger.cycles_left = first_due(trigger.timer_expression, now)
            except Exception as exc:  # noqa: BLE001 -- whatever it raises is refused at deploy
                raise InvalidInput(
                    f"{start.element_id}: the timer {trigger.timer_expression!r} cannot be "
                    f"scheduled: {exc}",
                    errors=[{"element_id": start.element_id, "message": str(exc)}],
                ) from None
            trigger.active = trigger.next_due_at is not None
        triggers.append(trigger)
    return StartTrigger.objects.bulk_create(triggers, ignore_conflicts=True)


# -- starting at an event start ---------------------------------------------------------------


def start_instance_by_event(
    trigger: StartTrigger,
    *,
    actor: Actor = None,
    business_key: str | None = None,
    deliver: Callable[[Workflow], Any] | None = None,
    variables: dict[str, Any] | None = None,
    run_now: bool = False,
) -> ProcessInstance:
    """Start an instance of the trigger's definition at its start event. `deliver` puts the
    message or signal into the new workflow (its start event waits for it); without it the
    start event counts as having happened (a timer). Runs in the caller's transaction."""
    definition = ProcessDefinition.objects.defer("spec", "bpmn_xml", "elements").get(
        pk=trigger.definition_id
    )
    run = new_run(definition.pk)
    prepare_start(run.workflow, trigger.element_id, fire=deliver is None)
    set_start_data(run.workflow, variables)
    with transaction.atomic(), events_in_one_insert():
        instance = ProcessInstance(  # inserted with its first state (persist_workflow)
            definition=definition,
            business_key=business_key or None,
            status=ProcessInstance.Status.RUNNING,
            started_by=as_user(actor),
        )
        record_event(
            instance,
            "started",
            actor=actor,
            payload={
                "version": definition.version,
                "business_key": instance.business_key,
                "start_event": trigger.element_id,
                "trigger": trigger.kind,
                "event": trigger.event_name,
                **({"run_now": True} if run_now else {}),
            },
        )
        with running_as(actor, instance):
            run_engine_steps(run)
            if deliver is not None:
                deliver(run.workflow)
                run_engine_steps(run)
        persist_workflow(instance, run, actor=actor, fresh=True)
    return instance


def active_triggers(kind: str, name: str) -> list[StartTrigger]:
    """The active start triggers of `kind` for message or signal `name`."""
    return list(
        StartTrigger.objects.filter(kind=kind, event_name=name, active=True)
        .select_related("definition")
        .only("id", "definition__key", "element_id", "kind", "event_name", "definition_id")
    )


# -- the timer start beat ---------------------------------------------------------------------


def claim_due_start_timers(batch: int = 20) -> list[int]:
    """Lease up to `batch` due timer triggers (skipping those another beat holds)."""
    now = clock.now()
    with transaction.atomic():
        ids = list(
            StartTrigger.objects.select_for_update(no_key=True, skip_locked=True)
            .filter(active=True, paused=False, kind=Kind.TIMER, next_due_at__lte=now)
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
            .order_by("next_due_at", "pk")
            .values_list("id", flat=True)[:batch]
        )
        StartTrigger.objects.filter(id__in=ids).update(claimed_until=now + LEASE)
    return ids


def start_on_schedule(trigger_id: int) -> ProcessInstance | None:
    """Start one instance for a due timer trigger and move the schedule on; None when it is
    not due (any more), e.g. because another beat started it."""
    with transaction.atomic():
        trigger = StartTrigger.objects.select_for_update(no_key=True).filter(pk=trigger_id).first()
        now = clock.now()
        if (
            trigger is None
            or not trigger.active
            or trigger.paused
            or trigger.next_due_at is None
            or trigger.next_due_at > now
        ):
            return None
        instance = start_instance_by_event(trigger)
        trigger.next_due_at, trigger.cycles_left = next_due(
            trigger.timer_expression, trigger.next_due_at, trigger.cycles_left, now
        )
        trigger.active = trigger.next_due_at is not None
        trigger.last_started_at, trigger.claimed_until = now, None
        trigger.save(
            update_fields=[
                "next_due_at",
                "cycles_left",
                "active",
                "last_started_at",
                "claimed_until",
            ]
        )
    return instance


def fire_due_start_timers(batch: int = 20) -> int:
    """Start the instances whose timer start events are due; returns how many started."""
    started = 0
    for trigger_id in claim_due_start_timers(batch):
        try:
            if start_on_schedule(trigger_id) is not None:
                started += 1
        except Exception:
            logger.exception("Timer start %s failed; it is tried again later", trigger_id)
    return started
