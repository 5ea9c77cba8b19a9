"""Event subprocesses and boundary events on subprocesses, through the services: what an
interruption cancels (tokens, open user tasks, service jobs, timers, subscriptions), what a
non-interrupting start leaves running, when an event subprocess's start event subscribes, and
conditional events that notice data changes. Every step loads the instance from Postgres and
writes it back."""

import datetime

import pytest

from engine.models import (
    HumanTask,
    MessageSubscription,
    ProcessInstance,
    ServiceJob,
    SignalSubscription,
    Timer,
)
from engine.services import broadcast_signal, complete_human_task, start_instance
from engine.services.timers import fire_due_timers
from processes.validation import DeploymentInvalid
from tests.conftest import MovableClock
from tests.engine import event_diagrams as d
from tests.engine.service_diagrams import service_task
from tests.engine.test_messages import deliver_pending, deploy_xml
from tests.helpers import open_task_elements

pytestmark = pytest.mark.django_db

EVENTS = (
    '  <bpmn:signal id="sig_alarm" name="alarm" />\n'
    '  <bpmn:message id="msg_reply" name="reply" />\n'
    '  <bpmn:error id="err_failed" name="Failed" errorCode="FAILED" />\n'
)
SIGNAL = '<bpmn:signalEventDefinition signalRef="sig_alarm" />'
ERROR = '<bpmn:errorEventDefinition errorRef="err_failed" />'


def condition(expression: str) -> str:
    return (
        '<bpmn:conditionalEventDefinition><bpmn:condition xsi:type="bpmn:tFormalExpression">'
        f"{expression}</bpmn:condition></bpmn:conditionalEventDefinition>"
    )


def event_subprocess(definition: str, *, interrupting: bool, prefix: str = "ev") -> str:
    return "\n".join(
        [
            f'    <bpmn:subProcess id="{prefix}" triggeredByEvent="true">',
            f'      <bpmn:startEvent id="{prefix}_start" '
            f'isInterrupting="{"true" if interrupting else "false"}">{definition}'
            "</bpmn:startEvent>",
            d.user_task(f"{prefix}_handle"),
            f'      <bpmn:endEvent id="{prefix}_end" />',
            d.flows((f"{prefix}_start", f"{prefix}_handle"), (f"{prefix}_handle", f"{prefix}_end")),
            "    </bpmn:subProcess>",
        ]
    )


def busy_process(process_id: str, handler: str) -> str:
    """Four branches that each leave a projection behind (a user task, a service job, a
    timer, a message subscription), and the event subprocess `handler`."""
    return d.camunda(
        process_id,
        "\n".join(
            [
                '    <bpmn:startEvent id="start" />',
                '    <bpmn:parallelGateway id="fork" />',
                d.user_task("work"),
                service_task("call", "'http://127.0.0.1:9/never-called'").rstrip(),
                f'    <bpmn:intermediateCatchEvent id="wait">{d.timer("timeDuration", "P1D")}'
                "</bpmn:intermediateCatchEvent>",
                '    <bpmn:intermediateCatchEvent id="hear">'
                '<bpmn:messageEventDefinition messageRef="msg_reply" />'
                "</bpmn:intermediateCatchEvent>",
                '    <bpmn:parallelGateway id="join" />',
                '    <bpmn:endEvent id="end" />',
                d.flows(
                    ("start", "fork"),
                    ("fork", "work"),
                    ("fork", "call"),
                    ("fork", "wait"),
                    ("fork", "hear"),
                    ("work", "join"),
                    ("call", "join"),
                    ("wait", "join"),
                    ("hear", "join"),
                    ("join", "end"),
                ),
                handler,
            ]
        ),
        EVENTS,
    )


def complete(instance: ProcessInstance, element_id: str, user, **variables) -> None:
    task = instance.human_tasks.filter(
        element_id=element_id, status__in=HumanTask.ACTIVE_STATUSES
    ).first()
    assert task is not None, f"no open task {element_id}"
    complete_human_task(task_id=task.pk, user=user, variables=variables)


def signal(sender) -> None:
    broadcast_signal(name="alarm", actor=sender)
    deliver_pending()


@pytest.fixture
def sender(make_user):
    return make_user("sam_sender", "integrations")


