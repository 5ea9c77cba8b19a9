"""The admin's service jobs, queues page and schedule actions, for operators only."""

from typing import Any

import pytest
from django.test import Client

from engine.models import ProcessInstance, ScheduleEvent, ServiceJob, StartTrigger
from engine.services import start_instance
from processes.services import deploy
from processes.validation import UploadedFile
from tests.engine import event_diagrams
from tests.external_tasks import diagrams

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client(make_staff: Any) -> Client:
    client = Client()
    client.force_login(make_staff("olga_operator", "operators"))
    return client


def test_operators_cancel_and_requeue_jobs_and_see_queues(operator_client: Client) -> None:
    xml = diagrams.camunda7()
    deploy(name="p.bpmn", files=[UploadedFile("p.bpmn", xml.encode())], actor=None)
    instance = start_instance(key="payment", variables={"amount": 1}, actor=None)
    job = ServiceJob.objects.get(instance=instance)
    url = "/admin/engine/servicejob/"
    assert operator_client.get(url).status_code == 200
    operator_client.post(url, {"action": "cancel", "_selected_action": [str(job.pk)]})
    instance.refresh_from_db()
    assert instance.status == "incident"
    operator_client.post(url, {"action": "requeue", "_selected_action": [str(job.pk)]})
    instance.refresh_from_db()
    job.refresh_from_db()
    assert (instance.status, job.status) == ("waiting", "pending")
    page = operator_client.get(f"{url}queues/")
    assert page.status_code == 200
    assert b'data-testid="queues"' in page.content


def test_schedule_actions_in_the_admin(operator_client: Client) -> None:
    xml = event_diagrams.timer_start("R/P1D")
    deploy(name="t.bpmn", files=[UploadedFile("t.bpmn", xml.encode())], actor=None)
    trigger = StartTrigger.objects.get(kind="timer")
    url = "/admin/engine/starttrigger/"
    operator_client.post(url, {"action": "pause", "_selected_action": [str(trigger.pk)]})
    trigger.refresh_from_db()
    assert trigger.paused
    operator_client.post(url, {"action": "run_now", "_selected_action": [str(trigger.pk)]})
    assert ProcessInstance.objects.filter(definition__key="scheduled").count() == 1
    assert list(ScheduleEvent.objects.values_list("type", flat=True)) == ["paused", "run_now"]


def test_outsiders_do_not_see_jobs(make_staff: Any) -> None:
    client = Client()
    client.force_login(make_staff("dora", "designers"))
    assert client.get("/admin/engine/servicejob/").status_code == 403
    assert client.get("/admin/engine/servicejob/queues/").status_code == 403
