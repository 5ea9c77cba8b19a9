"""Putting a message or signal into an instance, and finding who a message is for.

Shared by the messages and signals APIs, the delivery worker and resume. Everything that
changes an instance here runs under its row lock, inside the caller's transaction.
A suspended instance takes nothing: what arrives is kept as a deferred `EventDelivery` and
`apply_deferred_events` (called by resume) delivers it, in order of arrival.
"""

from dataclasses import dataclass, field
from typing import Any

from django.db.models import JSONField, Q, Value
from django.db.models.fields.json import KeyTransform

from engine import clock
from engine.actors import Actor, as_user
from engine.bpmn.events import NotWaiting, catch_message, catch_signal
from engine.bpmn.failures import run_engine_steps
from engine.bpmn.types import Workflow
from engine.exceptions import Conflict, NotFound
from engine.models import EventDelivery, MessageSubscription, ProcessInstance, StartTrigger

from .audit import record_event
from .instance_store import lock_instance, open_run, persist_workflow
from .running import running_as
from .start_triggers import active_triggers, start_instance_by_event

Status = ProcessInstance.Status
FINISHED = (Status.COMPLETED, Status.TERMINATED)


@dataclass
class Event:
    """A message or signal as it travels: what it carries and how it correlates."""

    kind: str  # "message" or "signal"
    name: str
    variables: Any = field(default_factory=dict)
    correlation_keys: dict[str, Any] = field(default_factory=dict)
    business_key: str | None = None
    message_id: str | None = None

    @classmethod
    def of(cls, delivery: EventDelivery) -> "Event":
        return cls(
            delivery.kind,
            delivery.name,
            delivery.variables,
            delivery.correlation_keys or {},
            delivery.business_key,
        )

    def audit(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"name": self.name}
        if self.message_id:
            payload["message_id"] = self.message_id
        if self.correlation_keys:
            payload["correlation_keys"] = self.correlation_keys
        return payload


def catch(workflow: Workflow, event: Event) -> None:
    """Deliver `event` into a loaded workflow (raises NotWaiting if nothing catches it)."""
    if event.kind == EventDelivery.Kind.SIGNAL:
        catch_signal(workflow, event.name, event.variables)
    else:
        catch_message(
            workflow, event.name, event.variables, event.correlation_keys, event.business_key
        )


def _received(kind: str) -> str:
    return "signal_received" if kind == EventDelivery.Kind.SIGNAL else "message_received"


def defer(
    instance: ProcessInstance,
    event: Event,
    actor: Actor = None,
    delivery: EventDelivery | None = None,
) -> EventDelivery:
    """Keep `event` for a suspended (locked) instance until it is resumed."""
    if delivery is None:
        delivery = EventDelivery(
            kind=event.kind,
            name=event.name,
            variables=event.variables,
            correlation_keys=event.correlation_keys,
            business_key=event.business_key,
            sent_by=as_user(actor),
        )
    delivery.target_instance = instance
    delivery.status = EventDelivery.Status.DEFERRED
    delivery.claimed_until = None
    delivery.save()
    record_event(
        instance,
        "event_deferred",
        actor=actor,
        payload={"kind": event.kind, **event.audit(), "delivery": str(delivery.id)},
    )
    return delivery


def deliver_to_instance(instance_id: Any, event: Event, *, actor: Actor = None) -> str:
    """Deliver `event` to one instance: "delivered", or "deferred" while it is suspended.
    Raises NotWaiting when the instance does not (or no more) wait for it."""
    instance = lock_instance(instance_id)
    if instance.status in FINISHED:
        raise NotWaiting(f"The instance is {instance.status}.")
    if instance.status == Status.SUSPENDED:
        if (
            event.kind == EventDelivery.Kind.MESSAGE
            and not instance.message_subscriptions.filter(message_name=event.name).exists()
        ):
            raise NotWaiting(f"The instance does not wait for {event.name!r}.")
        defer(instance, event, actor)
        return "deferred"
    run = open_run(instance)
    with running_as(actor, instance):
        catch(run.workflow, event)
        run_engine_steps(run)
    persist_workflow(instance, run, actor=actor)
    record_event(instance, _received(event.kind), actor=actor, payload=event.audit())
    return "delivered"


