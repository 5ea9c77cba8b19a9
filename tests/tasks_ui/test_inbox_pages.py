"""The inbox's pager: Next and Previous follow each other by cursor, for every sort order;
every task once, also when tasks come and go between two pages; the counts of the tabs and
of the header badge."""

import html
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from engine.models import HumanTask
from engine.services import claim_task, complete_human_task, start_instance
from tasks_ui import views

pytestmark = pytest.mark.django_db
EXPENSE = {"amount": 250, "description": "Taxi", "requester": "bob"}
BUSINESS_KEY = re.compile(r"E-\d\d")


@pytest.fixture(autouse=True)
def _small_pages(monkeypatch) -> None:
    monkeypatch.setattr(views, "PAGE_SIZE", 3)


def login(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def start_expenses(requester: User, count: int, first: int = 0) -> None:
    for number in range(first, first + count):
        start_instance(
            key="expense_approval",
            variables=EXPENSE,
            business_key=f"E-{number:02}",
            actor=requester,
        )


def vary_sort_keys() -> None:
    """Ties and NULLs: three priorities, due dates on some tasks (two alike), two names."""
    now = timezone.now()
    tasks = HumanTask.objects.order_by("created_at")
    for index, task in enumerate(tasks):
        due = now + timedelta(days=index % 3) if index % 2 else None
        name = "Approve expense" if index % 4 else "Check expense"
        HumanTask.objects.filter(pk=task.pk).update(
            priority=(30, 50, 70)[index % 3], due_at=due, name=name
        )


def link(page: str, rel: str) -> str | None:
    found = re.search(rf'<a href="([^"]+)" rel="{rel}">', page)
    return html.unescape(found.group(1)) if found else None


def go(client: Client, page: str, rel: str) -> str:
    """The page its `rel` link leads to."""
    target = link(page, rel)
    assert target is not None, f"no {rel} link"
    return client.get("/tasks/" + target).content.decode()


def business_keys(page: str) -> list[str]:
    rows = page.split("<tbody>")[1].split("</tbody>")[0] if "<tbody>" in page else ""
    return list(dict.fromkeys(BUSINESS_KEY.findall(rows)))


def follow(client: Client, url: str) -> list[str]:
    """The business keys of every page from `url` on, following Next."""
    keys: list[str] = []
    for _ in range(20):  # more would be a loop
        if not url:
            return keys
        page = client.get(url).content.decode()
        keys += business_keys(page)
        url = link(page, "next") or ""
        if url:
            url = "/tasks/" + url
    raise AssertionError("the next links go round in a circle")


@pytest.mark.parametrize("sort", ["priority", "due", "-created", "created", "name"])
def test_next_pages_show_every_task_once_in_the_sort_order(
    expense_definition, approver, make_user, sort
):
    start_expenses(make_user("rita"), 8)
    vary_sort_keys()
    client = login(approver)
    keys = follow(client, f"/tasks/?tab=groups&sort={sort}")
    assert sorted(keys) == [f"E-{n:02}" for n in range(8)]
    # The same order as pages by number, read while nothing changes.
    numbered = []
    for number in (1, 2, 3):
        numbered += business_keys(
            client.get(f"/tasks/?tab=groups&sort={sort}&page={number}").content.decode()
        )
    assert keys == numbered


def test_previous_goes_back_and_the_pager_counts(expense_definition, approver, make_user):
    start_expenses(make_user("rita"), 8)
    client = login(approver)
    first = client.get("/tasks/?tab=groups").content.decode()
    assert "8 tasks" in first and "Page 1 of 3" in first and link(first, "prev") is None
    second = go(client, first, "next")
    third = go(client, second, "next")
    assert "Page 3 of 3" in third and link(third, "next") is None
    back = go(client, third, "prev")
    assert business_keys(back) == business_keys(second) and "Page 2 of 3" in back
    again = go(client, back, "prev")
    assert business_keys(again) == business_keys(first) and "cursor" not in str(link(back, "prev"))


def test_tasks_coming_and_going_neither_repeat_nor_skip(expense_definition, approver, make_user):
    rita = make_user("rita")
    start_expenses(rita, 6)
    client = login(approver)
    first = client.get("/tasks/?tab=groups&sort=created").content.decode()
    seen = business_keys(first)
    done = HumanTask.objects.get(instance__business_key=seen[0], status="open")
    complete_human_task(
        task_id=done.pk, user=approver, variables={"decision": "approve", "comment": "fine"}
    )
    start_expenses(rita, 2, first=6)
    rest = follow(client, "/tasks/" + str(link(first, "next")))
    assert not set(rest) & set(seen)
    assert sorted(seen[1:] + rest) == [f"E-{n:02}" for n in range(1, 8)]


def test_a_bad_cursor_shows_the_first_page(expense_definition, approver, make_user):
    start_expenses(make_user("rita"), 4)
    client = login(approver)
    first = business_keys(client.get("/tasks/?tab=groups").content.decode())
    for cursor in ("nonsense", "e30", "eyJrIjogWzFdLCAiYiI6IGZhbHNlLCAibiI6IDF9"):
        response = client.get(f"/tasks/?tab=groups&cursor={cursor}")
        assert response.status_code == 200
        assert business_keys(response.content.decode()) == first


def test_tabs_and_badge_count_assigned_and_unclaimed_apart(
    expense_definition, approver, approver2, make_user
):
    start_expenses(make_user("rita"), 5)
    tasks = list(HumanTask.objects.order_by("created_at"))
    claim_task(task_id=tasks[0].pk, user=approver)
    claim_task(task_id=tasks[1].pk, user=approver2)  # theirs: in no list of approver's
    client = login(approver)
    mine = client.get("/tasks/?tab=mine").content.decode()
    assert "1 task</caption>" in mine
    assert 'title="Tasks waiting for you">4</span>' in mine
    groups = client.get("/tasks/?tab=groups").content.decode()
    assert "3 tasks</caption>" in groups
    filtered = client.get("/tasks/?tab=groups&q=E-04").content.decode()
    assert "1 task</caption>" in filtered and business_keys(filtered) == ["E-04"]
