"""Timers with a movable clock: boundary timers on user tasks, intermediate timers, cycles,
timer start events, and suspended instances."""

import datetime

import pytest

from engine.exceptions import Conflict
from engine.models import HumanTask, InstanceEvent, ProcessInstance, Timer
from engine.services import resume_instance, start_instance, suspend_instance
from engine.services.timers import fire_due_timers
from processes.services import deploy
from processes.validation import UploadedFile
from tests.engine import event_diagrams

pytestmark = pytest.mark.django_db


def deploy_xml(xml: str, name: str = "events.bpmn"):
    (definition,) = deploy(name=name, files=[UploadedFile(name, xml.encode())], actor=None).created
    return definition


def open_tasks(instance) -> dict[str, str]:
    return dict(
        instance.human_tasks.filter(status__in=HumanTask.ACTIVE_STATUSES).values_list(
            "element_id", "status"
        )
    )


def test_boundary_timer_escalates_an_overdue_approval(clock):
    deploy_xml(event_diagrams.approval_with_escalation("P2D"))
    instance = start_instance(key="escalating_approval")
    (timer,) = Timer.objects.filter(instance=instance)
    assert timer.element_id == "overdue" and not timer.fired
    assert abs(timer.due_at - (clock.now() + datetime.timedelta(days=2))).total_seconds() < 5
    assert open_tasks(instance) == {"approve": "open"}

    clock.advance(datetime.timedelta(days=1))
    assert fire_due_timers() == 0
    assert open_tasks(instance) == {"approve": "open"}

    clock.advance(datetime.timedelta(days=1, minutes=1))
    assert fire_due_timers() == 1
    instance.refresh_from_db()
    assert open_tasks(instance) == {"escalate": "open"}
    assert instance.human_tasks.get(element_id="approve").status == "cancelled"
    timer.refresh_from_db()
    assert timer.fired and timer.fired_at is not None
    assert (
        InstanceEvent.objects.filter(
            instance=instance, type="timer_fired", element_id="overdue"
        ).count()
        == 1
    )
    assert fire_due_timers() == 0  # nothing fires twice


def test_approval_in_time_cancels_the_timer(clock, approver):
    from engine.services import complete_human_task

    deploy_xml(event_diagrams.approval_with_escalation("P2D"))
    instance = start_instance(key="escalating_approval")
    task = instance.human_tasks.get(element_id="approve")
    complete_human_task(task_id=task.pk, user=approver, variables={})
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.COMPLETED
    assert not Timer.objects.filter(instance=instance).exists()
    clock.advance(datetime.timedelta(days=3))
    assert fire_due_timers() == 0


def test_non_interrupting_cycle_reminds_twice_and_keeps_the_task(clock):
    deploy_xml(event_diagrams.approval_with_escalation("R2/PT1H", interrupting=False))
    instance = start_instance(key="escalating_approval")
    for hour in (1, 2):
        clock.advance(datetime.timedelta(hours=1, seconds=1))
        assert fire_due_timers() == 1, f"hour {hour}"
    assert clock.now() and fire_due_timers() == 0
    clock.advance(datetime.timedelta(hours=5))
    assert fire_due_timers() == 0  # two cycles only
    tasks = list(instance.human_tasks.values_list("element_id", "status").order_by("created_at"))
    assert tasks == [("approve", "open"), ("escalate", "open"), ("escalate", "open")]
    assert Timer.objects.filter(instance=instance, fired=True).count() == 2
    assert not Timer.objects.filter(instance=instance, fired=False).exists()


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("timeDuration", "PT30M"),
        ("timeDuration", '${"PT" + minutes + "M"}'),
        ("timeDate", "2031-05-01T09:00:00Z"),
    ],
)
def test_intermediate_timer_waits_then_continues(clock, kind, value):
    deploy_xml(event_diagrams.wait_for_timer(value, kind))
    instance = start_instance(key="waits", variables={"minutes": 30})
    (timer,) = Timer.objects.filter(instance=instance)
    assert instance.status == ProcessInstance.Status.WAITING
    assert open_tasks(instance) == {}
    clock.advance(timer.due_at - clock.now() + datetime.timedelta(seconds=1))
    assert fire_due_timers() == 1
    assert open_tasks(instance) == {"after": "open"}


