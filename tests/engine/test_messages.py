"""Messages: correlation by key and business key, 404/409, idempotent message ids, message
start events, receive tasks, boundary events, suspended instances, and messages thrown
between instances (SpiffArena's waiter and chef, Camunda send tasks)."""

import pytest
from django.core.exceptions import PermissionDenied

from engine.exceptions import Conflict, InvalidInput, NotFound
from engine.models import (
    EventDelivery,
    InstanceEvent,
    MessageSubscription,
    OperationKey,
    ProcessInstance,
)
from engine.services import (
    complete_human_task,
    correlate_message,
    resume_instance,
    start_instance,
    suspend_instance,
)
from engine.services.event_outbox import deliver_event
from processes.services import deploy
from processes.validation import UploadedFile
from tests.engine import event_diagrams
from tests.helpers import SPIFF_EXAMPLES, open_task_elements

pytestmark = pytest.mark.django_db


def deploy_xml(xml: str, name: str = "events.bpmn"):
    (definition,) = deploy(name=name, files=[UploadedFile(name, xml.encode())], actor=None).created
    return definition


@pytest.fixture
def sender(make_user):
    return make_user("sam_sender", "integrations")


@pytest.fixture
def two_orders():
    deploy_xml(event_diagrams.waits_for_message("payment_received"))
    first = start_instance(key="order", variables={"order_id": 41}, business_key="A-41")
    second = start_instance(key="order", variables={"order_id": 42}, business_key="A-42")
    return first, second


def test_waiting_instance_is_subscribed(two_orders):
    first, _ = two_orders
    (subscription,) = MessageSubscription.objects.filter(instance=first)
    assert subscription.message_name == "payment_received"
    assert subscription.element_id == "wait" and subscription.correlation == {}
    assert first.status == ProcessInstance.Status.WAITING


def test_correlation_key_picks_the_right_instance_of_two(two_orders, sender):
    first, second = two_orders
    result = correlate_message(
        name="payment_received",
        actor=sender,
        correlation_keys={"order_id": 42},
        variables={"paid": 99.5},
    )
    assert result.outcome == "correlated" and result.body["instance"] == str(second.pk)
    second.refresh_from_db()
    assert open_task_elements(second) == {"ship"} and second.variables["paid"] == 99.5
    assert open_task_elements(first) == set()
    assert not MessageSubscription.objects.filter(instance=second).exists()
    assert MessageSubscription.objects.filter(instance=first).exists()
    event = InstanceEvent.objects.get(instance=second, type="message_received")
    assert event.actor == sender and event.payload["name"] == "payment_received"


def test_business_key_picks_the_right_instance(two_orders, sender):
    first, _ = two_orders
    result = correlate_message(name="payment_received", actor=sender, business_key="A-41")
    assert result.body["instance"] == str(first.pk)
    assert open_task_elements(first) == {"ship"}


def test_nothing_matches_is_not_found_and_changes_nothing(two_orders, sender):
    with pytest.raises(NotFound):
        correlate_message(name="payment_received", actor=sender, correlation_keys={"order_id": 7})
    with pytest.raises(NotFound):
        correlate_message(name="no_such_message", actor=sender)
    assert MessageSubscription.objects.count() == 2
    assert not InstanceEvent.objects.filter(type="message_received").exists()


def test_several_matches_are_a_conflict(two_orders, sender):
    with pytest.raises(Conflict) as caught:
        correlate_message(name="payment_received", actor=sender)
    assert len(caught.value.errors) == 2
    assert MessageSubscription.objects.count() == 2


def test_duplicate_message_id_does_nothing(two_orders, sender):
    first, _ = two_orders
    kwargs = {
        "name": "payment_received",
        "actor": sender,
        "business_key": "A-41",
        "message_id": "bank-tx-1",
    }
    result = correlate_message(**kwargs, variables={"paid": 1})
    again = correlate_message(**kwargs, variables={"paid": 2})
    assert again.replayed and again.body == result.body and again.outcome == "correlated"
    first.refresh_from_db()
    assert first.variables["paid"] == 1
    assert InstanceEvent.objects.filter(type="message_received").count() == 1
    assert OperationKey.objects.get().key == "bank-tx-1"


def test_a_failed_message_does_not_use_up_its_id(two_orders, sender):
    with pytest.raises(NotFound):
        correlate_message(
            name="payment_received", actor=sender, business_key="A-99", message_id="tx-2"
        )
    assert not OperationKey.objects.exists()


def test_message_start_event_starts_a_process(sender):
    deploy_xml(event_diagrams.message_start("order_placed"))
    result = correlate_message(
        name="order_placed", actor=sender, business_key="B-1", variables={"customer": "ada"}
    )
    assert result.outcome == "started"
    instance = ProcessInstance.objects.get(pk=result.body["instance"])
    assert instance.business_key == "B-1" and instance.variables["customer"] == "ada"
    assert open_task_elements(instance) == {"pack"}
    started = InstanceEvent.objects.get(instance=instance, type="started")
    assert started.payload["start_event"] == "on_message"