def test_an_interrupting_event_subprocess_cancels_everything_else_in_its_scope(approver, sender):
    deploy_xml(busy_process("busy", event_subprocess(SIGNAL, interrupting=True)))
    instance = start_instance(key="busy")
    assert instance.jobs.get().status == ServiceJob.Status.PENDING
    assert instance.timers.filter(element_id="wait").exists()
    assert instance.message_subscriptions.filter(element_id="hear").exists()
    assert instance.signal_subscriptions.get().element_id == "ev_start"

    signal(sender)

    instance.refresh_from_db()
    assert open_task_elements(instance) == {"ev_handle"}
    assert instance.human_tasks.get(element_id="work").status == HumanTask.Status.CANCELLED
    assert instance.jobs.get().status == ServiceJob.Status.CANCELLED
    assert not Timer.objects.filter(instance=instance).exists()
    assert not MessageSubscription.objects.filter(instance=instance).exists()
    assert not SignalSubscription.objects.filter(instance=instance).exists()
    assert instance.events.filter(type="task_cancelled", element_id="work").exists()

    complete(instance, "ev_handle", approver)
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.COMPLETED


def test_a_non_interrupting_event_subprocess_runs_beside_the_rest_each_time(approver, sender):
    deploy_xml(
        d.camunda(
            "beside",
            "\n".join(
                [
                    '    <bpmn:startEvent id="start" />',
                    d.user_task("work", fields=("note",)),
                    '    <bpmn:endEvent id="end" />',
                    d.flows(("start", "work"), ("work", "end")),
                    event_subprocess(SIGNAL, interrupting=False),
                ]
            ),
            EVENTS,
        )
    )
    instance = start_instance(key="beside")
    signal(sender)
    signal(sender)
    assert (
        instance.human_tasks.filter(element_id="ev_handle", status="claimed").count()
        + (instance.human_tasks.filter(element_id="ev_handle", status="open").count())
        == 2
    )
    assert open_task_elements(instance) == {"work", "ev_handle"}
    assert instance.signal_subscriptions.get().element_id == "ev_start"  # still listening

    complete(instance, "work", approver, note="done")
    instance.refresh_from_db()
    assert instance.status != ProcessInstance.Status.COMPLETED  # the handlers still run
    complete(instance, "ev_handle", approver)
    complete(instance, "ev_handle", approver)
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.COMPLETED
    assert instance.variables["note"] == "done"
    assert not instance.signal_subscriptions.exists()


def test_an_event_subprocess_listens_only_while_its_scope_is_active(approver, sender):
    deploy_xml(
        d.camunda(
            "scoped",
            "\n".join(
                [
                    '    <bpmn:startEvent id="start" />',
                    d.user_task("before"),
                    '    <bpmn:subProcess id="sub">',
                    '      <bpmn:startEvent id="sub_start" />',
                    d.user_task("inside"),
                    '      <bpmn:endEvent id="sub_end" />',
                    d.flows(("sub_start", "inside"), ("inside", "sub_end")),
                    event_subprocess(SIGNAL, interrupting=True, prefix="inner"),
                    "    </bpmn:subProcess>",
                    d.user_task("after"),
                    '    <bpmn:endEvent id="end" />',
                    d.flows(("start", "before"), ("before", "sub"), ("sub", "after")),
                    d.flows(("after", "end")),
                ]
            ),
            EVENTS,
        )
    )
    instance = start_instance(key="scoped")
    assert not instance.signal_subscriptions.exists()
    complete(instance, "before", approver)
    assert instance.signal_subscriptions.get().element_id == "inner_start"
    complete(instance, "inside", approver)
    assert not instance.signal_subscriptions.exists()
    assert open_task_elements(instance) == {"after"}
    assert broadcast_signal(name="alarm", actor=sender)["instances"] == 0