def test_suspended_instance_keeps_its_timer_until_resume(clock, make_user):
    operator = make_user("olga_operator", "operators")
    deploy_xml(event_diagrams.wait_for_timer("PT10M"))
    instance = start_instance(key="waits")
    suspend_instance(instance_id=instance.pk, actor=operator)
    clock.advance(datetime.timedelta(minutes=11))
    assert fire_due_timers() == 0
    assert open_tasks(instance) == {}
    assert not Timer.objects.get(instance=instance).fired
    resume_instance(instance_id=instance.pk, actor=operator)
    assert Timer.objects.get(instance=instance).fired
    assert open_tasks(instance) == {"after": "open"}


# -- timer start events -------------------------------------------------------------------------


def scheduled_instances() -> int:
    return ProcessInstance.objects.filter(definition__key="scheduled").count()


def test_timer_start_event_starts_instances_on_schedule(clock):
    from engine.models import StartTrigger

    deploy_xml(event_diagrams.timer_start("R3/PT1H"))
    trigger = StartTrigger.objects.get(kind="timer")
    assert trigger.active and trigger.cycles_left == 3
    assert fire_due_timers() == 0 and scheduled_instances() == 0
    for expected in (1, 2, 3):
        clock.advance(datetime.timedelta(hours=1, seconds=1))
        assert fire_due_timers() == 1
        assert fire_due_timers() == 0  # one start per due time, however often the beat runs
        assert scheduled_instances() == expected
    clock.advance(datetime.timedelta(hours=10))
    assert fire_due_timers() == 0
    trigger.refresh_from_db()
    assert not trigger.active and trigger.next_due_at is None
    instance = ProcessInstance.objects.filter(definition__key="scheduled").first()
    assert open_tasks(instance) == {"check": "open"}
    started = InstanceEvent.objects.get(instance=instance, type="started")
    assert started.payload["trigger"] == "timer" and started.payload["start_event"] == "tick"


def test_a_long_outage_starts_once_not_once_per_missed_cycle(clock):
    deploy_xml(event_diagrams.timer_start("R/PT1H"))
    clock.advance(datetime.timedelta(hours=5, minutes=30))
    assert fire_due_timers() == 1
    assert fire_due_timers() == 0
    clock.advance(datetime.timedelta(minutes=31))
    assert fire_due_timers() == 1


def test_cron_timer_start_event(clock):
    from engine.models import StartTrigger

    deploy_xml(event_diagrams.timer_start("0 0 9 * * ?"))  # every day at 09:00
    trigger = StartTrigger.objects.get(kind="timer")
    due = trigger.next_due_at
    assert due is not None
    assert (due.hour, due.minute, due.second) == (9, 0, 0)
    assert datetime.timedelta(0) < due - clock.now() <= datetime.timedelta(days=1)
    clock.advance(due - clock.now() + datetime.timedelta(seconds=1))
    assert fire_due_timers() == 1
    trigger.refresh_from_db()
    assert trigger.next_due_at == due + datetime.timedelta(days=1)


@pytest.mark.parametrize(("expression", "weekday"), [("0 0 9 ? * 6#3", 4), ("0 0 9 ? * 6L", 4)])
def test_quartz_nth_and_last_weekday_timer_start_events(clock, expression, weekday):
    from engine.models import StartTrigger

    deploy_xml(event_diagrams.timer_start(expression))  # third / last Friday of the month
    due = StartTrigger.objects.get(kind="timer").next_due_at
    assert due is not None
    assert (due.weekday(), due.hour, due.minute) == (weekday, 9, 0)
    assert datetime.timedelta(0) < due - clock.now() <= datetime.timedelta(days=62)


