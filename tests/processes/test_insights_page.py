"""The insights page through the test client: designers see how long runs took, never which
instances they belong to (business keys, actors, links), and may not filter by business key;
operators see and filter everything."""

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from engine.services import complete_human_task, start_instance
from tests.helpers import build_bpmn, deploy_document

pytestmark = pytest.mark.django_db(transaction=True)
PAGE = "/processes/stats_demo/insights/"
KEY = "EMP-4711-dismissal"


@pytest.fixture
def dismissal(approver: User) -> str:
    deploy_document(build_bpmn("stats_demo", script="x = 1"))
    instance = start_instance(key="stats_demo", business_key=KEY)
    task = instance.human_tasks.get()
    complete_human_task(task_id=task.id, user=approver, variables={})
    return str(instance.pk)


def page_for(user: User, **params: str) -> str:
    client = Client()
    client.force_login(user)
    response = client.get(PAGE, {"element": "review", **params})
    assert response.status_code == 200
    return response.content.decode()


def test_designers_see_durations_but_not_the_instances(dismissal: str, make_user: Any) -> None:
    html = page_for(make_user("dora_designer", "designers"))
    assert 'data-testid="slowest-runs"' in html and " ms</td>" in html
    assert KEY not in html
    assert "alice_approver" not in html
    assert dismissal not in html and dismissal[:8] not in html
    assert 'name="prefix"' not in html


def test_designers_business_key_filter_is_ignored(dismissal: str, make_user: Any) -> None:
    designer = make_user("dora_designer", "designers")
    matching = page_for(designer, prefix="EMP-")
    other = page_for(designer, prefix="nothing-like-it")
    assert KEY not in matching and " ms</td>" in matching
    assert " ms</td>" in other  # the same runs: the prefix tells nothing


def test_operators_see_the_instances_and_may_filter(dismissal: str, make_user: Any) -> None:
    operator = make_user("olga_operator", "operators")
    html = page_for(operator)
    assert KEY in html and "alice_approver" in html and dismissal[:8] in html
    assert 'name="prefix"' in html
    assert KEY in page_for(operator, prefix="EMP-")
    assert "No finished runs in this range." in page_for(operator, prefix="nothing-like-it")
