"""Issue 18 (part A) in a real browser: the approver sees what they decide (the data and the
diagram with the task highlighted) on a desktop and on a phone; a starter lands on the
instance page after a start (also when it stopped at once with an incident) and finds it
under "My work"; a suspended instance's task shows no form.

With BATON_SCREENSHOT_DIR set, the tests also save the screenshots the README shows (the
inbox, the task page and the "my work" instance page) there, e.g. `docs/screenshots`."""

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from engine.models import HumanTask, ProcessInstance
from engine.services import start_instance, suspend_instance
from tests.e2e.conftest import login
from tests.helpers import build_bpmn, deploy_document

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

EXPENSE = {"amount": 320, "description": "Train tickets to the Oslo fair", "requester": "rita"}
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


def _screenshot(page: Page, name: str, *, full_page: bool = True) -> None:
    folder = os.environ.get("BATON_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=full_page)


def _in_view(page: Page, container: str, element: str) -> bool:
    """Whether `element` lies (mostly) inside `container`'s box on screen."""
    outer = page.locator(container).bounding_box()
    inner = page.locator(element).bounding_box()
    assert outer and inner
    cx, cy = inner["x"] + inner["width"] / 2, inner["y"] + inner["height"] / 2
    return (
        outer["x"] <= cx <= outer["x"] + outer["width"]
        and outer["y"] <= cy <= outer["y"] + outer["height"]
    )


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_approver_sees_the_work_and_the_highlighted_diagram(
    new_page, viewport, expense_definition, approver, make_user, with_password
):
    requester = make_user("rita_requester")
    instance = start_instance(
        key="expense_approval", variables=dict(EXPENSE), business_key="E-31", actor=requester
    )
    task = instance.human_tasks.get()
    phone = viewport == PHONE
    page = new_page(viewport=viewport, is_mobile=phone, has_touch=phone)
    login(page, with_password(approver))
    if not phone:
        page.goto("/tasks/")
        expect(page.locator("#task-list")).to_contain_text("Approve expense")
        _screenshot(page, "inbox.png")
    page.goto(f"/tasks/{task.id}/")

    data = page.get_by_test_id("task-data")
    for label, value in (
        ("Amount", "320"),
        ("Description", "Train tickets to the Oslo fair"),
        ("Requester", "rita"),
        ("Category", "medium"),
    ):
        entry = data.locator(".variable").filter(has=page.locator("dt", has_text=label))
        expect(entry.locator("dd")).to_have_text(value)
    expect(data).to_be_in_viewport()

    diagram = page.locator("#work-diagram")
    expect(diagram).to_have_attribute("data-rendered", "true")
    current = diagram.locator('g.djs-element[data-element-id="approve_expense"]')
    expect(current).to_have_class(re.compile(r"baton-current"))
    expect(diagram.locator("g.baton-current")).to_have_count(1)
    assert _in_view(page, "#work-diagram", 'g[data-element-id="approve_expense"]')
    # Nothing is wider than the screen: no sideways scrolling on a phone.
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= viewport["width"]
    expect(page.get_by_role("button", name="Approve", exact=True)).to_be_visible()
    if not phone:
        _screenshot(page, "task.png")
    else:
        page.locator("#work-diagram").scroll_into_view_if_needed()
        _screenshot(page, "task-phone.png", full_page=False)


def test_my_work_after_a_start_and_after_a_start_into_incident(
    page, expense_definition, make_user, with_password
):
    requester = with_password(make_user("bob_requester"))
    login(page, requester)
    page.goto("/processes/expense_approval/start/")
    page.get_by_label("Business key").fill("E-41")
    page.locator("#id_amount").fill("320")
    page.locator("#id_description").fill("Train tickets")
    page.get_by_role("button", name="Start", exact=True).click()

    instance = ProcessInstance.objects.get(business_key="E-41")
    expect(page).to_have_url(re.compile(rf"/instances/{instance.pk}/$"))
    expect(page.locator("ul.messages")).to_contain_text("Expense approval started as E-41.")
    expect(page.get_by_test_id("instance-status")).to_have_text("Waiting")
    expect(page.get_by_test_id("current-steps")).to_contain_text("Approve expense")
    expect(page.get_by_test_id("history")).to_contain_text("Started · bob_requester")
    diagram = page.locator("#work-diagram")
    expect(diagram).to_have_attribute("data-rendered", "true")
    expect(diagram.locator('g[data-element-id="approve_expense"]').first).to_have_class(
        re.compile(r"baton-active")
    )
    expect(diagram.locator('g[data-element-id="categorise"]').first).to_have_class(
        re.compile(r"baton-completed")
    )
    _screenshot(page, "my-work-instance.png")

    # A process that fails at once: the starter is told so, where, and why.
    deploy_document(build_bpmn("broken", name="Broken", script="x = 1 / 0"))
    page.goto("/processes/broken/start/")
    page.get_by_label("Business key").fill("B-1")
    page.get_by_role("button", name="Start", exact=True).click()
    broken = ProcessInstance.objects.get(business_key="B-1")
    assert broken.status == ProcessInstance.Status.INCIDENT
    expect(page).to_have_url(re.compile(rf"/instances/{broken.pk}/$"))
    expect(page.get_by_test_id("incident")).to_contain_text("stopped with an incident at “Prepare”")
    expect(page.get_by_test_id("current-steps")).to_contain_text("Prepare")
    # This small diagram was written without a layout: the page says so instead of a blank.
    expect(diagram).to_contain_text("no layout to draw")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="My work").click()
    rows = page.locator("table.instances tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.filter(has_text="B-1")).to_contain_text("Incident")
    expect(rows.filter(has_text="B-1")).to_contain_text("Prepare")
    expect(rows.filter(has_text="E-41")).to_contain_text("Approve expense")
    rows.filter(has_text="E-41").get_by_role("link").click()
    expect(page).to_have_url(re.compile(rf"/instances/{instance.pk}/$"))


def test_a_suspended_instance_task_shows_no_form(
    page, expense_definition, approver, make_user, with_password
):
    instance = start_instance(
        key="expense_approval", variables=dict(EXPENSE), business_key="E-51", actor=None
    )
    task = instance.human_tasks.get()
    suspend_instance(instance_id=instance.pk, actor=make_user("olga", "operators"))
    login(page, with_password(approver))
    page.goto("/tasks/?tab=groups")
    row = page.locator("#task-list tbody tr").filter(has_text="E-51")
    expect(row).to_contain_text("Process suspended")
    expect(row.get_by_role("button")).to_have_count(0)
    row.get_by_role("link", name="Approve expense").click()
    expect(page.get_by_test_id("paused")).to_contain_text("suspended")
    expect(page.get_by_role("button", name="Approve", exact=True)).to_have_count(0)
    expect(page.locator("form textarea, form input[name=comment]")).to_have_count(0)
    task.refresh_from_db()
    assert task.status == HumanTask.Status.OPEN
