"""Error and escalation events between subprocesses and their parents, event-based gateways
and SpiffArena's event examples keep working across saves: every step below is a separate
operation that loads the instance from Postgres and writes it back."""

import datetime
from pathlib import Path

import pytest

from engine.models import HumanTask, ProcessInstance
from engine.services import complete_human_task, correlate_message, start_instance
from engine.services.timers import fire_due_timers
from processes.services import deploy
from processes.validation import UploadedFile
from tests.engine import event_diagrams
from tests.engine.test_messages import deploy_xml
from tests.helpers import SPIFF_EXAMPLES, open_task_elements

pytestmark = pytest.mark.django_db


def complete(instance, element_id: str, user, **variables) -> None:
    task = instance.human_tasks.get(element_id=element_id, status__in=HumanTask.ACTIVE_STATUSES)
    complete_human_task(task_id=task.pk, user=user, variables=variables)


SUBPROCESS_EVENTS = event_diagrams.camunda(
    "claims",
    "\n".join(
        [
            '    <bpmn:startEvent id="start" />',
            '    <bpmn:subProcess id="assess">',
            '      <bpmn:startEvent id="assess_start" />',
            event_diagrams.user_task("check", "managers", fields=("outcome",)),
            '      <bpmn:exclusiveGateway id="verdict" default="to_fine" />',
            '      <bpmn:intermediateThrowEvent id="ask_help"><bpmn:escalationEventDefinition '
            'escalationRef="esc_help" /></bpmn:intermediateThrowEvent>',
            event_diagrams.user_task("second_look", "managers"),
            '      <bpmn:endEvent id="fraud"><bpmn:errorEventDefinition errorRef="err_fraud" />'
            "</bpmn:endEvent>",
            '      <bpmn:endEvent id="assess_end" />',
            '      <bpmn:sequenceFlow id="a1" sourceRef="assess_start" targetRef="check" />',
            '      <bpmn:sequenceFlow id="a2" sourceRef="check" targetRef="verdict" />',
            '      <bpmn:sequenceFlow id="to_fine" sourceRef="verdict" targetRef="assess_end" />',
            '      <bpmn:sequenceFlow id="to_fraud" sourceRef="verdict" targetRef="fraud">'
            '<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">outcome == "fraud"'
            "</bpmn:conditionExpression></bpmn:sequenceFlow>",
            '      <bpmn:sequenceFlow id="to_help" sourceRef="verdict" targetRef="ask_help">'
            '<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">outcome == "unsure"'
            "</bpmn:conditionExpression></bpmn:sequenceFlow>",
            '      <bpmn:sequenceFlow id="a3" sourceRef="ask_help" targetRef="second_look" />',
            '      <bpmn:sequenceFlow id="a4" sourceRef="second_look" targetRef="assess_end" />',
            "    </bpmn:subProcess>",
            '    <bpmn:boundaryEvent id="on_fraud" attachedToRef="assess">'
            '<bpmn:errorEventDefinition errorRef="err_fraud" /></bpmn:boundaryEvent>',
            '    <bpmn:boundaryEvent id="on_help" attachedToRef="assess" cancelActivity="false">'
            '<bpmn:escalationEventDefinition escalationRef="esc_help" /></bpmn:boundaryEvent>',
            event_diagrams.user_task("investigate", "managers"),
            event_diagrams.user_task("advise", "managers"),
            event_diagrams.user_task("pay", "managers"),
            '    <bpmn:endEvent id="end" />',
            '    <bpmn:endEvent id="end_fraud" />',
            '    <bpmn:endEvent id="end_advice" />',
            event_diagrams.flows(
                ("start", "assess"),
                ("assess", "pay"),
                ("pay", "end"),
                ("on_fraud", "investigate"),
                ("investigate", "end_fraud"),
                ("on_help", "advise"),
                ("advise", "end_advice"),
            ),
        ]
    ),
    '  <bpmn:error id="err_fraud" name="Fraud" errorCode="FRAUD" />\n'
    '  <bpmn:escalation id="esc_help" name="Help" escalationCode="HELP" />\n',
)


