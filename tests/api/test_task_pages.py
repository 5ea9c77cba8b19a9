"""`GET /api/v1/tasks/` pages that follow each other by cursor: every task once, in the list's
order, also when tasks are added and completed between two pages; counts; bad cursors."""

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from engine.models import HumanTask
from engine.services import claim_task, complete_human_task, start_instance

pytestmark = pytest.mark.django_db
EXPENSE = {"amount": 250, "description": "Taxi", "requester": "bob"}


def start_expenses(requester: User, count: int, first: int = 0) -> list[HumanTask]:
    for number in range(first, first + count):
        start_instance(
            key="expense_approval",
            variables=EXPENSE,
            business_key=f"E-{number:02}",
            actor=requester,
        )
    return list(HumanTask.objects.filter(status=HumanTask.Status.OPEN).order_by("created_at"))


def vary(tasks: list[HumanTask]) -> None:
    """Ties and gaps in the sort key: three priorities, some due dates, some none."""
    now = timezone.now()
    for index, task in enumerate(tasks):
        due = now + timedelta(days=index % 4) if index % 3 else None
        HumanTask.objects.filter(pk=task.pk).update(priority=(30, 50, 70)[index % 3], due_at=due)


def follow(client: APIClient, url: str) -> tuple[list[str], list[dict[str, Any]]]:
    """Every id from `url` on, following `next`; and each page's body."""
    ids: list[str] = []
    bodies: list[dict[str, Any]] = []
    while url:
        assert len(bodies) < 20, "the next links go round in a circle"
        response = client.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        bodies.append(body)
        ids += [task["id"] for task in body["results"]]
        url = body["next"]
    return ids, bodies


def test_next_links_list_every_task_once_in_order(
    expense_definition, approver, make_user, api_client_for
):
    vary(start_expenses(make_user("rita"), 7))
    client = api_client_for(approver)
    whole = client.get("/api/v1/tasks/?page_size=100").json()
    ids, bodies = follow(client, "/api/v1/tasks/?page_size=2")
    assert ids == [task["id"] for task in whole["results"]] and len(ids) == 7
    assert [len(body["results"]) for body in bodies] == [2, 2, 2, 1]
    assert {body["count"] for body in bodies} == {7}
    assert bodies[0]["previous"] is None and "cursor=" in bodies[1]["next"]
    # Back from the third page: the second; from the second: the first, without a cursor.
    back = client.get(bodies[2]["previous"]).json()
    assert back["results"] == bodies[1]["results"]
    assert "cursor" not in back["previous"]
    assert client.get(back["previous"]).json()["results"] == bodies[0]["results"]


def test_pages_neither_repeat_nor_skip_when_tasks_come_and_go(
    expense_definition, approver, make_user, api_client_for
):
    rita = make_user("rita")
    tasks = start_expenses(rita, 6)
    client = api_client_for(approver)
    first = client.get("/api/v1/tasks/?page_size=3").json()
    seen = [task["id"] for task in first["results"]]
    # Meanwhile a task of the first page is done and two new ones arrive.
    complete_human_task(
        task_id=seen[0], user=approver, variables={"decision": "approve", "comment": "fine"}
    )
    start_expenses(rita, 2, first=6)
    rest, _ = follow(client, first["next"])
    assert not set(rest) & set(seen)
    waiting = HumanTask.objects.filter(status="open", element_id="approve_expense")
    open_ids = set(waiting.values_list("id", flat=True))
    assert set(seen[1:] + rest) == {str(pk) for pk in open_ids}
    assert len(rest) == len(set(rest)) == len(tasks) - 3 + 2


def test_the_count_follows_the_filters(
    expense_definition, approver, approver2, make_user, api_client_for
):
    tasks = start_expenses(make_user("rita"), 5)
    claim_task(task_id=tasks[0].pk, user=approver)
    claim_task(task_id=tasks[1].pk, user=approver2)
    client = api_client_for(approver)
    # Not the one approver2 holds: it is theirs now.
    assert client.get("/api/v1/tasks/?page_size=2").json()["count"] == 4
    mine = client.get("/api/v1/tasks/?mine=1").json()
    assert mine["count"] == 1 and mine["results"][0]["id"] == str(tasks[0].pk)
    assert client.get("/api/v1/tasks/?group=managers&page_size=1").json()["count"] == 4


def test_a_page_by_number_still_works(expense_definition, approver, make_user, api_client_for):
    start_expenses(make_user("rita"), 5)
    client = api_client_for(approver)
    ids, _ = follow(client, "/api/v1/tasks/?page_size=2")
    second = client.get("/api/v1/tasks/?page_size=2&page=2").json()
    assert [task["id"] for task in second["results"]] == ids[2:4]
    assert "page=3" in second["next"]


@pytest.mark.parametrize("cursor", ["nonsense", "e30", "eyJrIjogWzFdLCAiYiI6IGZhbHNlLCAibiI6IDF9"])
def test_a_bad_cursor_is_no_page(expense_definition, approver, make_user, api_client_for, cursor):
    start_expenses(make_user("rita"), 1)
    client = api_client_for(approver)
    response = client.get(f"/api/v1/tasks/?cursor={cursor}")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/problem+json")
    assert "cursor" in response.json()["detail"]
    assert client.get("/api/v1/tasks/?cursor=").json()["count"] == 1  # empty: the first page
