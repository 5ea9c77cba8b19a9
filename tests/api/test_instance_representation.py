"""An instance in the API is written directly (api.serializers.InstanceSerializer and
OpenTaskSerializer `to_representation`), not field by field: it must answer exactly what DRF's
fields would, for instances waiting, completed, with jobs and in either kind of incident."""

from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework import serializers

from api.serializers import InstanceSerializer, OpenTaskSerializer
from engine import selectors
from engine.models import HumanTask, ProcessInstance, ServiceJob
from engine.services import claim_task, complete_human_task, start_instance
from tests.engine.service_diagrams import sequence, service_task
from tests.engine.service_fixtures import jobs_for_no_worker
from tests.helpers import deploy_document

pytestmark = pytest.mark.django_db(transaction=True)
EXPENSE = {"amount": 250, "description": "Taxi", "requester": "bob"}


def field_by_field(instance: ProcessInstance) -> dict[str, Any]:
    """What DRF's declared fields write for the instance."""
    answer: dict[str, Any] = serializers.ModelSerializer.to_representation(
        InstanceSerializer(), instance
    )
    return answer


@pytest.fixture
def varied_instances(expense_definition, approver: User, make_user) -> list[ProcessInstance]:
    bob = make_user("bob")
    waiting = start_instance(key="expense_approval", variables=EXPENSE, actor=bob)
    task = HumanTask.objects.get(instance=waiting)
    HumanTask.objects.filter(pk=task.pk).update(
        due_at=datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), candidate_users=["carol"]
    )
    done = start_instance(key="expense_approval", variables=EXPENSE, business_key="E-2")
    done_task = HumanTask.objects.get(instance=done)
    claim_task(task_id=done_task.pk, user=approver)
    complete_human_task(task_id=done_task.pk, user=approver, variables={"decision": "approve"})
    call = service_task("call", "'http://127.0.0.1:9/x'")
    deploy_document(sequence("one_call", [call]), "one_call.bpmn")
    with jobs_for_no_worker():
        with_job = start_instance(key="one_call", variables={}, actor=bob)
        dead_job = start_instance(key="one_call", variables={}, business_key="D-1")
    ServiceJob.objects.filter(instance=dead_job).update(
        status=ServiceJob.Status.DEAD, error_code="HTTP_500", last_error="HTTP 500", attempt=3
    )
    ProcessInstance.objects.filter(pk=dead_job.pk).update(status=ProcessInstance.Status.INCIDENT)
    script_failed = start_instance(key="expense_approval", variables=EXPENSE)
    ProcessInstance.objects.filter(pk=script_failed.pk).update(
        status=ProcessInstance.Status.INCIDENT,
        incident={"kind": "script", "element_id": "decide", "error": "NameError: x", "attempts": 2},
    )
    return [waiting, done, with_job, dead_job, script_failed]


def test_an_instance_writes_what_the_fields_would(varied_instances) -> None:
    for instance in varied_instances:
        detail = selectors.instance_detail(instance.pk)
        assert InstanceSerializer(detail).data == field_by_field(detail)
        assert list(InstanceSerializer(detail).data) == InstanceSerializer.Meta.fields
    answers = [InstanceSerializer(selectors.instance_detail(i.pk)).data for i in varied_instances]
    # The fixture exercises what can differ.
    assert [a["status"] for a in answers] == [
        "waiting",
        "completed",
        "running",
        "incident",
        "incident",
    ]
    assert answers[0]["started_by"] == "bob" and answers[1]["started_by"] is None
    assert answers[0]["open_tasks"][0]["due_at"] == "2030-01-02T03:04:05.678901Z"
    assert answers[2]["jobs"] and answers[3]["incident"]["kind"] == "job"
    assert answers[4]["incident"]["kind"] == "script"


def test_an_open_task_writes_what_the_fields_would(varied_instances) -> None:
    for task in HumanTask.objects.all():
        direct = OpenTaskSerializer().to_representation(task)
        assert direct == serializers.ModelSerializer.to_representation(OpenTaskSerializer(), task)


def test_the_list_writes_each_instance_as_its_detail(varied_instances, approver, api_client_for):
    client = api_client_for(User.objects.create_superuser("root", password="x"))
    listed = client.get("/api/v1/instances/?page_size=50").json()["results"]
    assert len(listed) == len(varied_instances)
    for answer in listed:
        assert answer == client.get(f"/api/v1/instances/{answer['id']}/").json()