def test_an_error_ends_the_subprocess_and_the_parent_catches_it(approver):
    deploy_xml(SUBPROCESS_EVENTS)
    instance = start_instance(key="claims")
    assert open_task_elements(instance) == {"check"}
    complete(instance, "check", approver, outcome="fraud")
    assert open_task_elements(instance) == {"investigate"}
    complete(instance, "investigate", approver)
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.COMPLETED
    assert not instance.human_tasks.filter(element_id="pay").exists()


def test_an_escalation_reaches_the_parent_while_the_subprocess_goes_on(approver):
    deploy_xml(SUBPROCESS_EVENTS)
    instance = start_instance(key="claims")
    complete(instance, "check", approver, outcome="unsure")
    assert open_task_elements(instance) == {"second_look", "advise"}  # non-interrupting
    complete(instance, "advise", approver)
    assert open_task_elements(instance) == {"second_look"}
    complete(instance, "second_look", approver)
    assert open_task_elements(instance) == {"pay"}
    complete(instance, "pay", approver)
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.COMPLETED


def test_no_error_no_escalation(approver):
    deploy_xml(SUBPROCESS_EVENTS)
    instance = start_instance(key="claims")
    complete(instance, "check", approver, outcome="fine")
    assert open_task_elements(instance) == {"pay"}


GATEWAY = event_diagrams.camunda(
    "reminder",
    "\n".join(
        [
            '    <bpmn:startEvent id="start" />',
            '    <bpmn:eventBasedGateway id="race" />',
            '    <bpmn:intermediateCatchEvent id="answer"><bpmn:messageEventDefinition '
            'messageRef="msg_answer" /></bpmn:intermediateCatchEvent>',
            f'    <bpmn:intermediateCatchEvent id="too_late">'
            f"{event_diagrams.timer('timeDuration', 'P3D')}</bpmn:intermediateCatchEvent>",
            event_diagrams.user_task("process_answer", "managers"),
            event_diagrams.user_task("chase", "managers"),
            '    <bpmn:endEvent id="end_answer" />',
            '    <bpmn:endEvent id="end_chase" />',
            event_diagrams.flows(
                ("start", "race"),
                ("race", "answer"),
                ("race", "too_late"),
                ("answer", "process_answer"),
                ("too_late", "chase"),
                ("process_answer", "end_answer"),
                ("chase", "end_chase"),
            ),
        ]
    ),
    '  <bpmn:message id="msg_answer" name="answer" />\n',
)


def test_event_based_gateway_the_message_wins(clock, make_user):
    deploy_xml(GATEWAY)
    instance = start_instance(key="reminder", business_key="G-1")
    waits = {(w["type"], w["element_id"]) for w in _waiting_for(instance)}
    assert waits == {("timer", "race"), ("message", "race")}
    correlate_message(
        name="answer",
        actor=make_user("sam", "integrations"),
        business_key="G-1",
        variables={"text": "yes"},
    )
    assert open_task_elements(instance) == {"process_answer"}
    assert _waiting_for(instance) == [
        {
            "type": "user_task",
            "element_id": "process_answer",
            "name": "process_answer",
            "task": str(instance.human_tasks.get().pk),
        }
    ]
    clock.advance(datetime.timedelta(days=4))
    assert fire_due_timers() == 0


def test_event_based_gateway_the_timer_wins(clock, make_user):
    deploy_xml(GATEWAY)
    instance = start_instance(key="reminder", business_key="G-2")
    clock.advance(datetime.timedelta(days=3, seconds=1))
    assert fire_due_timers() == 1
    assert open_task_elements(instance) == {"chase"}
    with pytest.raises(Exception, match="No instance waits"):
        correlate_message(name="answer", actor=make_user("sam", "integrations"), business_key="G-2")


def _waiting_for(instance) -> list[dict]:
    from api.serializers import InstanceSerializer
    from engine.selectors import instance_detail

    return InstanceSerializer(instance_detail(instance.pk)).data["waiting_for"]


