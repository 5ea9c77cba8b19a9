"""A task in the API is written directly (api.serializers.TaskSerializer.to_representation),
not field by field: it must answer exactly what DRF's fields would, for every kind of task, in
the list (with its lean instances), the detail and the claim response."""

from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework import serializers

from api.serializers import TaskSerializer
from engine import selectors
from engine.models import HumanTask
from engine.services import claim_task, complete_human_task, start_instance

pytestmark = pytest.mark.django_db
EXPENSE = {"amount": 250, "description": "Taxi", "requester": "bob"}


def field_by_field(task: HumanTask) -> dict[str, Any]:
    """What DRF's declared fields write for the task."""
    answer: dict[str, Any] = serializers.ModelSerializer.to_representation(TaskSerializer(), task)
    return answer


@pytest.fixture
def varied_tasks(expense_definition, approver: User, make_user) -> list[HumanTask]:
    """Open, claimed and completed; with and without a business key and a due date."""
    requester = make_user("bob")
    for number in range(4):
        start_instance(
            key="expense_approval",
            variables=EXPENSE,
            business_key=None if number == 1 else f"E-{number}",
            actor=requester,
        )
    tasks = list(HumanTask.objects.order_by("created_at"))
    HumanTask.objects.filter(pk=tasks[0].pk).update(
        due_at=datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        candidate_users=["carol", "dave"],
        priority=70,
    )
    claim_task(task_id=tasks[2].pk, user=approver)
    claim_task(task_id=tasks[3].pk, user=approver)
    complete_human_task(task_id=tasks[3].pk, user=approver, variables={"decision": "approve"})
    return tasks


def test_the_list_writes_what_the_fields_would(varied_tasks, approver, api_client_for):
    client = api_client_for(approver)
    with CaptureQueriesContext(connection) as page:
        listed = client.get("/api/v1/tasks/").json()["results"]
    # The user, the page, its count and its instances' business keys (one statement for all).
    assert len(page.captured_queries) == 4, [q["sql"][:80] for q in page.captured_queries]
    completed = client.get("/api/v1/tasks/?status=completed").json()["results"]
    assert len(listed) == 3 and len(completed) == 1
    for answer in listed + completed:
        task = selectors.task_detail(answer["id"])
        assert answer == field_by_field(task)
        assert list(answer) == TaskSerializer.Meta.fields  # in the schema's order
        assert answer["definition"] == task.instance.definition.key == "expense_approval"
    shown = {answer["id"]: answer for answer in listed}
    assert shown[str(varied_tasks[0].pk)]["due_at"] == "2030-01-02T03:04:05.678901Z"
    assert shown[str(varied_tasks[1].pk)]["business_key"] is None
    assert completed[0]["completed_at"] is not None


def test_the_detail_and_a_claim_write_what_the_fields_would(varied_tasks, approver, api_client_for):
    client = api_client_for(approver)
    task = varied_tasks[0]
    detail = client.get(f"/api/v1/tasks/{task.pk}/").json()
    assert detail == field_by_field(selectors.task_detail(task.pk))
    assert detail["form"] and detail["candidate_users"] == ["carol", "dave"]
    claimed = client.post(f"/api/v1/tasks/{task.pk}/claim/").json()
    assert claimed == field_by_field(selectors.task_detail(task.pk))
    assert claimed["assignee"] == approver.username and claimed["status"] == "claimed"