def test_a_new_version_replaces_the_schedule_of_the_old_one(clock):
    from engine.models import StartTrigger

    deploy_xml(event_diagrams.timer_start("R/PT1H"))
    deploy_xml(event_diagrams.timer_start("R/PT2H"))
    assert StartTrigger.objects.filter(active=True).count() == 1
    clock.advance(datetime.timedelta(hours=1, seconds=1))
    assert fire_due_timers() == 0
    clock.advance(datetime.timedelta(hours=1))
    assert fire_due_timers() == 1
    assert ProcessInstance.objects.get(definition__key="scheduled").definition.version == 2


def test_a_timer_start_process_is_not_started_by_hand():
    # Issue 19: it starts on its timer only; by hand would run it at once, out of schedule.
    deploy_xml(event_diagrams.timer_start("R/PT1H"))
    with pytest.raises(Conflict, match="starts on its timer"):
        start_instance(key="scheduled")
    assert not ProcessInstance.objects.exists()


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("timeDuration", "PT", "not a valid ISO 8601 duration"),
        ("timeDuration", "P1Q", "not a valid ISO 8601 duration"),
        ("timeDate", "2031-13-45T00:00:00", "not a valid ISO 8601 date"),
        ("timeCycle", "R3/PT0S", "longer than zero"),
    ],
)
def test_bad_timer_values_are_refused_at_deploy_time(kind, value, message):
    from processes.validation import DeploymentInvalid

    with pytest.raises(DeploymentInvalid) as caught:
        deploy_xml(event_diagrams.wait_for_timer(value, kind))
    (problem,) = caught.value.problems
    assert problem.element_id == "wait" and message in problem.message, problem.message


def test_cron_is_refused_on_an_intermediate_timer():
    from processes.validation import DeploymentInvalid

    with pytest.raises(DeploymentInvalid) as caught:
        deploy_xml(event_diagrams.wait_for_timer("0 0 9 * * ?", "timeCycle"))
    assert "timer start events only" in caught.value.problems[0].message


def test_terminating_an_instance_removes_its_timers(clock, make_user):
    from engine.services import terminate_instance

    operator = make_user("olga_operator", "operators")
    deploy_xml(event_diagrams.wait_for_timer("PT10M"))
    instance = start_instance(key="waits")
    terminate_instance(instance_id=instance.pk, actor=operator, reason="test")
    assert not Timer.objects.filter(instance=instance).exists()
    clock.advance(datetime.timedelta(hours=1))
    assert fire_due_timers() == 0


def test_resuming_before_the_due_time_leaves_the_timer_to_the_beat(clock, make_user):
    operator = make_user("olga_operator", "operators")
    deploy_xml(event_diagrams.wait_for_timer("PT10M"))
    instance = start_instance(key="waits")
    suspend_instance(instance_id=instance.pk, actor=operator)
    resume_instance(instance_id=instance.pk, actor=operator)
    assert not Timer.objects.get(instance=instance).fired
    clock.advance(datetime.timedelta(minutes=11))
    assert fire_due_timers() == 1


def test_boundary_timer_on_a_service_task_cancels_its_job(clock):
    from engine.models import ServiceJob

    deploy_xml(event_diagrams.call_with_timeout('"http://127.0.0.1:9/slow"', "PT30S"))
    instance = start_instance(key="slow_call")
    assert instance.status == ProcessInstance.Status.RUNNING
    assert ServiceJob.objects.get().status == "pending"
    clock.advance(datetime.timedelta(minutes=1))
    assert fire_due_timers() == 1
    instance.refresh_from_db()
    assert open_tasks(instance) == {"by_hand": "open"}
    assert ServiceJob.objects.get().status == "cancelled"  # no worker makes the call now
    assert instance.status == ProcessInstance.Status.WAITING