def test_starting_by_hand_takes_the_none_start_event():
    deploy_xml(event_diagrams.message_start("order_placed"))
    instance = start_instance(key="fulfilment")
    assert open_task_elements(instance) == {"pack"}
    assert not MessageSubscription.objects.filter(instance=instance).exists()


def test_receive_task(sender):
    deploy_xml(event_diagrams.waits_for_message("confirmation", receive_task=True))
    instance = start_instance(key="order", business_key="R-1")
    assert MessageSubscription.objects.get(instance=instance).element_id == "wait"
    correlate_message(name="confirmation", actor=sender, business_key="R-1")
    assert open_task_elements(instance) == {"ship"}


def test_message_boundary_event_interrupts_the_task(sender):
    deploy_xml(event_diagrams.message_boundary("cancel_order"))
    instance = start_instance(key="cancellable", business_key="C-1")
    assert open_task_elements(instance) == {"work"}
    correlate_message(name="cancel_order", actor=sender, business_key="C-1")
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.COMPLETED
    assert instance.human_tasks.get().status == "cancelled"


def test_a_suspended_instance_keeps_the_message_until_resume(two_orders, sender, make_user):
    operator = make_user("olga_operator", "operators")
    first, _ = two_orders
    suspend_instance(instance_id=first.pk, actor=operator)
    result = correlate_message(
        name="payment_received", actor=sender, business_key="A-41", variables={"paid": 10}
    )
    assert result.outcome == "deferred"
    assert open_task_elements(first) == set()
    deferred = EventDelivery.objects.get(target_instance=first)
    assert deferred.status == "deferred"
    resume_instance(instance_id=first.pk, actor=operator)
    first.refresh_from_db()
    assert open_task_elements(first) == {"ship"} and first.variables["paid"] == 10
    deferred.refresh_from_db()
    assert deferred.status == "delivered"


def test_bad_input_and_permissions(sender, make_user, settings):
    with pytest.raises(InvalidInput):
        correlate_message(name="", actor=sender)
    with pytest.raises(InvalidInput):
        correlate_message(name="x", actor=sender, variables=["not", "an", "object"])  # type: ignore[arg-type]
    with pytest.raises(PermissionDenied):  # only integrations, operators and superusers
        correlate_message(name="x", actor=make_user("ned_nobody", "designers"))
    settings.BATON_EVENT_SENDER_GROUPS = ["partners"]
    with pytest.raises(PermissionDenied):
        correlate_message(name="x", actor=sender)


# -- messages between instances ---------------------------------------------------------------


def deliver_pending() -> None:
    """What a worker does with the deliveries written after commit."""
    for _ in range(5):
        pending = list(EventDelivery.objects.filter(status="pending").values_list("id", flat=True))
        if not pending:
            return
        for delivery_id in pending:
            deliver_event(str(delivery_id))


def test_spiffarena_waiter_and_chef_correlate_by_table_number(make_user, shared_dir):
    spiff_messages = shared_dir / SPIFF_EXAMPLES / "2-in-depth" / "2-4-messages"
    waiter_user = make_user("wally_waiter")
    files = [
        UploadedFile(p.name, p.read_bytes())
        for p in [
            spiff_messages / "waiter" / "simple-message-waiter.bpmn",
            *(spiff_messages / "waiter").glob("*.json"),
        ]
        if p.name != "process_model.json"
    ]
    deploy(name="waiter", files=files, actor=None)
    chef_file = spiff_messages / "chef" / "simple-message-chef.bpmn"
    deploy(name="chef", files=[UploadedFile(chef_file.name, chef_file.read_bytes())], actor=None)

    waiters = []
    for table in (5, 7):
        waiter = start_instance(key="Process_k6u417e", actor=waiter_user)
        task = waiter.human_tasks.get()
        complete_human_task(
            task_id=task.pk,
            user=waiter_user,
            variables={"order": {"table_number": table, "drink": "tea", "meal": f"soup {table}"}},
        )
        waiters.append(waiter)
    assert EventDelivery.objects.filter(kind="message", name="order_accept").count() == 2
    deliver_pending()
    chefs = list(
        ProcessInstance.objects.filter(definition__key="Process_c707ql0").order_by("created_at")
    )
    assert len(chefs) == 2
    for waiter, table in zip(waiters, (5, 7), strict=True):
        subscription = MessageSubscription.objects.get(instance=waiter)
        assert subscription.message_name == "order_dispatch"
        assert subscription.correlation == {"table_number": table}
    # The chef of table 7 is done first; only table 7's waiter hears of it.
    chef_seven = next(c for c in chefs if c.variables["order_to_cook"]["table_number"] == 7)
    assert chef_seven.started_by == waiter_user  # whose step sent the message that started it
    task = chef_seven.human_tasks.get()
    assert task.assignee == waiter_user.username  # no lane: the task goes to who started it
    complete_human_task(task_id=task.pk, user=waiter_user, variables={})
    deliver_pending()
    for waiter in waiters:
        waiter.refresh_from_db()
    assert waiters[1].status == ProcessInstance.Status.COMPLETED
    assert waiters[1].variables["order"]["meal"] == "soup 7"
    assert waiters[0].status == ProcessInstance.Status.WAITING
    assert EventDelivery.objects.filter(status="delivered").count() == 3