def test_an_interrupting_event_subprocess_of_a_subprocess_ends_only_the_subprocess(
    approver, sender
):
    deploy_xml(
        d.camunda(
            "inner_interrupt",
            "\n".join(
                [
                    '    <bpmn:startEvent id="start" />',
                    '    <bpmn:subProcess id="sub">',
                    '      <bpmn:startEvent id="sub_start" />',
                    d.user_task("inside"),
                    '      <bpmn:endEvent id="sub_end" />',
                    d.flows(("sub_start", "inside"), ("inside", "sub_end")),
                    event_subprocess(SIGNAL, interrupting=True, prefix="inner"),
                    "    </bpmn:subProcess>",
                    d.user_task("after"),
                    '    <bpmn:endEvent id="end" />',
                    d.flows(("start", "sub"), ("sub", "after"), ("after", "end")),
                ]
            ),
            EVENTS,
        )
    )
    instance = start_instance(key="inner_interrupt")
    signal(sender)
    assert open_task_elements(instance) == {"inner_handle"}
    assert instance.human_tasks.get(element_id="inside").status == HumanTask.Status.CANCELLED
    complete(instance, "inner_handle", approver)
    assert open_task_elements(instance) == {"after"}


def test_an_interrupting_timer_event_subprocess_fires_once_and_removes_the_other_timers(
    approver, clock: MovableClock
):
    handler = event_subprocess(d.timer("timeDuration", "PT2H"), interrupting=True)
    deploy_xml(busy_process("timed", handler))
    instance = start_instance(key="timed")
    assert set(instance.timers.values_list("element_id", flat=True)) == {"wait", "ev_start"}
    clock.advance(datetime.timedelta(hours=3))
    fire_due_timers()
    instance.refresh_from_db()
    assert open_task_elements(instance) == {"ev_handle"}
    assert list(instance.timers.values_list("element_id", "fired")) == [("ev_start", True)]
    assert instance.jobs.get().status == ServiceJob.Status.CANCELLED


def test_an_error_end_event_starts_the_error_event_subprocess_and_cancels_the_rest(approver):
    deploy_xml(
        d.camunda(
            "failing",
            "\n".join(
                [
                    '    <bpmn:startEvent id="start" />',
                    '    <bpmn:parallelGateway id="fork" />',
                    d.user_task("work"),
                    d.user_task("other"),
                    f'    <bpmn:endEvent id="fail">{ERROR}</bpmn:endEvent>',
                    '    <bpmn:endEvent id="end" />',
                    d.flows(
                        ("start", "fork"),
                        ("fork", "work"),
                        ("fork", "other"),
                        ("work", "fail"),
                        ("other", "end"),
                    ),
                    event_subprocess(ERROR, interrupting=True),
                ]
            ),
            EVENTS,
        )
    )
    instance = start_instance(key="failing")
    assert open_task_elements(instance) == {"work", "other"}  # not started at once
    complete(instance, "work", approver)
    assert open_task_elements(instance) == {"ev_handle"}
    assert instance.human_tasks.get(element_id="other").status == HumanTask.Status.CANCELLED
    complete(instance, "ev_handle", approver)
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.COMPLETED


def test_a_non_interrupting_error_start_event_is_refused():
    document = d.camunda(
        "refused",
        "\n".join(
            [
                '    <bpmn:startEvent id="start" />',
                '    <bpmn:endEvent id="end" />',
                d.flows(("start", "end")),
                event_subprocess(ERROR, interrupting=False),
            ]
        ),
        EVENTS,
    )
    with pytest.raises(DeploymentInvalid) as refused:
        deploy_xml(document)
    (problem,) = refused.value.problems
    assert problem.element_id == "ev_start"
    assert "always interrupts" in problem.message


def conditional_process(process_id: str, handler_or_catch: str, *, catch: bool = False) -> str:
    if catch:  # start -> set level -> wait until level > 5 -> done
        body = [
            '    <bpmn:startEvent id="start" />',
            '    <bpmn:parallelGateway id="fork" />',
            d.user_task("raise_level", fields=("level",)),
            f'    <bpmn:intermediateCatchEvent id="until_high">{handler_or_catch}'
            "</bpmn:intermediateCatchEvent>",
            d.user_task("high"),
            '    <bpmn:endEvent id="end_raise" />',
            '    <bpmn:endEvent id="end_high" />',
            d.flows(
                ("start", "fork"),
                ("fork", "raise_level"),
                ("fork", "until_high"),
                ("raise_level", "end_raise"),
                ("until_high", "high"),
                ("high", "end_high"),
            ),
        ]
    else:
        body = [
            '    <bpmn:startEvent id="start" />',
            d.user_task("first", fields=("level",)),
            d.user_task("second", fields=("level",)),
            d.user_task("third", fields=("level",)),
            '    <bpmn:endEvent id="end" />',
            d.flows(("start", "first"), ("first", "second"), ("second", "third")),
            d.flows(("third", "end")),
            handler_or_catch,
        ]
    return d.camunda(process_id, "\n".join(body), EVENTS)


