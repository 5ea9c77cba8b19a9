"""How many SQL statements a start and a completion cost through the API, counted from the
request (token lookup included): at most 8 each (issue 21). Transaction control (BEGIN,
COMMIT) is counted apart: it carries no work of the operation."""

import os
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from engine.models import HumanTask, InstanceEvent, ProcessInstance
from engine.services.definition_cache import DefinitionTraits, definition_traits
from processes.models import ProcessDefinition
from tests.engine import event_diagrams as d
from tests.engine.service_diagrams import sequence, service_task
from tests.helpers import deploy_document

pytestmark = pytest.mark.django_db(transaction=True)

MAX_STATEMENTS = 8
TRANSACTION_CONTROL = ("BEGIN", "COMMIT")
# bench/scripts.py's po_approval: three script tasks, then a user task.
PO_SCRIPTS = (
    'net = sum(float(line["price"]) * line["qty"] for line in lines)',
    'approvers = "directors" if net > 1000 else "managers"',
    'summary = f"{supplier}: {len(lines)} lines ({approvers})"',
)
PO_VARIABLES = {"supplier": "ACME", "lines": [{"sku": "HAM-1", "qty": 4, "price": "12.50"}]}


def _po_approval() -> str:
    tasks = [
        f'    <bpmn:scriptTask id="script_{i}" scriptFormat="python">'
        f"<bpmn:script>{source}</bpmn:script></bpmn:scriptTask>\n"
        for i, source in enumerate(PO_SCRIPTS)
    ]
    approve = (
        '    <bpmn:userTask id="approve_po" name="Approve the order" '
        'camunda:candidateGroups="managers" />\n'
    )
    return sequence("po_approval", [*tasks, approve])


def _work(queries: list[dict[str, Any]], label: str) -> list[str]:
    """The statements that do the operation's work (printed with SHOW_SQL=1 and -s)."""
    statements = [q["sql"] for q in queries]
    if os.environ.get("SHOW_SQL"):
        print(f"\n== {label}: {len(statements)} statements")
        for sql in statements:
            print("  ", sql[:300])
    return [sql for sql in statements if sql not in TRANSACTION_CONTROL]


def _start(client: APIClient, key: str, variables: dict[str, Any]) -> tuple[Any, list[str]]:
    with CaptureQueriesContext(connection) as start:
        response = client.post(
            f"/api/v1/definitions/{key}/start/", {"variables": variables}, format="json"
        )
    assert response.status_code == 201, response.content
    return response.json(), _work(start.captured_queries, f"start {key}")


def _complete(client: APIClient, task_id: str, variables: dict[str, Any]) -> tuple[Any, list[str]]:
    with CaptureQueriesContext(connection) as complete:
        response = client.post(
            f"/api/v1/tasks/{task_id}/complete/", {"variables": variables}, format="json"
        )
    assert response.status_code == 200, response.content
    return response.json(), _work(complete.captured_queries, f"complete {task_id}")


@pytest.fixture
def manager_client(api_client_for: Any, approver: User) -> APIClient:
    return api_client_for(approver)


def test_expense_start_and_completion_take_at_most_eight_statements(
    manager_client: APIClient, example_definitions: dict[str, ProcessDefinition]
) -> None:
    variables = {"amount": 50, "description": "pens", "requester": "me"}
    _start(manager_client, "expense_approval", variables)  # the definition's caches fill

    started, start_statements = _start(manager_client, "expense_approval", variables)
    instance = ProcessInstance.objects.get(pk=started["id"])
    (task,) = HumanTask.objects.filter(instance=instance)
    assert len(start_statements) <= MAX_STATEMENTS
    assert started["status"] == "waiting" == instance.status
    assert started["variables"]["category"] == "small"
    assert [t["id"] for t in started["open_tasks"]] == [str(task.id)]
    assert started["waiting_for"] == [
        {
            "type": "user_task",
            "element_id": "approve_expense",
            "name": task.name,
            "task": str(task.id),
        }
    ]

    done, complete_statements = _complete(manager_client, str(task.id), {"decision": "approve"})
    assert len(complete_statements) <= MAX_STATEMENTS
    instance.refresh_from_db()
    task.refresh_from_db()
    assert done["status"] == "completed" == task.status
    assert done["definition"] == "expense_approval"
    assert instance.status == "completed" and instance.variables["outcome"] == "approved"
    assert list(instance.events.values_list("type", flat=True)) == [
        "started",
        "task_created",
        "task_completed",
        "completed",
    ]


