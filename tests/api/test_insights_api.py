"""GET /api/v1/definitions/{key}/statistics/ and GET /api/v1/metrics/summary/."""

from typing import Any

import pytest
from django.contrib.auth.models import User

from engine.services import complete_human_task, start_instance
from tests.helpers import build_bpmn, deploy_document

pytestmark = pytest.mark.django_db(transaction=True)
STATS = "/api/v1/definitions/stats_demo/statistics/"
SUMMARY = "/api/v1/metrics/summary/"


@pytest.fixture
def two_runs(approver: User) -> None:
    deploy_document(build_bpmn("stats_demo", script="x = 1"))
    for number in range(2):
        instance = start_instance(key="stats_demo", business_key=f"B-{number}")
        if number == 0:
            task = instance.human_tasks.get()
            complete_human_task(task_id=task.id, user=approver, variables={})


def by_element(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {element["element_id"]: element for element in body["elements"]}


def test_statistics_per_element(two_runs: None, api_client_for: Any, make_user: Any) -> None:
    operator = make_user("olga_operator", "operators")
    response = api_client_for(operator).get(STATS)
    assert response.status_code == 200, response.content
    elements = by_element(response.json())
    assert elements["prepare"]["runs"] == 2 and elements["prepare"]["completed"] == 2
    assert elements["prepare"]["element_type"] == "Script Task"
    assert elements["review"]["runs"] == 2 and elements["review"]["completed"] == 1
    assert elements["review"]["name"] == "Review"
    assert elements["stats_demo"]["element_type"] == "Process"
    assert elements["stats_demo"]["runs"] == 2 and elements["stats_demo"]["completed"] == 1
    assert elements["review"]["p95_ms"] is not None and elements["review"]["mean_ms"] >= 0


def test_statistics_filtered_by_business_key_prefix(
    two_runs: None, api_client_for: Any, make_user: Any
) -> None:
    operator = make_user("olga_operator", "operators")
    response = api_client_for(operator).get(STATS, {"business_key_prefix": "B-1"})
    assert response.status_code == 200
    elements = by_element(response.json())
    assert elements["review"]["runs"] == 1 and elements["review"]["completed"] == 0


def test_designers_may_not_filter_by_business_key(
    two_runs: None, api_client_for: Any, make_user: Any
) -> None:
    # Whether a prefix returns runs would tell a designer which business keys exist.
    designer = make_user("dora_designer", "designers")
    client = api_client_for(designer)
    for prefix in ("B-1", "nothing-like-it"):
        response = client.get(STATS, {"business_key_prefix": prefix})
        assert response.status_code == 403, response.content
        assert response["Content-Type"].startswith("application/problem+json")
        assert "operators" in response.json()["detail"]
    assert client.get(STATS).status_code == 200


def test_statistics_refused_to_others_and_404_for_unknown_keys(
    two_runs: None, api_client_for: Any, make_user: Any
) -> None:
    worker = make_user("walt_worker", "managers")
    assert api_client_for(worker).get(STATS).status_code == 403
    operator = make_user("olga_operator", "operators")
    assert api_client_for(operator).get("/api/v1/definitions/nope/statistics/").status_code == 404
    bad = api_client_for(operator).get(STATS, {"since": "yesterday"})
    assert bad.status_code == 400


def test_metrics_summary(two_runs: None, api_client_for: Any, make_user: Any) -> None:
    operator = make_user("olga_operator", "operators")
    body = api_client_for(operator).get(SUMMARY).json()
    assert body["active_instances"] == 1
    assert body["incidents"] == 0
    assert body["queue_depth"] == 0 and body["oldest_pending_job_at"] is None
    worker = make_user("walt_worker", "managers")
    assert api_client_for(worker).get(SUMMARY).status_code == 403


def test_both_are_in_the_openapi_schema(api_client_for: Any, make_user: Any) -> None:
    schema = api_client_for(make_user("reader")).get("/api/schema/?format=json").json()
    assert "/api/v1/definitions/{key}/statistics/" in schema["paths"]
    assert "/api/v1/metrics/summary/" in schema["paths"]
