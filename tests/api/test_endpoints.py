"""The rest of DESIGN section 6: definitions, validation, instance lists and history,
operator actions, task detail/claim/unclaim, Idempotency-Key, and one error shape."""

import os

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from engine.models import InstanceEvent, ProcessInstance
from processes.models import Deployment, ProcessDefinition
from tests.helpers import EXPENSE_FILE

pytestmark = pytest.mark.django_db
START = "/api/v1/definitions/expense_approval/start/"
VARIABLES = {"amount": 250, "description": "Taxi", "requester": "bob"}


def problem(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys() and body["status"] == status
    return body


@pytest.fixture
def operator(make_user):
    return make_user("olga_operator", "operators")


@pytest.fixture
def started(expense_definition, api_client_for, approver, make_user) -> dict:
    requester = make_user("rita_requester")
    response = api_client_for(requester).post(
        START, {"variables": VARIABLES, "business_key": "E-9"}, format="json"
    )
    assert response.status_code == 201
    return response.json()


# -- definitions ------------------------------------------------------------------------------


def test_definitions_list_detail_versions_and_xml(expense_definition, api_client_for, outsider):
    client = api_client_for(outsider)
    listing = client.get("/api/v1/definitions/").json()
    assert listing["count"] == 1 and listing["results"][0]["key"] == "expense_approval"
    assert client.get("/api/v1/definitions/?key=expense").json()["count"] == 1
    assert client.get("/api/v1/definitions/?key=nothing").json()["count"] == 0
    assert client.get("/api/v1/definitions/expense_approval/").json()["version"] == 1
    versions = client.get("/api/v1/definitions/expense_approval/versions/").json()
    assert [v["version"] for v in versions["results"]] == [1]
    xml = client.get("/api/v1/definitions/expense_approval/xml/?version=1")
    assert xml.status_code == 200 and xml["Content-Type"] == "application/xml; charset=utf-8"
    assert xml.content == EXPENSE_FILE.read_bytes()


def test_definition_errors(expense_definition, api_client_for, outsider, anonymous_client):
    client = api_client_for(outsider)
    problem(client.get("/api/v1/definitions/nope/"), 404)
    problem(client.get("/api/v1/definitions/nope/versions/"), 404)
    problem(client.get("/api/v1/definitions/expense_approval/xml/?version=7"), 404)
    body = problem(client.get("/api/v1/definitions/expense_approval/xml/?version=x"), 400)
    assert body["errors"][0]["field"] == "version"
    problem(anonymous_client.get("/api/v1/definitions/"), 401)
    problem(client.get("/api/v1/definitions/?page=0"), 400)


def test_validate_checks_without_storing(api_client_for, outsider):
    client = api_client_for(outsider)
    upload = SimpleUploadedFile("expense_approval.bpmn", EXPENSE_FILE.read_bytes())
    ok = client.post("/api/v1/deployments/validate/", {"files": [upload]}, format="multipart")
    assert ok.status_code == 200
    assert ok.json()["processes"][0]["key"] == "expense_approval"
    bad = client.post("/api/v1/deployments/validate/", {"bpmn_xml": "<nope"}, format="json")
    assert problem(bad, 400)["errors"][0]["file"] == "diagram.bpmn"
    assert Deployment.objects.count() == 0 and ProcessDefinition.objects.count() == 0


# -- instances --------------------------------------------------------------------------------


def test_instance_list_shows_what_the_caller_may_see(
    started, api_client_for, approver, outsider, operator
):
    def ids(user, query=""):
        body = api_client_for(user).get(f"/api/v1/instances/{query}").json()
        return [i["id"] for i in body["results"]]

    assert ids(approver) == [started["id"]]  # a candidate of its open task
    assert ids(outsider) == []
    assert ids(operator) == [started["id"]]
    assert ids(operator, "?status=waiting&definition=expense_approval&business_key=E-9") == [
        started["id"]
    ]
    assert ids(operator, "?status=completed") == []
    problem(api_client_for(operator).get("/api/v1/instances/?status=sleeping"), 400)


def test_history_is_the_audit_trail(started, api_client_for, approver, outsider):
    events = api_client_for(approver).get(f"/api/v1/instances/{started['id']}/history/").json()
    assert [e["type"] for e in events["results"]] == ["started", "task_created"]
    problem(api_client_for(outsider).get(f"/api/v1/instances/{started['id']}/history/"), 403)


def test_suspend_blocks_work_until_resume(started, api_client_for, approver, operator):
    url = f"/api/v1/instances/{started['id']}"
    task_id = started["open_tasks"][0]["id"]
    problem(api_client_for(approver).post(f"{url}/suspend/"), 403)
    suspended = api_client_for(operator).post(f"{url}/suspend/", {"reason": "audit"}, format="json")
    assert suspended.status_code == 200 and suspended.json()["status"] == "suspended"
    blocked = api_client_for(approver).post(
        f"/api/v1/tasks/{task_id}/complete/",
        {"variables": {"decision": "approve"}},
        format="json",
    )
    problem(blocked, 409)
    assert api_client_for(operator).post(f"{url}/resume/").json()["status"] == "waiting"
    problem(api_client_for(operator).post(f"{url}/resume/"), 409)  # not suspended any more
    done = api_client_for(approver).post(
        f"/api/v1/tasks/{task_id}/complete/",
        {"variables": {"decision": "approve"}},
        format="json",
    )
    assert done.status_code == 200
    types = list(
        InstanceEvent.objects.filter(instance_id=started["id"]).values_list(
            "type", "actor__username"
        )
    )
    assert ("suspended", "olga_operator") in types and ("resumed", "olga_operator") in types


def test_terminate_cancels_open_tasks(started, api_client_for, approver, operator):
    url = f"/api/v1/instances/{started['id']}"
    problem(api_client_for(approver).post(f"{url}/terminate/"), 403)
    refused = problem(api_client_for(operator).post(f"{url}/terminate/"), 400)
    assert "Give a reason" in refused["detail"]
    body = (
        api_client_for(operator)
        .post(f"{url}/terminate/", {"reason": "duplicate"}, format="json")
        .json()
    )
    assert body["status"] == "terminated" and body["open_tasks"] == []
    # What the instance had reached stays readable after it ended.
    assert body["variables"] == started["variables"]
    assert api_client_for(approver).get("/api/v1/tasks/").json()["count"] == 0
    problem(api_client_for(operator).post(f"{url}/terminate/"), 409)
    event = InstanceEvent.objects.get(instance_id=started["id"], type="terminated")
    assert event.payload == {"reason": "duplicate"}


def test_variables_patch_merges_and_audits(started, api_client_for, approver, operator):
    url = f"/api/v1/instances/{started['id']}/variables/"
    problem(api_client_for(approver).patch(url, {"variables": {"amount": 1}}, format="json"), 403)
    problem(api_client_for(operator).patch(url, {"variables": [1]}, format="json"), 400)
    body = api_client_for(operator).patch(url, {"variables": {"amount": 99}}, format="json")
    assert body.status_code == 200 and body.json()["variables"]["amount"] == 99
    event = InstanceEvent.objects.get(instance_id=started["id"], type="variables_changed")
    assert event.payload == {"before": {"amount": 250}, "after": {"amount": 99}}
    assert event.actor is not None and event.actor.username == "olga_operator"


def test_operator_actions_on_unknown_instances_are_404(api_client_for, operator):
    missing = "/api/v1/instances/00000000-0000-0000-0000-000000000000"
    for action in ("suspend", "resume", "terminate", "retry"):
        problem(api_client_for(operator).post(f"{missing}/{action}/"), 404)
    problem(
        api_client_for(operator).patch(
            f"{missing}/variables/", {"variables": {"a": 1}}, format="json"
        ),
        404,
    )


def test_retry_needs_an_incident(started, api_client_for, operator):
    problem(api_client_for(operator).post(f"/api/v1/instances/{started['id']}/retry/"), 409)


# -- tasks ------------------------------------------------------------------------------------


def test_task_detail_claim_and_unclaim(started, api_client_for, approver, approver2, outsider):
    task_url = f"/api/v1/tasks/{started['open_tasks'][0]['id']}"
    detail = api_client_for(approver).get(f"{task_url}/").json()
    assert detail["form"]["fields"][0]["id"] == "decision"
    problem(api_client_for(outsider).get(f"{task_url}/"), 403)
    problem(
        api_client_for(approver).get("/api/v1/tasks/00000000-0000-0000-0000-000000000000/"), 404
    )
    assert api_client_for(approver).post(f"{task_url}/claim/").json()["assignee"] == (
        approver.username
    )
    body = problem(api_client_for(approver2).post(f"{task_url}/claim/"), 409)
    assert approver.username in body["detail"]  # says who has it
    mine = api_client_for(approver).get("/api/v1/tasks/?mine=true").json()
    assert mine["count"] == 1
    problem(api_client_for(outsider).post(f"{task_url}/unclaim/"), 403)
    unclaimed = api_client_for(approver).post(f"{task_url}/unclaim/").json()
    assert (unclaimed["assignee"], unclaimed["status"]) == (None, "open")
    assert api_client_for(approver2).post(f"{task_url}/claim/").status_code == 200


def test_task_filters_are_checked(started, api_client_for, approver):
    client = api_client_for(approver)
    assert client.get("/api/v1/tasks/?group=managers").json()["count"] == 1
    assert client.get("/api/v1/tasks/?group=legal").json()["count"] == 0
    assert client.get(f"/api/v1/tasks/?instance={started['id']}").json()["count"] == 1
    problem(client.get("/api/v1/tasks/?instance=not-a-uuid"), 400)
    problem(client.get("/api/v1/tasks/?status=lost"), 400)


# -- Idempotency-Key --------------------------------------------------------------------------


def test_start_with_the_same_key_starts_once(expense_definition, api_client_for, approver):
    client = api_client_for(approver)
    body = {"variables": VARIABLES, "business_key": "E-1"}
    first = client.post(START, body, format="json", HTTP_IDEMPOTENCY_KEY="order-1")
    again = client.post(START, body, format="json", HTTP_IDEMPOTENCY_KEY="order-1")
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert again["Idempotent-Replayed"] == "true"
    assert ProcessInstance.objects.count() == 1
    other = client.post(
        START, {**body, "business_key": "E-2"}, format="json", HTTP_IDEMPOTENCY_KEY="order-1"
    )
    problem(other, 422)
    assert ProcessInstance.objects.count() == 1
    fresh = client.post(START, body, format="json", HTTP_IDEMPOTENCY_KEY="order-2")
    assert fresh.status_code == 201 and ProcessInstance.objects.count() == 2


def test_complete_with_the_same_key_completes_once(started, api_client_for, approver):
    url = f"/api/v1/tasks/{started['open_tasks'][0]['id']}/complete/"
    body = {"variables": {"decision": "approve"}}
    client = api_client_for(approver)
    first = client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="click-1")
    again = client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="click-1")
    assert first.status_code == again.status_code == 200
    assert (
        InstanceEvent.objects.filter(instance_id=started["id"], type="task_completed").count() == 1
    )
    problem(client.post(url, body, format="json"), 409)  # without a key: a real second try


