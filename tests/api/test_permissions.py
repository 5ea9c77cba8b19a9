"""The permission matrix of the README, cell by cell through the API."""

import subprocess
import sys
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from engine.models import HumanTask
from engine.services import start_instance
from tests.helpers import EXPENSE_FILE, production_env

pytestmark = pytest.mark.django_db
BASE_DIR = Path(__file__).resolve().parents[2]
ROLES = ["anonymous", "outsider", "starter", "designer", "candidate", "operator"]
VARIABLES = {"amount": 250, "description": "Taxi", "requester": "bob"}


@pytest.fixture
def world(expense_definition, make_user):
    users = {
        "outsider": make_user("olive"),
        "starter": make_user("stan"),
        "designer": make_user("dora", "designers"),
        "candidate": make_user("cleo", "managers"),
        "operator": make_user("otto", "operators"),
    }
    instance = start_instance(key="expense_approval", variables=VARIABLES, actor=users["starter"])
    return users, instance, instance.human_tasks.get()


def client_for(role: str, users) -> APIClient:
    client = APIClient()
    if role != "anonymous":
        client.force_authenticate(users[role])
    return client


def call(action: str, client: APIClient, instance, task):
    i, t = f"/api/v1/instances/{instance.id}", f"/api/v1/tasks/{task.id}"
    upload = {
        "files": [
            SimpleUploadedFile(
                "e.bpmn",
                EXPENSE_FILE.read_bytes().replace(
                    b'name="Expense approval"', b'name="Expenses v2"'
                ),
            )
        ]
    }
    requests = {
        "deploy": lambda: client.post("/api/v1/deployments/", upload, format="multipart"),
        "validate": lambda: client.post(
            "/api/v1/deployments/validate/", upload, format="multipart"
        ),
        "read definitions": lambda: client.get("/api/v1/definitions/expense_approval/xml/"),
        "start": lambda: client.post(
            "/api/v1/definitions/expense_approval/start/", {"variables": VARIABLES}, format="json"
        ),
        "read instance": lambda: client.get(f"{i}/"),
        "read history": lambda: client.get(f"{i}/history/"),
        "read task": lambda: client.get(f"{t}/"),
        "claim task": lambda: client.post(f"{t}/claim/"),
        "complete task": lambda: client.post(
            f"{t}/complete/", {"variables": {"decision": "approve"}}, format="json"
        ),
        "suspend": lambda: client.post(f"{i}/suspend/"),
        "terminate": lambda: client.post(f"{i}/terminate/", {"reason": "duplicate"}, format="json"),
        "edit variables": lambda: client.patch(
            f"{i}/variables/", {"variables": {"amount": 1}}, format="json"
        ),
        "read schema": lambda: client.get("/api/schema/"),
        "send message": lambda: client.post(
            "/api/v1/messages/", {"name": "nobody_waits"}, format="json"
        ),
        "send signal": lambda: client.post(
            "/api/v1/signals/", {"name": "nobody_waits"}, format="json"
        ),
    }
    return requests[action]()


# Expected status per action for: anonymous, outsider, starter, designer, candidate, operator.
MATRIX = {
    "deploy": [401, 403, 403, 201, 403, 403],
    "validate": [401, 200, 200, 200, 200, 200],
    "read definitions": [401, 200, 200, 200, 200, 200],
    "start": [401, 201, 201, 201, 201, 201],
    "read instance": [401, 403, 200, 403, 200, 200],
    "read history": [401, 403, 200, 403, 200, 200],
    "read task": [401, 403, 403, 403, 200, 403],
    "claim task": [401, 403, 403, 403, 200, 403],
    "complete task": [401, 403, 403, 403, 200, 403],
    "suspend": [401, 403, 403, 403, 403, 200],
    "terminate": [401, 403, 403, 403, 403, 200],
    "edit variables": [401, 403, 403, 403, 403, 200],
    "read schema": [401, 200, 200, 200, 200, 200],
    # Members of `integrations` may too (test_events_api); a message nobody waits for is a 404.
    "send message": [401, 403, 403, 403, 403, 404],
    "send signal": [401, 403, 403, 403, 403, 202],
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", list(MATRIX))
def test_permission_matrix(world, action: str, role: str) -> None:
    users, instance, task = world
    expected = MATRIX[action][ROLES.index(role)]
    response = call(action, client_for(role, users), instance, task)
    assert response.status_code == expected, (action, role, response.content[:300])
    if expected >= 400:
        # A refusal changes nothing.
        task.refresh_from_db()
        instance.refresh_from_db()
        assert task.status == "open" and task.assignee is None
        assert instance.status == "waiting" and instance.variables["amount"] == 250


def test_task_data_stays_with_the_people_who_have_a_task(world) -> None:
    users, instance, task = world
    outsider = client_for("outsider", users)
    assert outsider.get("/api/v1/instances/").json()["count"] == 0
    assert outsider.get("/api/v1/tasks/").json()["count"] == 0
    assert b"Taxi" not in outsider.get(f"/api/v1/instances/{instance.id}/").content
    assert HumanTask.objects.get(pk=task.id).status == "open"


def test_production_settings_pass_the_deploy_checks(tmp_path) -> None:
    env = production_env(tmp_path)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        cwd=BASE_DIR,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    missing = subprocess.run(
        [sys.executable, "manage.py", "check"],
        capture_output=True,
        text=True,
        env={**env, "SECRET_KEY": ""},
        check=False,
        cwd=BASE_DIR,
    )
    assert missing.returncode != 0 and "SECRET_KEY" in missing.stderr
