"""The inbox in a real browser: htmx polling, start form errors, approving, permissions,
claiming from the list and a phone-sized screen."""

import re

import pytest
from playwright.sync_api import Page, expect

from engine.models import HumanTask, ProcessInstance
from engine.services import start_instance
from processes.services import deploy
from processes.validation import UploadedFile
from tests.e2e.conftest import login
from tests.tasks_ui.test_camunda_form_rules import LIMITS_BPMN

pytestmark = pytest.mark.django_db(transaction=True)

# Row buttons are named "Claim <task name>" / "Unclaim <task name>" (visually hidden suffix).
CLAIM = re.compile(r"^Claim\b")
UNCLAIM = re.compile(r"^Unclaim\b")
EXPENSE = {"amount": 320, "description": "Train tickets", "requester": "rita"}


def _start_expense(actor, business_key: str) -> HumanTask:
    instance = start_instance(
        key="expense_approval", variables=dict(EXPENSE), business_key=business_key, actor=actor
    )
    return HumanTask.objects.get(instance=instance, status=HumanTask.Status.OPEN)


def _is_htmx_inbox_refresh(response) -> bool:
    request = response.request
    return (
        request.method == "GET"
        and request.headers.get("hx-request") == "true"
        and re.search(r"/tasks/(\?|$)", request.url) is not None
        and response.ok
    )


def _row(page: Page, business_key: str):
    return page.locator("#task-list tbody tr").filter(has_text=business_key)


