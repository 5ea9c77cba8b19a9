"""The task page tells what else the instance waits for: a timer's due time, a message."""

import datetime

import pytest
from django.test import Client

from engine.models import Timer
from engine.services import start_instance
from engine.services.timers import fire_due_timers
from tests.engine import event_diagrams
from tests.engine.test_messages import deploy_xml

pytestmark = pytest.mark.django_db


def test_task_page_shows_the_escalation_timer(approver):
    deploy_xml(event_diagrams.approval_with_escalation("P2D"))
    instance = start_instance(key="escalating_approval")
    task = instance.human_tasks.get()
    due = Timer.objects.get(instance=instance).due_at
    client = Client()
    client.force_login(approver)
    page = client.get(f"/tasks/{task.id}/").content.decode()
    assert "The process also waits for" in page
    assert f'a timer (overdue) at <time datetime="{due.isoformat()}' in page


def test_task_page_shows_a_message_boundary(approver):
    deploy_xml(event_diagrams.message_boundary("cancel_order"))
    instance = start_instance(key="cancellable")
    client = Client()
    client.force_login(approver)
    page = client.get(f"/tasks/{instance.human_tasks.get().id}/").content.decode()
    assert "the message “cancel_order”" in page


def test_nothing_else_to_wait_for(clock, approver):
    deploy_xml(event_diagrams.wait_for_timer("PT1M"))
    client = Client()
    client.force_login(approver)
    instance = start_instance(key="waits")
    clock.advance(datetime.timedelta(minutes=2))
    fire_due_timers()
    page = client.get(f"/tasks/{instance.human_tasks.get().id}/").content.decode()
    assert "also waits for" not in page
