"""Signals: a broadcast reaches every waiting instance (catch and boundary events) and
every signal start event; thrown signals reach other instances; suspended ones keep them."""

import pytest

from engine.models import EventDelivery, InstanceEvent, ProcessInstance
from engine.services import broadcast_signal, resume_instance, start_instance, suspend_instance
from processes.services import deploy
from processes.validation import UploadedFile
from tests.engine import event_diagrams
from tests.engine.test_messages import deliver_pending, deploy_xml
from tests.helpers import open_task_elements

pytestmark = pytest.mark.django_db


@pytest.fixture
def sender(make_user):
    return make_user("sam_sender", "integrations")


def test_signal_reaches_every_waiting_instance(sender):
    deploy_xml(event_diagrams.waits_for_signal("market_closed"), "trader.bpmn")
    deploy_xml(event_diagrams.waits_for_signal("market_closed", "desk", boundary=True), "desk.bpmn")
    deploy_xml(event_diagrams.waits_for_signal("lunch", "canteen"), "canteen.bpmn")
    deploy_xml(event_diagrams.signal_start("market_closed"), "report.bpmn")
    traders = [start_instance(key="trader") for _ in range(3)]
    desks = [start_instance(key="desk") for _ in range(2)]
    canteen = start_instance(key="canteen")

    answer = broadcast_signal(name="market_closed", actor=sender, variables={"close": 101.5})
    assert answer == {"name": "market_closed", "instances": 5, "start_events": 1}
    deliver_pending()

    for trader in traders:
        trader.refresh_from_db()
        assert open_task_elements(trader) == {"report"} and trader.variables["close"] == 101.5
    for desk in desks:
        assert open_task_elements(desk) == {"report"}
        assert desk.human_tasks.get(element_id="trade").status == "cancelled"
    assert open_task_elements(canteen) == set()
    (report,) = ProcessInstance.objects.filter(definition__key="closing_report")
    assert open_task_elements(report) == {"summarise"} and report.started_by == sender
    assert InstanceEvent.objects.filter(type="signal_received").count() == 6
    assert set(EventDelivery.objects.values_list("status", flat=True)) == {"delivered"}


def test_a_signal_nobody_waits_for_goes_nowhere(sender):
    assert broadcast_signal(name="nobody", actor=sender) == {
        "name": "nobody",
        "instances": 0,
        "start_events": 0,
    }
    assert not EventDelivery.objects.exists()


def test_a_suspended_instance_keeps_the_signal_until_resume(sender, make_user):
    operator = make_user("olga_operator", "operators")
    deploy_xml(event_diagrams.waits_for_signal("market_closed"))
    trader = start_instance(key="trader")
    suspend_instance(instance_id=trader.pk, actor=operator)
    broadcast_signal(name="market_closed", actor=sender)
    deliver_pending()
    assert open_task_elements(trader) == set()
    assert EventDelivery.objects.get().status == "deferred"
    resume_instance(instance_id=trader.pk, actor=operator)
    assert open_task_elements(trader) == {"report"}
    assert EventDelivery.objects.get().status == "delivered"


def test_a_thrown_signal_reaches_other_instances_and_its_own(sender):
    broadcaster = event_diagrams.camunda(
        "broadcaster",
        "\n".join(
            [
                '    <bpmn:startEvent id="start" />',
                '    <bpmn:parallelGateway id="fork" />',
                '    <bpmn:intermediateThrowEvent id="shout"><bpmn:extensionElements>'
                '<camunda:inputOutput><camunda:inputParameter name="level">${level}'
                "</camunda:inputParameter></camunda:inputOutput></bpmn:extensionElements>"
                '<bpmn:signalEventDefinition signalRef="sig_alarm" />'
                "</bpmn:intermediateThrowEvent>",
                '    <bpmn:intermediateCatchEvent id="hear"><bpmn:signalEventDefinition '
                'signalRef="sig_alarm" /></bpmn:intermediateCatchEvent>',
                event_diagrams.user_task("heard_own", "managers"),
                '    <bpmn:endEvent id="end_shout" />',
                '    <bpmn:endEvent id="end_hear" />',
                event_diagrams.flows(
                    ("start", "fork"),
                    ("fork", "hear"),
                    ("fork", "shout"),
                    ("shout", "end_shout"),
                    ("hear", "heard_own"),
                    ("heard_own", "end_hear"),
                ),
            ]
        ),
        '  <bpmn:signal id="sig_alarm" name="alarm" />\n',
    )
    deploy_xml(event_diagrams.waits_for_signal("alarm", "listener"), "listener.bpmn")
    deploy_xml(broadcaster, "broadcaster.bpmn")
    listeners = [start_instance(key="listener") for _ in range(2)]
    thrower = start_instance(key="broadcaster", variables={"level": "red"})
    assert open_task_elements(thrower) == {"heard_own"}  # caught inside, at once
    deliver_pending()
    for listener in listeners:
        listener.refresh_from_db()
        assert open_task_elements(listener) == {"report"} and listener.variables["level"] == "red"
    thrower.refresh_from_db()
    assert len(thrower.human_tasks.all()) == 1  # not delivered to itself a second time
    assert InstanceEvent.objects.filter(instance=thrower, type="event_thrown").count() == 1


SPIFF_SIGNALS = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"
  id="d" targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:signal id="sig_go" name="go">
    <bpmn:extensionElements>
      <spiffworkflow:payloadExpression>{"speed": speed}</spiffworkflow:payloadExpression>
      <spiffworkflow:variableName>go_signal</spiffworkflow:variableName>
    </bpmn:extensionElements>
  </bpmn:signal>
  <bpmn:process id="spiff_listener" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:intermediateCatchEvent id="wait"><bpmn:signalEventDefinition signalRef="sig_go" />
    </bpmn:intermediateCatchEvent>
    <bpmn:manualTask id="go_on" />
    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait" />
    <bpmn:sequenceFlow id="f2" sourceRef="wait" targetRef="go_on" />
    <bpmn:sequenceFlow id="f3" sourceRef="go_on" targetRef="end" />
  </bpmn:process>
  <bpmn:process id="spiff_thrower" isExecutable="true">
    <bpmn:startEvent id="t_start" />
    <bpmn:endEvent id="t_end"><bpmn:signalEventDefinition signalRef="sig_go" /></bpmn:endEvent>
    <bpmn:sequenceFlow id="t1" sourceRef="t_start" targetRef="t_end" />
  </bpmn:process>
</bpmn:definitions>
"""


def test_spiffarena_signal_payload_lands_in_its_variable(make_user):
    user = make_user("una_user")
    deploy(name="signals", files=[UploadedFile("signals.bpmn", SPIFF_SIGNALS.encode())], actor=None)
    listener = start_instance(key="spiff_listener", actor=user)
    start_instance(key="spiff_thrower", variables={"speed": 88}, actor=user)
    deliver_pending()
    listener.refresh_from_db()
    assert listener.variables["go_signal"] == {"speed": 88}
    assert open_task_elements(listener) == {"go_on"}


def test_a_signal_kept_for_an_instance_terminated_while_suspended_is_unmatched(sender, make_user):
    from engine.services import terminate_instance

    operator = make_user("olga_operator", "operators")
    deploy_xml(event_diagrams.waits_for_signal("market_closed"))
    trader = start_instance(key="trader")
    suspend_instance(instance_id=trader.pk, actor=operator)
    broadcast_signal(name="market_closed", actor=sender)
    deliver_pending()
    terminate_instance(instance_id=trader.pk, actor=operator, reason="test")
    delivery = EventDelivery.objects.get()
    assert delivery.status == "unmatched" and "terminated" in delivery.last_error