def test_new_task_appears_by_polling_and_is_approved(
    page, expense_definition, approver, make_user, with_password
):
    with_password(approver)
    requester = make_user("rita_requester")
    login(page, approver)
    page.goto("/tasks/")
    expect(page.locator("#task-list")).to_contain_text("No unclaimed task waits for your groups.")
    expect(page.locator("#task-list")).to_have_attribute("hx-trigger", re.compile(r"every 15s"))
    page.evaluate("window.__sameDocument = true")
    row = _row(page, "E-1")

    # The list refreshes itself every 15 s (an htmx request): no reload, no click.
    with page.expect_response(_is_htmx_inbox_refresh, timeout=20_000):
        task = _start_expense(requester, "E-1")
        expect(row).to_have_count(0)
    expect(row).to_contain_text("Approve expense")
    expect(row).to_contain_text("amount: 320")
    assert page.evaluate("window.__sameDocument === true"), "the page was reloaded"

    row.get_by_role("link", name="Approve expense").click()
    expect(page).to_have_url(re.compile(rf"/tasks/{task.id}/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Approve expense")
    page.get_by_label("Comment").fill("Fine by me")
    page.get_by_role("button", name="Approve", exact=True).click()

    expect(page).to_have_url(re.compile(r"/tasks/$"))
    expect(page.locator("ul.messages")).to_contain_text("“Approve expense” is done.")
    expect(page.locator("ul.messages")).to_contain_text("The process is complete.")
    instance = ProcessInstance.objects.get(business_key="E-1")
    assert instance.status == ProcessInstance.Status.COMPLETED
    assert instance.variables["outcome"] == "approved"
    assert instance.variables["decision"] == "approve"
    assert instance.variables["comment"] == "Fine by me"
    task.refresh_from_db()
    assert task.status == HumanTask.Status.COMPLETED
    assert task.completed_by == approver


def test_start_form_shows_field_errors_then_starts(
    page, expense_definition, make_user, with_password
):
    requester = with_password(make_user("rita_requester"))
    login(page, requester)
    page.goto("/processes/expense_approval/start/")
    page.get_by_label("Business key").fill("E-2")
    page.locator("#id_amount").fill("0")
    page.locator("#id_description").fill("Train tickets")
    page.get_by_role("button", name="Start", exact=True).click()

    amount_field = page.locator(".form-fields > div").filter(has=page.locator("#id_amount"))
    expect(amount_field.locator(".errorlist")).to_have_text("Amount must be at least 1.")
    expect(page.locator(".errorlist")).to_have_count(1)  # nothing wrong elsewhere
    # What was typed is kept.
    expect(page.locator("#id_description")).to_have_value("Train tickets")
    expect(page.get_by_label("Business key")).to_have_value("E-2")
    assert not ProcessInstance.objects.exists()

    page.locator("#id_amount").fill("320")
    page.get_by_role("button", name="Start", exact=True).click()

    # The requester is no manager: on to the instance's page, where they follow it.
    expect(page.locator("ul.messages")).to_contain_text("Expense approval started as E-2.")
    instance = ProcessInstance.objects.get()
    expect(page).to_have_url(re.compile(rf"/instances/{instance.pk}/$"))
    assert instance.business_key == "E-2"
    assert instance.started_by == requester
    assert instance.variables["amount"] == 320
    assert instance.variables["category"] == "medium"
    task = instance.human_tasks.get()
    assert (task.name, task.status, task.candidate_groups) == (
        "Approve expense",
        "open",
        ["managers"],
    )


def test_a_form_refuses_what_the_engine_refuses_with_its_message(page, approver, with_password):
    deploy(name="limits", files=[UploadedFile("limits.bpmn", LIMITS_BPMN.encode())], actor=None)
    task = start_instance(key="limits").human_tasks.get()
    login(page, with_password(approver))
    page.goto(f"/tasks/{task.id}/")
    page.get_by_label("Quantity").fill("1")  # the diagram says at least 1.5
    page.get_by_role("button", name="Complete", exact=True).click()

    quantity = page.locator(".form-fields > div").filter(has=page.get_by_label("Quantity"))
    expect(quantity.locator(".errorlist")).to_have_text("Quantity must be at least 1.5.")
    expect(page.get_by_label("Quantity")).to_have_value("1")
    task.refresh_from_db()
    assert task.status == HumanTask.Status.OPEN

    page.get_by_label("Quantity").fill("2")
    page.get_by_role("button", name="Complete", exact=True).click()
    expect(page).to_have_url(re.compile(r"/tasks/$"))
    task.refresh_from_db()
    assert task.status == HumanTask.Status.COMPLETED
    assert ProcessInstance.objects.get(pk=task.instance_id).variables["quantity"] == 2


def test_outsider_gets_not_allowed_and_an_inbox_without_the_task(
    page, expense_definition, approver, outsider, with_password
):
    task = _start_expense(approver, "E-3")
    login(page, with_password(outsider))

    response = page.goto(f"/tasks/{task.id}/")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    expect(page.locator("body")).not_to_contain_text("Train tickets")

    for tab in ("", "?tab=mine", "?tab=groups"):
        page.goto(f"/tasks/{tab}")
        expect(page.locator("#task-list")).to_be_visible()
        expect(page.locator("#task-list")).not_to_contain_text("E-3")
        expect(page.get_by_role("link", name="Approve expense")).to_have_count(0)
    task.refresh_from_db()
    assert (task.status, task.assignee) == ("open", None)


def test_claim_from_the_list_moves_the_row_out_of_the_tab(
    new_page, expense_definition, approver, approver2, make_user, with_password
):
    task = _start_expense(make_user("rita_requester"), "E-4")
    page2 = new_page()
    login(page2, with_password(approver2))
    page2.goto("/tasks/")
    row = page2.locator(f"#task-{task.id}")
    expect(row).to_contain_text("E-4")
    page2.evaluate("window.__sameDocument = true")

    expect(page2.get_by_role("link", name="My groups")).to_have_attribute("aria-current", "page")
    row.get_by_role("button", name=CLAIM).click()

    # The claimed task leaves "My groups" at once; a notice says where it went.
    expect(row).to_have_count(0)
    notice = page2.locator("#inbox-notice")
    expect(notice).to_contain_text("“Approve expense” claimed. It is now under Assigned to me")
    assert page2.evaluate("window.__sameDocument === true"), "claiming reloaded the page"
    expect(page2).to_have_url(re.compile(r"/tasks/$"))
    task.refresh_from_db()
    assert (task.status, task.assignee) == ("claimed", "mark_approver")

    page1 = new_page()
    login(page1, with_password(approver))
    page1.goto(f"/tasks/{task.id}/")
    expect(page1.locator(".notice")).to_have_text(
        "Claimed by mark_approver. Only they can complete it now."
    )
    expect(page1.get_by_role("button", name="Approve")).to_have_count(0)
    expect(page1.get_by_role("button", name="Reject")).to_have_count(0)
    expect(page1.get_by_role("button", name=re.compile(r"claim", re.I))).to_have_count(0)

    # And back: under "Assigned to me", Unclaim takes the row out of that list.
    notice.get_by_role("link", name="Assigned to me").click()
    expect(row.get_by_role("button", name=UNCLAIM)).to_be_visible()
    page2.evaluate("window.__sameDocument = true")
    row.get_by_role("button", name=UNCLAIM).click()
    expect(row).to_have_count(0)
    expect(notice).to_contain_text("It is back under My groups")
    assert page2.evaluate("window.__sameDocument === true"), "unclaiming reloaded the page"
    task.refresh_from_db()
    assert (task.status, task.assignee) == ("open", None)


def test_inbox_on_a_phone(new_page, expense_definition, approver, make_user, with_password):
    task = _start_expense(make_user("rita_requester"), "E-5")
    page = new_page(viewport={"width": 390, "height": 800}, is_mobile=True, has_touch=True)
    login(page, with_password(approver))
    page.goto("/tasks/")

    link = page.locator(f"#task-{task.id}").get_by_role("link", name="Approve expense")
    expect(link).to_be_visible()
    expect(link).to_be_in_viewport()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the inbox is {overflow}px wider than the phone screen"

    link.tap()
    expect(page).to_have_url(re.compile(rf"/tasks/{task.id}/$"))
    expect(page.get_by_role("button", name="Approve", exact=True)).to_be_visible()