def test_camunda_send_task_reaches_the_waiting_instance_by_business_key():
    requester = event_diagrams.camunda(
        "requester",
        "\n".join(
            [
                '    <bpmn:startEvent id="start" />',
                '    <bpmn:sendTask id="ask" messageRef="msg_quote"><bpmn:extensionElements>'
                "<camunda:inputOutput>"
                '<camunda:inputParameter name="amount">${amount * 2}</camunda:inputParameter>'
                '<camunda:inputParameter name="businessKey">${target}</camunda:inputParameter>'
                "</camunda:inputOutput></bpmn:extensionElements></bpmn:sendTask>",
                '    <bpmn:endEvent id="end" />',
                event_diagrams.flows(("start", "ask"), ("ask", "end")),
            ]
        ),
        '  <bpmn:message id="msg_quote" name="quote" />\n',
    )
    deploy_xml(requester, "requester.bpmn")
    deploy_xml(event_diagrams.waits_for_message("quote", process_id="quoter"), "quoter.bpmn")
    first = start_instance(key="quoter", business_key="Q-1")
    second = start_instance(key="quoter", business_key="Q-2")
    sender = start_instance(key="requester", variables={"amount": 21, "target": "Q-2"})
    assert sender.status == ProcessInstance.Status.COMPLETED
    deliver_pending()
    second.refresh_from_db()
    assert open_task_elements(second) == {"ship"} and second.variables["amount"] == 42
    assert open_task_elements(first) == set()
    delivery = EventDelivery.objects.get()
    assert delivery.source_instance_id == sender.pk and delivery.target_instance_id == second.pk


def test_a_thrown_message_nobody_waits_for_is_retried_then_unmatched(settings):
    settings.BATON_MESSAGE_ATTEMPTS = 2
    thrower = event_diagrams.camunda(
        "thrower",
        "\n".join(
            [
                '    <bpmn:startEvent id="start" />',
                '    <bpmn:intermediateThrowEvent id="tell"><bpmn:messageEventDefinition '
                'messageRef="msg_news" /></bpmn:intermediateThrowEvent>',
                '    <bpmn:endEvent id="end" />',
                event_diagrams.flows(("start", "tell"), ("tell", "end")),
            ]
        ),
        '  <bpmn:message id="msg_news" name="news" />\n',
    )
    deploy_xml(thrower)
    start_instance(key="thrower")
    delivery = EventDelivery.objects.get()
    deliver_event(str(delivery.pk))
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.attempts == 1
    assert "No instance waits" in delivery.last_error
    delivery.next_attempt_at = delivery.created_at
    delivery.save()
    deliver_event(str(delivery.pk))
    delivery.refresh_from_db()
    assert delivery.status == "unmatched" and delivery.attempts == 2


def test_a_persist_retried_after_a_failing_assignment_writes_the_thrown_message_once():
    thrower = event_diagrams.camunda(
        "thrower",
        "\n".join(
            [
                '    <bpmn:startEvent id="start" />',
                '    <bpmn:intermediateThrowEvent id="tell"><bpmn:messageEventDefinition '
                'messageRef="msg_news" /></bpmn:intermediateThrowEvent>',
                '    <bpmn:userTask id="review" camunda:assignee="${no_such_variable}" />',
                '    <bpmn:endEvent id="end" />',
                event_diagrams.flows(("start", "tell"), ("tell", "review"), ("review", "end")),
            ]
        ),
        '  <bpmn:message id="msg_news" name="news" />\n',
    )
    deploy_xml(thrower)
    instance = start_instance(key="thrower")
    assert instance.status == ProcessInstance.Status.INCIDENT  # the assignment failed
    assert EventDelivery.objects.filter(source_instance=instance).count() == 1
    assert InstanceEvent.objects.filter(instance=instance, type="event_thrown").count() == 1


def test_terminating_an_instance_ends_its_subscriptions(two_orders, make_user):
    from engine.services import terminate_instance

    operator = make_user("olga_operator", "operators")
    first, _ = two_orders
    terminate_instance(instance_id=first.pk, actor=operator, reason="test")
    assert not MessageSubscription.objects.filter(instance=first).exists()
    result = correlate_message(name="payment_received", actor=operator)
    assert result.body["instance"] != str(first.pk)


def test_correlation_values_match_exactly(two_orders, sender):
    with pytest.raises(NotFound):
        correlate_message(
            name="payment_received", actor=sender, correlation_keys={"order_id": "42"}
        )  # text is not the number
    with pytest.raises(InvalidInput):
        correlate_message(
            name="payment_received", actor=sender, correlation_keys={"order_id": [42]}
        )
    result = correlate_message(
        name="payment_received", actor=sender, correlation_keys={"order_id": 42.0}
    )
    assert result.body["instance"] == str(two_orders[1].pk)