def start_by_event(trigger: StartTrigger, event: Event, *, actor: Actor = None) -> ProcessInstance:
    """Start an instance at a message or signal start event, with the event's payload."""
    instance = start_instance_by_event(
        trigger,
        actor=actor,
        business_key=event.business_key,
        deliver=lambda workflow: catch(workflow, event),
    )
    record_event(instance, _received(event.kind), actor=actor, payload=event.audit())
    return instance


# -- correlation -------------------------------------------------------------------------------


def waiting_instances(event: Event, limit: int = 2) -> list[Any]:
    """Ids of (up to `limit`) instances with a subscription that matches the message:
    its name; the business key if given; each correlation key equal to the value the
    subscription expects (SpiffArena correlation properties) or, where it expects none, to the
    instance's variable of that name (Camunda: correlation by process variables)."""
    subscriptions = MessageSubscription.objects.filter(message_name=event.name).exclude(
        instance__status__in=FINISHED
    )
    if event.business_key:
        subscriptions = subscriptions.filter(instance__business_key=event.business_key)
    keys = event.correlation_keys
    if keys:
        subscriptions = subscriptions.filter(
            Q(correlation={}) | Q(correlation__has_any_keys=list(keys))
        )
        for number, (key, value) in enumerate(keys.items()):
            expected, variable = f"expected_{number}", f"variable_{number}"
            subscriptions = subscriptions.alias(
                **{
                    expected: KeyTransform(key, "correlation"),
                    variable: KeyTransform(key, "instance__variables"),
                }
            ).filter(
                Q(**{expected: Value(value, JSONField())})
                | (~Q(correlation__has_key=key) & Q(**{variable: Value(value, JSONField())}))
            )
    else:
        subscriptions = subscriptions.filter(correlation={})
    return list(
        subscriptions.order_by("instance_id")
        .values_list("instance_id", flat=True)
        .distinct()[:limit]
    )


@dataclass
class Target:
    instance_id: Any = None
    trigger: StartTrigger | None = None


def find_target(event: Event) -> Target:
    """The one instance or message start event a message is for. Raises NotFound (none)
    or Conflict (several), as Camunda's correlation does."""
    instances = waiting_instances(event)
    starts = active_triggers(StartTrigger.Kind.MESSAGE, event.name)
    if len(instances) + len(starts) == 0:
        raise NotFound(
            f"No instance waits for message {event.name!r} with these correlation keys, and "
            "no process starts on it."
        )
    if len(instances) + len(starts) > 1:
        errors = [{"instance": str(i)} for i in instances] + [
            {"process": t.definition.key, "element_id": t.element_id} for t in starts
        ]
        raise Conflict(
            f"Message {event.name!r} matches more than one waiting instance or start event; "
            "give correlation keys or a business key that pick one.",
            errors=errors,
        )
    if instances:
        return Target(instance_id=instances[0])
    return Target(trigger=starts[0])


# -- resume ------------------------------------------------------------------------------------


def apply_deferred_events(instance: ProcessInstance) -> None:
    """On resume (the instance is locked): deliver what arrived while it was suspended, in
    order, and fire the timers that fell due meanwhile."""
    locked = (
        instance.incoming_events.select_for_update(no_key=True, of=("self",))
        .select_related("sent_by")
        .filter(status=EventDelivery.Status.DEFERRED)
        .order_by("pk")
    )
    deferred = sorted(locked, key=lambda delivery: delivery.created_at)  # in arrival order
    due = instance.timers.filter(fired=False, due_at__lte=clock.now()).exists()
    if not deferred and not due:
        return
    run = open_run(instance)
    with running_as(None, instance):
        for delivery in deferred:
            event = Event.of(delivery)
            try:
                catch(run.workflow, event)
            except NotWaiting as exc:
                delivery.status, delivery.last_error = EventDelivery.Status.UNMATCHED, str(exc)
            else:
                delivery.status = EventDelivery.Status.DELIVERED
                delivery.delivered_at = clock.now()
                record_event(
                    instance,
                    _received(event.kind),
                    actor=delivery.sent_by,
                    payload={
                        **event.audit(),
                        "delivery": str(delivery.id),
                        "deferred": True,
                    },
                )
            delivery.save(update_fields=["status", "last_error", "delivered_at"])
            run_engine_steps(run)
        run_engine_steps(run)
    persist_workflow(instance, run, actor=None)
