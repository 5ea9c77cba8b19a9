"""The modeler's properties panel offers only what Baton runs (issue 18): a service task is a
Baton connector or nothing (no Java class, expression, delegate expression or Camunda
Connector), each connector is explained, SpiffArena's V2 aliases are not offered, and hints
speak of Baton's Python expressions, not Camunda's EL."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import login
from tests.e2e.test_modeler_browser import _open_group, _open_modeler, _select

pytestmark = pytest.mark.django_db(transaction=True)

NOT_RUN = [
    "Java class",
    "Delegate expression",
    "Delegate Expression",
    "Connector ID",
    "Connector inputs",
    "Connector outputs",
    "Field injections",
    "Execution listeners",
    "Task listeners",
    "EL expression",
]


@pytest.fixture
def page(new_page) -> Page:
    return new_page(viewport={"width": 1400, "height": 900})


def test_the_service_task_panel_offers_only_what_baton_runs(
    page, designer, example_definitions, with_password
):
    login(page, with_password(designer))
    _open_modeler(page, "/processes/credit_check/edit/")
    _select(page, "check_credit_score")
    _open_group(page, "Implementation")
    panel = page.locator("#properties")

    kind = page.locator("#bio-properties-panel-implementationType")
    expect(kind).to_have_value("external")
    assert kind.locator("option").all_inner_texts() == ["<none>", "Baton connector"]
    topic = page.locator("#bio-properties-panel-externalTopic")
    options = topic.locator("option").all_inner_texts()
    assert "http - Calls an HTTP API" in options
    assert "http/GetRequest - SpiffArena's GET request" in options
    assert not [option for option in options if "V2" in option]
    expect(panel).to_contain_text("4xx is a BPMN error HTTP_<status>")
    for group in panel.locator(".bio-properties-panel-group-header-title").all():
        group_title = group.inner_text()
        assert group_title not in {"Connector inputs", "Field injections", "Execution listeners"}
    for text in NOT_RUN:
        expect(panel).not_to_contain_text(text)

    # Switching to none and back leaves a Baton connector task, never a Java one.
    kind.select_option("")
    expect(topic).to_have_count(0)
    kind.select_option("external")
    expect(page.locator("#bio-properties-panel-externalTopic")).to_be_visible()


def test_a_user_task_due_date_hint_speaks_of_baton_expressions(
    page, designer, example_definitions, with_password
):
    login(page, with_password(designer))
    _open_modeler(page, "/processes/credit_check/edit/")
    _select(page, "approve_credit")
    _open_group(page, "User assignment")
    panel = page.locator("#properties")
    expect(panel).to_contain_text(re.compile(r"ISO 8601 date and time .* in Python"))
    for text in NOT_RUN:
        expect(panel).not_to_contain_text(text)
    expect(panel).not_to_contain_text("Follow up date")
