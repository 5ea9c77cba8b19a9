"""The expense approval example end to end through the REST API."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from engine.models import HumanTask, InstanceEvent, ProcessInstance
from processes.models import Deployment, ProcessDefinition
from tests.helpers import EXPENSE_FILE

DEPLOYMENTS_URL = "/api/v1/deployments/"
START_URL = "/api/v1/definitions/expense_approval/start/"
TASKS_URL = "/api/v1/tasks/"
START_BODY = {
    "variables": {"amount": 250, "description": "Taxi", "requester": "bob"},
    "business_key": "E-1",
}


def instance_url(instance_id) -> str:
    return f"/api/v1/instances/{instance_id}/"


def complete_url(task_id) -> str:
    return f"/api/v1/tasks/{task_id}/complete/"


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    return body


def upload_expense(client, name: str = "expense_approval.bpmn"):
    return client.post(
        DEPLOYMENTS_URL,
        {"files": [SimpleUploadedFile(name, EXPENSE_FILE.read_bytes())]},
        format="multipart",
    )


@pytest.fixture
def designer_client(api_client_for, designer):
    return api_client_for(designer)


@pytest.fixture
def approver_client(api_client_for, approver):
    return api_client_for(approver)


@pytest.fixture
def outsider_client(api_client_for, outsider):
    return api_client_for(outsider)


@pytest.fixture
def started(expense_definition, api_client_for, make_user) -> dict:
    """An expense_approval instance started through the API by a requester."""
    requester = make_user("bob_requester")
    response = api_client_for(requester).post(START_URL, START_BODY, format="json")
    assert response.status_code == 201, response.content
    return response.json()


# --- deploying ---------------------------------------------------------------------------


def test_designer_deploys_a_file_and_redeploying_it_changes_nothing(designer_client, designer):
    response = upload_expense(designer_client)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["created"] is True
    assert [(d["key"], d["version"]) for d in body["definitions"]] == [("expense_approval", 1)]
    deployment = Deployment.objects.get()
    assert deployment.pk == body["id"]
    assert deployment.deployed_by == designer
    assert list(deployment.files.values_list("name", flat=True)) == ["expense_approval.bpmn"]

    again = upload_expense(designer_client)
    assert again.status_code == 200, again.content
    assert again.json()["created"] is False
    assert [(d["key"], d["version"]) for d in again.json()["definitions"]] == [
        ("expense_approval", 1)
    ]
    assert Deployment.objects.count() == 1
    assert list(ProcessDefinition.objects.values_list("key", "version")) == [
        ("expense_approval", 1)
    ]


def test_a_json_body_deploys_too(designer_client):
    response = designer_client.post(
        DEPLOYMENTS_URL,
        {"name": "Expenses", "bpmn_xml": EXPENSE_FILE.read_text()},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "Expenses"
    assert [(d["key"], d["version"]) for d in body["definitions"]] == [("expense_approval", 1)]
    definition = ProcessDefinition.objects.get(key="expense_approval")
    assert definition.bpmn_xml == EXPENSE_FILE.read_text()

    # The same content again, by either route, is no new version.
    assert upload_expense(designer_client).status_code == 200
    assert ProcessDefinition.objects.count() == 1


def test_only_designers_deploy(api_client_for, approver):
    body = assert_problem(upload_expense(api_client_for(approver)), 403)
    assert "designers" in body["detail"]
    assert not Deployment.objects.exists()
    assert not ProcessDefinition.objects.exists()


def test_deploying_without_a_token_is_401(anonymous_client):
    assert_problem(upload_expense(anonymous_client), 401)
    assert not ProcessDefinition.objects.exists()


def test_a_wrong_token_is_401(anonymous_client):
    anonymous_client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert_problem(upload_expense(anonymous_client), 401)


# --- starting ----------------------------------------------------------------------------


def test_start_runs_to_the_approval_task(started, make_user):
    assert started["definition"] == "expense_approval"
    assert started["version"] == 1
    assert started["business_key"] == "E-1"
    assert started["status"] == "waiting"
    assert started["started_by"] == "bob_requester"
    assert started["variables"]["amount"] == 250
    assert started["variables"]["category"] == "medium"  # set by the categorise script
    (task,) = started["open_tasks"]
    assert task["element_id"] == "approve_expense"
    assert task["status"] == "open"
    assert task["candidate_groups"] == ["managers"]
    assert task["priority"] == 50
    assert task["form"]["type"] == "camunda"
    assert [f["id"] for f in task["form"]["fields"]] == ["decision", "comment"]
    decision = task["form"]["fields"][0]
    assert decision["required"] is True
    assert [v["id"] for v in decision["values"]] == ["approve", "reject"]
    assert started["waiting_for"] == [
        {
            "type": "user_task",
            "element_id": "approve_expense",
            "name": "Approve expense",
            "task": task["id"],
        }
    ]

    instance = ProcessInstance.objects.get(pk=started["id"])
    assert instance.status == ProcessInstance.Status.WAITING
    assert instance.business_key == "E-1"
    assert instance.started_by is not None and instance.started_by.username == "bob_requester"


def test_starting_an_unknown_process_is_404(expense_definition, approver_client):
    assert_problem(
        approver_client.post(
            "/api/v1/definitions/no_such_process/start/", START_BODY, format="json"
        ),
        404,
    )
    assert not ProcessInstance.objects.exists()


@pytest.mark.parametrize("version", [7, 2**31, 2**62, 2**70])
def test_starting_an_unknown_version_is_404(expense_definition, approver_client, version):
    # Numbers beyond the column's range too (the schema fuzz test sent 3294784625965808).
    assert_problem(approver_client.post(START_URL, {"version": version}, format="json"), 404)
    assert not ProcessInstance.objects.exists()


@pytest.mark.parametrize("variables", [[1, 2], "amount=5", 42])
def test_variables_must_be_an_object(expense_definition, approver_client, variables):
    body = assert_problem(
        approver_client.post(START_URL, {"variables": variables}, format="json"), 400
    )
    assert any(error["field"] == "variables" for error in body["errors"])
    assert not ProcessInstance.objects.exists()


def test_starting_without_a_token_is_401(expense_definition, anonymous_client):
    assert_problem(anonymous_client.post(START_URL, START_BODY, format="json"), 401)
    assert not ProcessInstance.objects.exists()


# --- the inbox and completing ------------------------------------------------------------


def test_approver_sees_the_task_and_outsider_does_not(started, approver_client, outsider_client):
    (open_task,) = started["open_tasks"]
    response = approver_client.get(TASKS_URL)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 1
    (task,) = body["results"]
    assert task["id"] == open_task["id"]
    assert task["instance"] == started["id"]
    assert task["definition"] == "expense_approval"
    assert task["business_key"] == "E-1"
    assert task["form"]["fields"][0]["id"] == "decision"

    response = outsider_client.get(TASKS_URL)
    assert response.status_code == 200
    assert response.json()["count"] == 0
    assert response.json()["results"] == []


def test_approving_completes_the_instance(started, approver_client, approver):
    (task,) = started["open_tasks"]
    response = approver_client.post(
        complete_url(task["id"]),
        {"variables": {"decision": "approve", "comment": "fine"}},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "completed"
    assert response.json()["id"] == task["id"]

    detail = approver_client.get(instance_url(started["id"]))
    assert detail.status_code == 200
    body = detail.json()
    assert body["status"] == "completed"
    assert body["completed_at"]
    assert body["open_tasks"] == []
    assert body["variables"]["outcome"] == "approved"
    assert body["variables"]["decision"] == "approve"
    assert body["variables"]["comment"] == "fine"
    assert body["variables"]["requester"] == "bob"

    row = HumanTask.objects.get(pk=task["id"])
    assert row.status == HumanTask.Status.COMPLETED
    assert row.completed_by == approver
    assert row.submitted_data == {"decision": "approve", "comment": "fine"}
    assert approver_client.get(TASKS_URL).json()["count"] == 0


def test_completing_twice_is_409_and_changes_nothing(started, approver_client):
    (task,) = started["open_tasks"]
    url = complete_url(task["id"])
    first = approver_client.post(url, {"variables": {"decision": "approve"}}, format="json")
    assert first.status_code == 200, first.content
    instance = ProcessInstance.objects.get(pk=started["id"])
    events = InstanceEvent.objects.count()

    body = assert_problem(
        approver_client.post(url, {"variables": {"decision": "reject"}}, format="json"), 409
    )
    assert "completed" in body["detail"]
    assert InstanceEvent.objects.count() == events
    after = ProcessInstance.objects.get(pk=started["id"])
    assert after.variables == instance.variables
    assert after.variables["outcome"] == "approved"
    assert after.lock_version == instance.lock_version
    submitted = HumanTask.objects.get(pk=task["id"]).submitted_data
    assert submitted is not None and submitted["decision"] == "approve"


def test_outsider_cannot_complete(started, outsider_client):
    (task,) = started["open_tasks"]
    events = InstanceEvent.objects.count()
    assert_problem(
        outsider_client.post(
            complete_url(task["id"]), {"variables": {"decision": "approve"}}, format="json"
        ),
        403,
    )
    assert HumanTask.objects.get(pk=task["id"]).status == HumanTask.Status.OPEN
    assert ProcessInstance.objects.get(pk=started["id"]).status == "waiting"
    assert InstanceEvent.objects.count() == events


def test_a_missing_required_field_is_400_and_the_task_stays_open(started, approver_client):
    (task,) = started["open_tasks"]
    events = InstanceEvent.objects.count()
    body = assert_problem(
        approver_client.post(
            complete_url(task["id"]), {"variables": {"comment": "no decision"}}, format="json"
        ),
        400,
    )
    # The documented list form, like every other endpoint's validation errors.
    assert [e["field"] for e in body["errors"]] == ["decision"]
    assert body["errors"][0]["message"]
    assert HumanTask.objects.get(pk=task["id"]).status == HumanTask.Status.OPEN
    assert ProcessInstance.objects.get(pk=started["id"]).status == "waiting"
    assert InstanceEvent.objects.count() == events
    assert approver_client.get(TASKS_URL).json()["count"] == 1


def test_an_enum_value_not_offered_is_400(started, approver_client):
    (task,) = started["open_tasks"]
    body = assert_problem(
        approver_client.post(
            complete_url(task["id"]), {"variables": {"decision": "maybe"}}, format="json"
        ),
        400,
    )
    [error] = body["errors"]
    assert error["field"] == "decision" and "approve" in error["message"]
    assert HumanTask.objects.get(pk=task["id"]).status == HumanTask.Status.OPEN


def test_completing_an_unknown_task_is_404(started, approver_client):
    assert_problem(
        approver_client.post(
            complete_url("00000000-0000-0000-0000-000000000000"), {"variables": {}}, format="json"
        ),
        404,
    )


def test_rejecting_records_the_rejection(started, approver_client):
    (task,) = started["open_tasks"]
    response = approver_client.post(
        complete_url(task["id"]), {"variables": {"decision": "reject"}}, format="json"
    )
    assert response.status_code == 200, response.content
    body = approver_client.get(instance_url(started["id"])).json()
    assert body["status"] == "completed"
    assert body["variables"]["outcome"] == "rejected"


# --- instance visibility -----------------------------------------------------------------


def test_outsider_cannot_read_the_instance(started, outsider_client):
    assert_problem(outsider_client.get(instance_url(started["id"])), 403)


def test_an_unknown_instance_is_404(started, approver_client):
    assert_problem(approver_client.get(instance_url("00000000-0000-0000-0000-000000000000")), 404)


def test_the_requester_and_candidates_read_the_instance(started, api_client_for, approver):
    requester = ProcessInstance.objects.get(pk=started["id"]).started_by
    for user in (requester, approver):
        response = api_client_for(user).get(instance_url(started["id"]))
        assert response.status_code == 200
        assert response.json()["id"] == started["id"]