def test_a_conditional_start_fires_when_the_condition_becomes_true_and_not_again_while_true(
    approver,
):
    handler = event_subprocess(condition("int(level) &gt; 5"), interrupting=False)
    deploy_xml(conditional_process("conditional", handler))
    instance = start_instance(key="conditional", variables={"level": "0"})
    assert open_task_elements(instance) == {"first"}
    complete(instance, "first", approver, level="3")
    assert open_task_elements(instance) == {"second"}
    instance.refresh_from_db()
    complete(instance, "second", approver, level="7")
    assert open_task_elements(instance) == {"third", "ev_handle"}
    complete(instance, "ev_handle", approver)
    complete(instance, "third", approver, level="9")  # still true: no second start
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.COMPLETED
    assert instance.human_tasks.filter(element_id="ev_handle").count() == 1
    assert instance.variables["level"] == "9"


def test_a_conditional_catch_event_waits_until_another_branch_changes_the_data(approver):
    deploy_xml(conditional_process("until", condition("int(level) &gt; 5"), catch=True))
    instance = start_instance(key="until", variables={"level": "1"})
    assert open_task_elements(instance) == {"raise_level"}
    complete(instance, "raise_level", approver, level="8")
    assert open_task_elements(instance) == {"high"}


def test_an_interrupting_boundary_event_on_a_subprocess_cancels_what_runs_inside(approver, sender):
    deploy_xml(
        d.camunda(
            "guarded",
            "\n".join(
                [
                    '    <bpmn:startEvent id="start" />',
                    '    <bpmn:subProcess id="sub">',
                    '      <bpmn:startEvent id="sub_start" />',
                    '      <bpmn:parallelGateway id="sub_fork" />',
                    d.user_task("inside"),
                    '      <bpmn:intermediateCatchEvent id="sub_wait">'
                    f"{d.timer('timeDuration', 'P1D')}</bpmn:intermediateCatchEvent>",
                    '      <bpmn:endEvent id="sub_end" />',
                    '      <bpmn:endEvent id="sub_end_wait" />',
                    d.flows(
                        ("sub_start", "sub_fork"),
                        ("sub_fork", "inside"),
                        ("sub_fork", "sub_wait"),
                        ("inside", "sub_end"),
                        ("sub_wait", "sub_end_wait"),
                    ),
                    "    </bpmn:subProcess>",
                    f'    <bpmn:boundaryEvent id="stopped" attachedToRef="sub">{SIGNAL}'
                    "</bpmn:boundaryEvent>",
                    d.user_task("react"),
                    '    <bpmn:endEvent id="end" />',
                    '    <bpmn:endEvent id="end_stopped" />',
                    d.flows(("start", "sub"), ("sub", "end"), ("stopped", "react")),
                    d.flows(("react", "end_stopped")),
                ]
            ),
            EVENTS,
        )
    )
    instance = start_instance(key="guarded")
    assert instance.timers.filter(element_id="sub_wait").exists()
    signal(sender)
    assert open_task_elements(instance) == {"react"}
    assert instance.human_tasks.get(element_id="inside").status == HumanTask.Status.CANCELLED
    assert not instance.timers.exists()
    assert not instance.signal_subscriptions.exists()


def test_a_juel_condition_on_a_conditional_event_is_read_as_juel(approver):
    """`${...}` is JUEL wherever a diagram holds an expression, conditional events included
    (finding 2.1: the wrapper was stripped and the inside read as Python)."""
    deploy_xml(
        conditional_process(
            "juel_until", condition("${level != '1' &amp;&amp; !empty level}"), catch=True
        )
    )
    instance = start_instance(key="juel_until", variables={"level": "1"})
    assert open_task_elements(instance) == {"raise_level"}
    complete(instance, "raise_level", approver, level="8")
    assert open_task_elements(instance) == {"high"}


def test_a_conditional_event_whose_condition_cannot_be_read_is_refused():
    with pytest.raises(DeploymentInvalid) as refused:
        deploy_xml(
            conditional_process("juel_bad", condition("${level &gt;&gt; &amp;&amp; 1}"), catch=True)
        )
    assert "not valid JUEL" in str(refused.value)
