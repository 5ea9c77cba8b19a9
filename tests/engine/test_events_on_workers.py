"""Timers, messages and signals with the real thing: a Celery beat process ticking every
second, two Celery worker processes, the broker and Postgres. Real time, no moved clock."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import current_app

from engine.models import EventDelivery, HumanTask, ProcessInstance, Timer
from engine.services import broadcast_signal, complete_human_task, start_instance
from processes.services import deploy
from processes.validation import UploadedFile
from tests.engine import event_diagrams
from tests.engine.service_fixtures import (
    BASE_DIR,
    Workers,
    database_url,
    no_job_running,
    wait_until,
)
from tests.engine.test_messages import deploy_xml
from tests.helpers import SPIFF_EXAMPLES

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def celery_beat(celery_workers: Workers, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`celery beat` with Baton's schedule, sending to the test workers' queue."""
    log = tmp_path / "beat.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "BATON_CELERY_QUEUE": current_app.conf.task_default_queue,
        "PYTHONUNBUFFERED": "1",
    }
    beat = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "beat",
            "-l",
            "info",
            "--schedule",
            str(tmp_path / "beat-schedule"),
        ],
        cwd=BASE_DIR,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    wait_until(
        lambda: (
            "Sending due task fire-due-timers" in log.read_text(errors="replace")
            or beat.poll() is not None
        ),
        timeout=60,
        what="the beat's first tick",
    )
    assert beat.poll() is None, log.read_text()
    yield beat
    beat.terminate()
    beat.wait(timeout=15)


def test_timers_fire_on_the_beat_never_before_their_due_time(celery_beat) -> None:
    """How late they fire is measured by bench/faults.py (timers_behind_backlog), not here."""
    deploy_xml(event_diagrams.wait_for_timer("'PT' + str(seconds) + 'S'"))
    instances = [
        start_instance(key="waits", variables={"seconds": seconds}) for seconds in (2, 3, 3, 4, 5)
    ]
    wait_until(
        lambda: Timer.objects.filter(fired=True).count() == len(instances),
        timeout=30,
        what="every timer to fire",
    )
    for timer in Timer.objects.all():
        assert timer.fired_at is not None and timer.fired_at >= timer.due_at, timer.element_id
    assert HumanTask.objects.filter(element_id="after").count() == len(instances)


def test_a_timer_start_event_starts_instances_on_the_beat(celery_beat) -> None:
    deploy_xml(event_diagrams.timer_start("R2/PT1S"))
    from engine.models import StartTrigger

    wait_until(
        lambda: StartTrigger.objects.filter(kind="timer", next_due_at=None).exists(),
        timeout=20,
        what="the schedule to run out after its two starts",
    )
    assert ProcessInstance.objects.filter(definition__key="scheduled").count() == 2


def test_messages_between_instances_go_through_the_workers(
    celery_workers, make_user, shared_dir
) -> None:
    spiff_messages = shared_dir / SPIFF_EXAMPLES / "2-in-depth" / "2-4-messages"
    waiter_user = make_user("wally_waiter")
    files = [
        UploadedFile(p.name, p.read_bytes())
        for p in [
            spiff_messages / "waiter" / "simple-message-waiter.bpmn",
            spiff_messages / "waiter" / "order-schema.json",
            spiff_messages / "waiter" / "order-uischema.json",
        ]
    ]
    deploy(name="waiter", files=files, actor=None)
    chef_file = spiff_messages / "chef" / "simple-message-chef.bpmn"
    deploy(name="chef", files=[UploadedFile(chef_file.name, chef_file.read_bytes())], actor=None)
    waiter = start_instance(key="Process_k6u417e", actor=waiter_user)
    complete_human_task(
        task_id=waiter.human_tasks.get().pk,
        user=waiter_user,
        variables={"order": {"table_number": 3, "drink": "milk"}},
    )
    wait_until(
        lambda: HumanTask.objects.filter(element_id="Activity_01hg2o8").exists(),
        timeout=30,
        what="the chef's task",
    )
    chef_task = HumanTask.objects.get(element_id="Activity_01hg2o8")
    complete_human_task(task_id=chef_task.pk, user=waiter_user, variables={})

    def waiter_done() -> bool:
        waiter.refresh_from_db()
        return waiter.status == ProcessInstance.Status.COMPLETED

    wait_until(waiter_done, timeout=30, what="the waiter to hear back")
    assert waiter.variables["order"] == {"table_number": 3, "drink": "milk"}
    assert set(EventDelivery.objects.values_list("status", flat=True)) == {"delivered"}


def test_a_signal_reaches_every_waiting_instance_through_the_workers(
    celery_workers, make_user
) -> None:
    deploy_xml(event_diagrams.waits_for_signal("market_closed"))
    instances = [start_instance(key="trader") for _ in range(6)]
    sender = make_user("sam", "integrations")
    assert broadcast_signal(name="market_closed", actor=sender)["instances"] == 6
    wait_until(
        lambda: HumanTask.objects.filter(element_id="report").count() == 6,
        timeout=30,
        what="every trader to receive the signal",
    )
    for instance in instances:
        instance.refresh_from_db()
        assert instance.human_tasks.get().element_id == "report"


def test_a_boundary_timer_interrupts_a_slow_call(celery_beat, fake_api) -> None:
    from engine.models import ServiceJob
    from tests.engine.service_fixtures import Reply

    fake_api.reply("/slow", Reply(body={"late": True}, delay=4))
    deploy_xml(event_diagrams.call_with_timeout(f'"{fake_api.base_url}/slow"', "PT1S"))
    instance = start_instance(key="slow_call")
    wait_until(
        lambda: HumanTask.objects.filter(element_id="by_hand").exists(),
        timeout=20,
        what="the timer to interrupt the call",
    )
    wait_until(lambda: len(fake_api.requests_to("/slow")) == 1, timeout=10, what="the call")
    # The late answer arrives and is ignored: the worker lets go of the job's run lock.
    wait_until(no_job_running, timeout=30, what="the worker to finish with the late answer")
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.WAITING
    assert "late" not in instance.variables
    assert ServiceJob.objects.get().status == "cancelled"