def test_a_failed_request_does_not_use_up_its_key(expense_definition, api_client_for, approver):
    client = api_client_for(approver)
    bad = client.post(START, {"variables": [1]}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    problem(bad, 400)
    good = client.post(START, {"variables": VARIABLES}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert good.status_code == 201


# -- one error shape, docs ----------------------------------------------------------------------


def test_unknown_api_urls_answer_problem_json(api_client_for, outsider):
    problem(api_client_for(outsider).get("/api/v1/nothing-here/"), 404)
    problem(api_client_for(outsider).delete("/api/v1/definitions/"), 405)
    problem(api_client_for(outsider).post(START, "x=1", content_type="text/plain"), 415)


def test_schema_and_docs_are_served_without_a_cdn(api_client_for, outsider, anonymous_client):
    problem(anonymous_client.get("/api/schema/"), 401)
    schema = api_client_for(outsider).get("/api/schema/")
    assert schema.status_code == 200 and b"/api/v1/tasks/{id}/complete/" in schema.content
    docs = api_client_for(outsider).get("/api/docs/")
    assert docs.status_code == 200
    assert b"cdn" not in docs.content.lower()
    assert b"/static/drf_spectacular_sidecar/" in docs.content


def test_anonymous_docs_lead_to_the_login_page_and_back(anonymous_client, outsider):
    """A person opening the docs in a browser gets the login page, not raw 401 JSON; the
    schema stays 401 for API clients."""
    from django.test import Client

    docs = anonymous_client.get("/api/docs/?urls.primaryName=x")
    assert docs.status_code == 302
    assert docs["Location"] == "/accounts/login/?next=/api/docs/%3Furls.primaryName%3Dx"
    browser = Client()
    browser.force_login(outsider)
    assert browser.get("/api/docs/").status_code == 200
    bad_token = anonymous_client.get("/api/docs/", HTTP_AUTHORIZATION="Token nonsense")
    assert bad_token.status_code == 302


def test_throttling_per_user_when_configured(
    monkeypatch, expense_definition, api_client_for, outsider
):
    """DRF reads throttle settings when views are imported, so the setting is applied to the
    view here the way startup would apply BATON_API_USER_RATE (checked below)."""
    from django.core.cache import cache
    from rest_framework.throttling import UserRateThrottle

    from api.views.definitions import DefinitionListView

    cache.clear()
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {"user": "2/minute"})
    monkeypatch.setattr(DefinitionListView, "throttle_classes", [UserRateThrottle])
    client = api_client_for(outsider)
    assert [client.get("/api/v1/definitions/").status_code for _ in range(2)] == [200, 200]
    limited = client.get("/api/v1/definitions/")
    problem(limited, 429)
    assert "Retry-After" in limited


def test_the_throttle_rate_comes_from_the_environment() -> None:
    import subprocess
    import sys

    code = (
        "import os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings.test'; "
        "from django.conf import settings; r = settings.REST_FRAMEWORK; "
        "print(r['DEFAULT_THROTTLE_RATES']['user'], len(r['DEFAULT_THROTTLE_CLASSES']))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "BATON_API_USER_RATE": "1000/hour"},
        check=True,
    )
    assert out.stdout.split() == ["1000/hour", "2"]