def test_po_approval_start_and_completion_take_at_most_eight_statements(
    manager_client: APIClient, db: None
) -> None:
    deploy_document(_po_approval(), "po_approval.bpmn")
    _start(manager_client, "po_approval", PO_VARIABLES)

    started, start_statements = _start(manager_client, "po_approval", PO_VARIABLES)
    assert len(start_statements) <= MAX_STATEMENTS
    assert started["variables"]["summary"] == "ACME: 1 lines (managers)"
    task_id = started["open_tasks"][0]["id"]

    done, complete_statements = _complete(manager_client, task_id, {})
    assert len(complete_statements) <= MAX_STATEMENTS
    assert done["status"] == "completed"
    assert ProcessInstance.objects.get(pk=started["id"]).status == "completed"
    assert InstanceEvent.objects.filter(instance_id=started["id"]).count() == 4


def _waits_for_everything() -> str:
    """A user task, a timer, a message, a signal and an external service task at once."""
    branches = {
        "review": d.user_task("review"),
        "sleep": f'    <bpmn:intermediateCatchEvent id="sleep">{d.timer("timeDuration", "P1D")}'
        "</bpmn:intermediateCatchEvent>",
        "reply": '    <bpmn:intermediateCatchEvent id="reply">'
        '<bpmn:messageEventDefinition messageRef="msg_reply" /></bpmn:intermediateCatchEvent>',
        "alarm": '    <bpmn:intermediateCatchEvent id="alarm">'
        '<bpmn:signalEventDefinition signalRef="sig_alarm" /></bpmn:intermediateCatchEvent>',
        "sync": service_task("sync", "'https://crm.example/sync'", topic="crm_sync"),
    }
    body = [
        '    <bpmn:startEvent id="start" />',
        '    <bpmn:parallelGateway id="fork" />',
        *branches.values(),
        *(f'    <bpmn:endEvent id="end_{name}" />' for name in branches),
        d.flows(("start", "fork"), *(("fork", name) for name in branches)),
        d.flows(*((name, f"end_{name}") for name in branches)),
    ]
    return d.camunda(
        "waits_for_everything",
        "\n".join(body),
        '  <bpmn:message id="msg_reply" name="reply" />\n'
        '  <bpmn:signal id="sig_alarm" name="alarm" />\n',
    )


def test_the_start_answers_what_a_read_of_the_new_instance_answers(
    manager_client: APIClient, db: None
) -> None:
    deploy_document(_waits_for_everything(), "everything.bpmn")

    started, _ = _start(manager_client, "waits_for_everything", {})
    read = manager_client.get(f"/api/v1/instances/{started['id']}/").json()

    assert started == read
    assert {wait["type"] for wait in started["waiting_for"]} == {
        "user_task",
        "timer",
        "message",
        "signal",
        "service_job",
    }
    assert [job["element_id"] for job in started["jobs"]] == ["sync"]


def test_what_a_definition_can_have_is_read_from_its_spec(
    example_definitions: dict[str, ProcessDefinition],
) -> None:
    deploy_document(_waits_for_everything(), "everything.bpmn")
    everything = ProcessDefinition.objects.get(key="waits_for_everything")

    assert definition_traits(example_definitions["expense_approval"].pk) == DefinitionTraits(
        timers=False, messages_or_signals=False, connector_tasks=False, writes_may_fail=False
    )
    assert definition_traits(everything.pk) == DefinitionTraits(
        timers=True, messages_or_signals=True, connector_tasks=True, writes_may_fail=True
    )


def test_a_session_reads_the_users_groups_with_the_user(
    approver: User, example_definitions: dict[str, ProcessDefinition]
) -> None:
    client = APIClient()
    client.force_login(approver)
    variables = {"amount": 50, "description": "pens", "requester": "me"}
    started = client.post(
        "/api/v1/definitions/expense_approval/start/", {"variables": variables}, format="json"
    )
    assert started.status_code == 201, started.content

    with CaptureQueriesContext(connection) as listing:
        response = client.get("/api/v1/tasks/")

    assert response.status_code == 200
    # The approver sees the managers' task: their groups were read...
    assert [task["element_id"] for task in response.json()["results"]] == ["approve_expense"]
    # ...in the statement that read the user, not in one of their own.
    statements = [q["sql"] for q in listing.captured_queries]
    (user_read,) = [sql for sql in statements if 'FROM "auth_user"' in sql]
    assert [sql for sql in statements if '"auth_user_groups"' in sql] == [user_read]