@pytest.fixture
def spiff_events(shared_dir: Path) -> Path:
    return shared_dir / SPIFF_EXAMPLES / "2-in-depth" / "events"


def spiff_files(folder: Path) -> list[UploadedFile]:
    return [
        UploadedFile(p.name, p.read_bytes())
        for p in sorted(folder.iterdir())
        if p.suffix in (".bpmn", ".json")
        and p.name not in ("process_model.json",)
        and not p.name.startswith("test_")
        and "exampledata" not in p.name
    ]


@pytest.mark.parametrize(
    ("path", "finished_at"),
    [
        ("Path A", "Event_068xxp8"),  # escalation end event in the subprocess
        ("Path B", "EndEvent_1"),  # no escalation
        ("Path C", "Event_068xxp8"),  # escalation from a nested subprocess
        ("Path D", "Event_068xxp8"),  # straight there, no escalation
    ],
)
def test_spiffarena_escalation_example(path, finished_at, make_user, spiff_events):
    from SpiffWorkflow.util.task import TaskState

    from engine.services.instance_store import load_workflow

    user = make_user("una_user")
    deploy(name="escalation", files=spiff_files(spiff_events / "escalation-events"), actor=None)
    instance = start_instance(key="Process_escalation_events_iq40493", actor=user)
    complete(instance, "Activity_0qpzdpu", user, path=path)
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.COMPLETED
    workflow = load_workflow(instance)
    ended = {
        t.task_spec.bpmn_id
        for t in workflow.get_tasks(state=TaskState.COMPLETED)
        if t.task_spec.bpmn_id in ("Event_068xxp8", "EndEvent_1")
    }
    assert ended == {finished_at}


def test_spiffarena_timer_example_continues_without_the_user(clock, make_user, spiff_events):
    user = make_user("una_user")
    deploy(name="timers", files=spiff_files(spiff_events / "timer-events"), actor=None)
    instance = start_instance(key="Process_timer_events_oh3akqq", actor=user)
    (timer,) = instance.timers.all()
    assert round((timer.due_at - clock.now()).total_seconds()) in (314, 315)
    clock.advance(datetime.timedelta(seconds=316))
    assert fire_due_timers() == 1
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.COMPLETED
    assert instance.human_tasks.get().status == "cancelled"


EVENT_SUBPROCESS = event_diagrams.camunda(
    "with_handlers",
    "\n".join(
        [
            '    <bpmn:startEvent id="start" />',
            event_diagrams.user_task("work", "managers"),
            '    <bpmn:endEvent id="end" />',
            '    <bpmn:subProcess id="on_cancel" triggeredByEvent="true">',
            '      <bpmn:startEvent id="cancel_start" isInterrupting="false">'
            '<bpmn:messageEventDefinition messageRef="msg_cancel" /></bpmn:startEvent>',
            event_diagrams.user_task("undo", "managers"),
            '      <bpmn:endEvent id="cancel_end" />',
            '      <bpmn:sequenceFlow id="c1" sourceRef="cancel_start" targetRef="undo" />',
            '      <bpmn:sequenceFlow id="c2" sourceRef="undo" targetRef="cancel_end" />',
            "    </bpmn:subProcess>",
            event_diagrams.flows(("start", "work"), ("work", "end")),
        ]
    ),
    '  <bpmn:message id="msg_cancel" name="cancel" />\n',
)


def test_a_non_interrupting_event_subprocess_starts_on_its_message(approver, make_user):
    # SpiffWorkflow runs every event subprocess without interrupting the process.
    deploy_xml(EVENT_SUBPROCESS)
    instance = start_instance(key="with_handlers", business_key="E-1")
    assert {(w["type"], w["element_id"]) for w in _waiting_for(instance)} == {
        ("user_task", "work"),
        ("message", "cancel_start"),
    }
    correlate_message(name="cancel", actor=make_user("sam", "integrations"), business_key="E-1")
    assert open_task_elements(instance) == {"undo", "work"}
    complete(instance, "undo", approver)
    complete(instance, "work", approver)
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.COMPLETED
