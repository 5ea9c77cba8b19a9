"""Repairs over the REST API: reset, skip, migrate (with dry run) and retry with variables."""

import uuid

import pytest

from engine.models import HumanTask, InstanceEvent
from engine.services import complete_human_task, start_instance
from engine.services.instance_store import load_workflow
from tests.engine.repair_diagrams import approval
from tests.helpers import build_bpmn, deploy_document


@pytest.fixture
def operator_api(make_user, api_client_for):
    return api_client_for(make_user("olga_operator", "operators"))


@pytest.fixture
def approved(db, approver):
    deploy_document(approval())
    instance = start_instance(key="two_step")
    task = instance.human_tasks.get(element_id="approve")
    complete_human_task(task_id=task.pk, user=approver, variables={"decision": "approve"})
    return instance


def test_reset_and_skip_over_the_api(operator_api, approved):
    url = f"/api/v1/instances/{approved.pk}/"
    response = operator_api.post(url + "reset/", {"element_id": "approve"}, format="json")
    assert response.status_code == 200, response.json()
    assert [t["element_id"] for t in response.json()["open_tasks"]] == ["approve"]

    task = next(
        t
        for t in load_workflow(approved).get_tasks()
        if t.task_spec.bpmn_id == "approve" and t.state == 16
    )
    response = operator_api.post(
        url + "skip/", {"task_id": str(task.id), "variables": {"decision": "reject"}}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "completed"

    response = operator_api.post(url + "reset/", {"element_id": "approve"}, format="json")
    assert response.status_code == 409
    assert response["Content-Type"] == "application/problem+json"


def test_migrate_dry_run_refusal_and_run_over_the_api(operator_api, approved):
    url = f"/api/v1/instances/{approved.pk}/migrate/"
    deploy_document(approval(drop_pay=True))
    plan = operator_api.post(url, {"version": 2, "dry_run": True}, format="json")
    assert plan.status_code == 200
    assert plan.json()["possible"] is False
    refused = operator_api.post(url, {"version": 2}, format="json")
    assert refused.status_code == 409
    assert refused.json()["errors"] == [
        {"element_id": "pay", "message": "no counterpart in version 2"}
    ]

    deploy_document(approval(extra_task=True))
    done = operator_api.post(url, {"version": 3}, format="json")
    assert done.status_code == 200 and done.json()["added"] == ["audit"]
    approved.refresh_from_db()
    assert approved.definition.version == 3


def test_skipping_a_task_the_instance_does_not_have_is_a_404(operator_api, approved):
    other = start_instance(key="two_step")
    foreign = next(t for t in load_workflow(other).get_tasks() if t.state == 16)
    approved.refresh_from_db()
    state, events = approved.state, InstanceEvent.objects.filter(instance=approved).count()
    for task_id in (str(uuid.uuid4()), str(foreign.id)):
        response = operator_api.post(
            f"/api/v1/instances/{approved.pk}/skip/", {"task_id": task_id}, format="json"
        )
        assert response.status_code == 404, response.content
        assert response["Content-Type"] == "application/problem+json"
        assert task_id in response.json()["detail"]
    approved.refresh_from_db()
    assert approved.state == state  # nothing changed
    assert InstanceEvent.objects.filter(instance=approved).count() == events
    assert HumanTask.objects.get(instance=other, element_id="approve").status == "open"


def test_repairs_are_for_operators_only(api_client_for, approver, approved):
    client = api_client_for(approver)
    for path, body in [
        ("reset/", {"element_id": "approve"}),
        ("migrate/", {"version": 1}),
        ("skip/", {"task_id": str(approved.pk)}),
    ]:
        response = client.post(f"/api/v1/instances/{approved.pk}/{path}", body, format="json")
        assert response.status_code == 403, path
    assert HumanTask.objects.get(element_id="pay").status == "open"


def test_retry_with_fixed_variables_over_the_api(operator_api, db):
    deploy_document(build_bpmn("divides_by", script="x = 1/y"))
    instance = start_instance(key="divides_by", variables={"y": 0})
    response = operator_api.post(
        f"/api/v1/instances/{instance.pk}/retry/", {"variables": {"y": 5}}, format="json"
    )
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["variables"]["x"]) == ("waiting", 0.2)


def test_nul_characters_count_toward_length_limits(api_client_for, make_user, db):
    """NUL is replaced (Postgres cannot store it), never dropped: a name one character over
    the limit is refused even when that character is a NUL."""
    client = api_client_for(make_user("ian_integration", "integrations"))
    too_long = client.post("/api/v1/signals/", {"name": "\x00" + "s" * 255}, format="json")
    assert too_long.status_code == 400
    fits = client.post("/api/v1/signals/", {"name": "\x00" + "s" * 254}, format="json")
    assert fits.status_code == 202
    assert fits.json()["name"] == "\ufffd" + "s" * 254
