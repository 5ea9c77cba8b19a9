"""Why an instance waits, in words, on the starter's page and the admin's instance page; the
admin list filters by what instances wait for."""

import datetime
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from engine.models import MessageSubscription, ProcessInstance, ServiceJob
from engine.selectors import wait_states
from engine.services import start_instance
from engine.services.job_runs import execute_service_job
from processes.services import deploy
from processes.validation import UploadedFile
from tests.engine import event_diagrams
from tests.engine.service_diagrams import sequence, service_task
from tests.engine.service_fixtures import FakeApi, Reply, jobs_for_no_worker
from tests.helpers import build_bpmn, deploy_document

pytestmark = pytest.mark.django_db(transaction=True)


def deploy_xml(xml: str) -> None:
    deploy(name="waits.bpmn", files=[UploadedFile("waits.bpmn", xml.encode())], actor=None)


def texts(instance: ProcessInstance) -> list[str]:
    instance.refresh_from_db()
    return [wait.text for wait in wait_states(instance)]


def test_a_task_waits_for_its_group_since_when_and_until_when(make_user: Any) -> None:
    deploy_document(build_bpmn("wait_task", candidate_groups="managers"))
    starter = make_user("sue_starter")
    instance = start_instance(key="wait_task", actor=starter)
    now = timezone.now()
    instance.human_tasks.update(
        created_at=now - datetime.timedelta(days=2, minutes=1),
        due_at=now + datetime.timedelta(days=1),
    )
    (text,) = texts(instance)
    assert text == "waiting for someone in managers since 2\xa0days (due tomorrow)"
    instance.human_tasks.update(due_at=now - datetime.timedelta(days=1))
    assert texts(instance) == [
        "waiting for someone in managers since 2\xa0days (overdue since yesterday)"
    ]

    # The starter's page and the operator's page say the same.
    client = Client()
    client.force_login(starter)
    page = client.get(reverse("tasks_ui:instance", args=[instance.pk])).content.decode()
    assert "waiting for someone in managers since 2\xa0days" in page.replace("&nbsp;", "\xa0")
    operator = make_user("olga_operator", "operators")
    operator.is_staff = True
    operator.save()
    client.force_login(operator)
    admin_page = client.get(
        reverse("admin:engine_processinstance_change", args=[instance.pk])
    ).content.decode()
    assert "Why it waits" in admin_page
    assert "waiting for someone in managers" in admin_page


def test_a_timer_and_a_message(make_user: Any) -> None:
    deploy_xml(event_diagrams.wait_for_timer("PT1H"))
    timer_instance = start_instance(key="waits")
    due = timezone.localtime(timer_instance.timers.get().due_at)
    day = "today" if due.date() == timezone.localtime().date() else "tomorrow"
    assert texts(timer_instance) == [f"timer due {day} {due:%H:%M}"]

    deploy_xml(event_diagrams.waits_for_message("payment-received"))
    order = start_instance(key="order", business_key="42")
    assert texts(order) == ["message payment-received for business key 42"]
    MessageSubscription.objects.filter(instance=order).update(correlation={"order_id": 42})
    assert texts(order) == ["message payment-received with order_id=42"]

    # The admin list filters by what instances wait for.
    operator = make_user("olga_operator", "operators")
    operator.is_staff = True
    operator.save()
    client = Client()
    client.force_login(operator)
    url = reverse("admin:engine_processinstance_changelist")
    listed = client.get(url, {"waiting_for": "message"}).content.decode()
    assert str(order.pk)[:8] in listed and str(timer_instance.pk)[:8] not in listed
    listed = client.get(url, {"waiting_for": "timer"}).content.decode()
    assert str(timer_instance.pk)[:8] in listed and str(order.pk)[:8] not in listed


def test_a_service_call_retrying_and_an_incident(fake_api: FakeApi, settings: Any) -> None:
    settings.BATON_HTTP_ALLOW = [f"127.0.0.1:{fake_api.server.server_port}"]
    fake_api.reply("/busy", Reply(503, {"detail": "busy"}))
    deploy_xml(sequence("wait_http", [service_task("call", 'api + "/busy"')]))
    with jobs_for_no_worker():
        instance = start_instance(key="wait_http", variables={"api": fake_api.base_url})
        job = ServiceJob.objects.get(instance=instance)
        job.max_attempts = 5
        job.save()
        for _ in range(3):
            ServiceJob.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
            execute_service_job(str(job.id))
    job.refresh_from_db()
    at = timezone.localtime(job.next_attempt_at)
    day = "today" if at.date() == timezone.localtime().date() else "tomorrow"
    (text,) = texts(instance)
    assert text.startswith(f"http call retrying at {day} {at:%H:%M} after 3 failures (")
    assert "503" in text

    deploy_document(build_bpmn("wait_incident", script="x = 1 / 0"))
    failed = start_instance(key="wait_incident")
    (incident,) = texts(failed)
    assert incident.startswith("incident since today ") and "division by zero" in incident


def test_a_finished_instance_waits_for_nothing(approver: User) -> None:
    deploy_document(build_bpmn("wait_done"))
    instance = start_instance(key="wait_done")
    from engine.services import complete_human_task

    complete_human_task(task_id=instance.human_tasks.get().id, user=approver, variables={})
    assert texts(instance) == []
