"""What the inbox's cheaper queries promise (issue 21): the process filter lists exactly the
processes of the user's actionable tasks, from the tasks' own `process_key`; the search finds
the rows the plain reading of its rule finds; every inbox page and task list costs a fixed
number of statements, whatever the number of tasks."""

import html
import importlib
import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from engine import selectors
from engine.models import HumanTask, ProcessInstance
from engine.services import claim_task, complete_human_task, start_instance
from processes.services import deploy
from tests.helpers import EXPENSE_FILE, UploadedFile

pytestmark = pytest.mark.django_db
EXPENSE = {"amount": 250, "description": "Taxi", "requester": "bob"}
START_VARIABLES: dict[str, dict[str, Any]] = {
    "expense_approval": EXPENSE,
    "parallel_review": {"document": "Contract"},
}


def login(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def start(key: str, actor: User | None, number: int, **variables: Any) -> ProcessInstance:
    return start_instance(
        key=key,
        variables={**START_VARIABLES[key], **variables},
        business_key=f"{key[:3].upper()}-{number:02}",
        actor=actor,
    )


def options(page: str) -> list[str]:
    select = page.split('<select id="filter-process" name="process">')[1].split("</select>")[0]
    return [chunk.split('"')[1] for chunk in select.split("<option value=")[2:]]


# --- the process filter ----------------------------------------------------------------------


def test_the_filter_lists_the_processes_of_the_users_actionable_tasks(
    expense_definition, parallel_definition, approver, approver2, legal_user, make_user
):
    rita = make_user("rita")
    start("expense_approval", rita, 1)
    review = start("parallel_review", rita, 2)
    managers = HumanTask.objects.get(instance=review, candidate_groups=["managers"])
    claim_task(task_id=managers.pk, user=approver2)  # the review's managers task is theirs

    assert selectors.inbox_processes(approver) == [("expense_approval", "Expense approval")]
    assert selectors.inbox_processes(approver2) == [
        ("expense_approval", "Expense approval"),
        ("parallel_review", "Parallel document review"),
    ]
    assert selectors.inbox_processes(legal_user) == [
        ("parallel_review", "Parallel document review")
    ]
    assert selectors.inbox_processes(rita) == []
    assert options(login(approver).get("/tasks/").content.decode()) == ["expense_approval"]

    # A task done leaves its process out, once the user has no other task of it.
    expense = HumanTask.objects.get(process_key="expense_approval")
    claim_task(task_id=expense.pk, user=approver)
    complete_human_task(task_id=expense.pk, user=approver, variables={"decision": "approve"})
    assert selectors.inbox_processes(approver) == []


def test_a_process_is_listed_once_under_its_latest_name(expense_definition, approver, make_user):
    start("expense_approval", make_user("rita"), 1)
    renamed = EXPENSE_FILE.read_text().replace('name="Expense approval"', 'name="Expenses v2"')
    deploy(name="Expenses", files=[UploadedFile("expense.bpmn", renamed.encode())], actor=None)
    start("expense_approval", None, 2)  # a task of version 2 too

    assert HumanTask.objects.filter(process_key="expense_approval").count() == 2
    assert selectors.inbox_processes(approver) == [("expense_approval", "Expenses v2")]


def test_the_process_filter_shows_that_processs_tasks(
    expense_definition, parallel_definition, approver, make_user
):
    rita = make_user("rita")
    start("expense_approval", rita, 1)
    start("parallel_review", rita, 2)
    client = login(approver)

    expenses = client.get("/tasks/?tab=groups&process=expense_approval").content.decode()
    reviews = client.get("/tasks/?tab=groups&process=parallel_review").content.decode()
    assert "EXP-01" in expenses and "PAR-02" not in expenses and "1 task<" in expenses
    assert "PAR-02" in reviews and "EXP-01" not in reviews and "1 task<" in reviews
    assert "No unclaimed task" in client.get("/tasks/?tab=groups&process=nope").content.decode()


def test_the_migration_fills_in_the_key_of_existing_rows(
    expense_definition, parallel_definition, make_user
):
    rita = make_user("rita")
    start("expense_approval", rita, 1)
    start("parallel_review", rita, 2)
    expected = dict(HumanTask.objects.values_list("pk", "process_key"))
    assert set(expected.values()) == {"expense_approval", "parallel_review"}
    HumanTask.objects.update(process_key="")

    migration = importlib.import_module("engine.migrations.0031_humantask_process_key")
    with connection.cursor() as cursor:
        cursor.execute(migration.BACKFILL)

    assert dict(HumanTask.objects.values_list("pk", "process_key")) == expected


# --- the search ------------------------------------------------------------------------------

SEARCHES = [
    "bob",  # a starter's user name, and a text value (requester)
    "RITA",
    "Smith",  # a starter's last name
    "Ann",  # a first name
    "tickets",
    "EXP-0",  # business keys
    "exp-1",
    "Approve",  # a task's name
    "check",
    "amount",  # a variable's name: no text value
    "1234",  # a number
    "nested",  # only inside an object: not a top-level text value
    "%",
    "_",
    "a_b",
    "50%",
    "zzz",
    # JSON writes these differently from the text (escaped), or in UTF-8 as they are
    '"hi"',
    "\\temp",
    "one\nline",
    "café",
]


def _matches(task: HumanTask, text: str) -> bool:
    """The search rule read plainly: the task's name, the business key, the starter's user,
    first or last name, or a top-level text value of the instance's variables."""
    instance = task.instance
    starter = instance.started_by
    texts = [task.name, instance.business_key or ""]
    if starter is not None:
        texts += [starter.username, starter.first_name, starter.last_name]
    texts += [value for value in instance.variables.values() if isinstance(value, str)]
    return any(text.lower() in each.lower() for each in texts)


def test_search_finds_what_the_rule_says_on_varied_data(expense_definition, approver, make_user):
    bob = make_user("bob")
    ann = User.objects.create_user("ann_s", first_name="Ann", last_name="Smith")
    rita = make_user("rita")
    varied: list[tuple[User | None, dict[str, Any]]] = [
        (bob, {}),
        (ann, {"description": "Train tickets"}),
        (rita, {"amount": 1234, "note": "paid 50% upfront"}),
        (None, {"details": {"text": "nested bob"}, "code": "a_b"}),
        (rita, {"description": "Hotel", "requester": "ann"}),
        (bob, {"flag": True, "empty": None, "list": ["RITA"]}),
        (ann, {"requester": "zed"}),
        (bob, {"quote": 'say "hi"', "path": "C:\\temp", "lines": "one\nline", "at": "Café"}),
    ]
    for number, (starter, variables) in enumerate(varied):
        instance = start("expense_approval", starter, number)
        # The start form declares three variables; the snapshot may hold any.
        ProcessInstance.objects.filter(pk=instance.pk).update(variables={**EXPENSE, **variables})
    tasks = list(HumanTask.objects.order_by("created_at"))
    for index, task in enumerate(tasks):  # names vary too
        name = "Check expense" if index % 3 == 0 else "Approve expense"
        HumanTask.objects.filter(pk=task.pk).update(name=name)
    for task in tasks[:3]:
        claim_task(task_id=task.pk, user=approver)

    for tab in ("mine", "groups"):
        rows = list(selectors.inbox_tasks(approver, tab=tab).select_related("instance__started_by"))
        assert rows
        for text in SEARCHES:
            found = {task.pk for task in selectors.inbox_tasks(approver, tab=tab, search=text)}
            expected = {task.pk for task in rows if _matches(task, text)}
            assert found == expected, (tab, text)
    # The fixture exercises both answers.
    assert any(_matches(task, "Smith") for task in tasks)
    assert not any(_matches(task, "nested") for task in tasks)


# --- statements per page ---------------------------------------------------------------------

# session; user with groups; two counts (tabs, badge); the page (a filtered, searched or
# completed list's first page counts the list in the same statement); its instances; the
# processes
INBOX_STATEMENTS = 7
# a deeper page of such a list: plus its count
FILTERED_STATEMENTS = 8
INBOX_PAGES = {
    "/tasks/": INBOX_STATEMENTS,
    "/tasks/?tab=mine": INBOX_STATEMENTS,
    "/tasks/?tab=groups": INBOX_STATEMENTS,
    "/tasks/?tab=mine&sort=due": INBOX_STATEMENTS,
    "/tasks/?tab=groups&sort=name": INBOX_STATEMENTS,
    "/tasks/?tab=groups&process=expense_approval": INBOX_STATEMENTS,
    "/tasks/?tab=mine&q=bob": INBOX_STATEMENTS,
    "/tasks/?tab=completed": INBOX_STATEMENTS,
}
# token with user and groups; the page; its instances; the count
API_STATEMENTS = 4
API_PAGES = ["/api/v1/tasks/", "/api/v1/tasks/?mine=1", "/api/v1/tasks/?group=managers"]


def _statements(client: Any, path: str) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return [query["sql"] for query in captured.captured_queries]


def _next_link(client: Client, path: str) -> str:
    page = client.get(path).content.decode()
    found = re.search(r'<a href="([^"]+)" rel="next">', page)
    assert found is not None, "no next link"
    return path.split("?")[0] + html.unescape(found.group(1))


@pytest.mark.parametrize("tasks", [7, 14])
def test_each_inbox_page_takes_the_same_statements_for_few_or_many_tasks(
    expense_definition, approver, make_user, monkeypatch, tasks
):
    from tasks_ui import views

    monkeypatch.setattr(views, "PAGE_SIZE", 3)
    requester = make_user("bob")
    for number in range(tasks):
        start("expense_approval", requester, number)
    open_tasks = list(HumanTask.objects.order_by("created_at"))
    for task in open_tasks[: tasks // 2]:
        claim_task(task_id=task.pk, user=approver)
    for task in open_tasks[:1]:
        complete_human_task(task_id=task.pk, user=approver, variables={"decision": "approve"})
    client = login(approver)
    client.get("/tasks/")  # the session's first request may write it

    for path, most in INBOX_PAGES.items():
        assert len(_statements(client, path)) == most, path
    # The count read with the first page is the list's: every claimed task is bob's.
    mine = HumanTask.objects.filter(assignee=approver.username, status="claimed").count()
    assert f">{mine} task" in client.get("/tasks/?tab=mine&q=bob").content.decode()
    # Nothing found: no instances to read for the page.
    assert len(_statements(client, "/tasks/?tab=mine&q=nobody-at-all")) == INBOX_STATEMENTS - 1
    # A deeper page of a filtered list counts it apart.
    deep_filtered = _next_link(client, "/tasks/?tab=groups&process=expense_approval")
    assert len(_statements(client, deep_filtered)) == FILTERED_STATEMENTS
    # A deep page, after a cursor, costs what the first one does.
    deep = _next_link(client, "/tasks/?tab=groups")
    assert "cursor=" in deep
    assert len(_statements(client, deep)) == INBOX_STATEMENTS

    token_client = APIClient()
    token_client.force_authenticate(approver)
    for path in API_PAGES:
        assert len(_statements(token_client, path)) <= API_STATEMENTS, path
