"""The operators' admin in a real browser (issue 18): a refused JSON edit stays in the editor,
repairs that cannot be undone ask first, and the list and the instance page fit a 1366 px
wide screen without scrolling sideways."""

import json
import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from engine.models import InstanceEvent, ProcessInstance
from engine.services import start_instance
from tests.e2e.conftest import login
from tests.helpers import deploy_document

pytestmark = pytest.mark.django_db(transaction=True)

# A script task with a long name that fails with a long error: the widest row the list has.
FAILING = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI"
    xmlns:dc="http://www.omg.org/spec/DD/20100524/DC"
    id="Definitions_wide" targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="customer_onboarding_with_a_long_process_key" isExecutable="true">
    <bpmn:startEvent id="start" name="Customer signed up" />
    <bpmn:scriptTask id="Activity_0bn1eoq" name="Look up the customer in the CRM"
        scriptFormat="python">
      <bpmn:script>raise ValueError("customer_reference_" + "x" * 150 + " is unknown")
      </bpmn:script>
    </bpmn:scriptTask>
    <bpmn:endEvent id="end" name="Onboarded" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="Activity_0bn1eoq" />
    <bpmn:sequenceFlow id="f2" sourceRef="Activity_0bn1eoq" targetRef="end" />
  </bpmn:process>
  <bpmndi:BPMNDiagram id="d"><bpmndi:BPMNPlane id="p"
      bpmnElement="customer_onboarding_with_a_long_process_key">
    <bpmndi:BPMNShape id="s1" bpmnElement="start">
      <dc:Bounds x="100" y="100" width="36" height="36" /></bpmndi:BPMNShape>
    <bpmndi:BPMNShape id="s2" bpmnElement="Activity_0bn1eoq">
      <dc:Bounds x="200" y="78" width="100" height="80" /></bpmndi:BPMNShape>
    <bpmndi:BPMNShape id="s3" bpmnElement="end">
      <dc:Bounds x="360" y="100" width="36" height="36" /></bpmndi:BPMNShape>
  </bpmndi:BPMNPlane></bpmndi:BPMNDiagram>
</bpmn:definitions>
"""

LAPTOP = {"width": 1366, "height": 768}


@pytest.fixture
def operator(make_staff, with_password):
    return with_password(make_staff("olga_operator", "operators"))


def instance_page(instance: ProcessInstance) -> str:
    return f"/admin/engine/processinstance/{instance.pk}/change/"


def scrolls_sideways(page: Page) -> list[str]:
    """The page, or a box on it (the admin's result list scrolls inside its own box), that is
    wider than what it shows."""
    return list(
        page.evaluate(
            """() => [document.documentElement, ...document.querySelectorAll(
                    '#changelist .results, .baton-instance section, table, pre')]
                .filter((box) => box.scrollWidth > box.clientWidth + 1)
                .map((box) => box.id || box.className || box.tagName)"""
        )
    )


def screenshot_dir(tmp_path: Path) -> Path:
    """BATON_SCREENSHOTS=docs/screenshots keeps them (for the README); else a temp folder."""
    return Path(os.environ.get("BATON_SCREENSHOTS") or tmp_path)


def test_a_bad_json_edit_stays_in_the_editor_with_the_error(page, operator, expense_definition):
    instance = start_instance(
        key="expense_approval", variables={"amount": 40, "description": "Lunch"}
    )
    login(page, operator)
    page.goto(instance_page(instance))
    editor = page.locator("#variables textarea")
    before = json.loads(editor.input_value())
    good = json.dumps({**before, "amount": 45, "requester": "<b>Bob</b>"}, indent=2)
    typed = good.replace('"amount": 45,', '"amount": 45')  # a comma forgotten
    editor.fill(typed)
    page.get_by_role("button", name="Save variables").click()

    error = page.get_by_test_id("variables-error")
    expect(error).to_contain_text("This is not valid JSON (line")
    expect(error).to_contain_text("your text is kept")
    expect(page.locator("#variables textarea")).to_have_value(typed)
    expect(page.locator(".messagelist")).to_contain_text("Nothing was changed.")
    instance.refresh_from_db()
    assert instance.variables == before

    # Corrected in place, it saves.
    page.locator("#variables textarea").fill(good)
    page.get_by_role("button", name="Save variables").click()
    expect(page.locator(".messagelist")).to_contain_text("Saved 2 changed and 0 removed")
    instance.refresh_from_db()
    assert instance.variables == {**before, "amount": 45, "requester": "<b>Bob</b>"}


def test_terminate_and_reset_ask_first_and_terminate_needs_a_reason(
    page, operator, expense_definition, tmp_path
):
    instance = start_instance(
        key="expense_approval", variables={"amount": 40, "description": "Lunch"}
    )
    login(page, operator)
    page.goto(instance_page(instance))

    # Reset: the confirmation names the target; "No" changes nothing.
    page.locator('select[name="element_id"]').select_option("categorise")
    page.get_by_role("button", name="Reset…").click()
    confirmation = page.get_by_test_id("confirmation")
    expect(page.locator("h1")).to_contain_text("Reset the instance to")
    expect(page.locator("h1")).to_contain_text("(categorise)")
    expect(confirmation).to_contain_text("The work done after it is undone")
    confirmation.get_by_role("link", name="No, back to the instance").click()
    expect(page.get_by_test_id("instance-status")).to_have_text("Waiting")
    assert not InstanceEvent.objects.filter(instance=instance, type="reset").exists()

    # Terminate without a reason: asked, refused with the service's message, asked again.
    page.get_by_role("button", name="Terminate…").click()
    expect(page.locator("h1")).to_have_text("Terminate the instance?")
    page.get_by_role("button", name="Yes, terminate").click()
    expect(page.get_by_test_id("confirm-error")).to_contain_text("Give a reason")
    page.screenshot(path=str(screenshot_dir(tmp_path) / "admin-terminate.png"))
    instance.refresh_from_db()
    assert instance.status == "waiting"
    page.get_by_label("Reason").fill("Entered twice")
    page.get_by_role("button", name="Yes, terminate").click()
    expect(page.get_by_test_id("instance-status")).to_have_text("Terminated")
    expect(page.locator(".messagelist")).to_contain_text("The instance was terminated.")
    expect(page.get_by_test_id("timeline")).to_contain_text("Entered twice")


def test_the_list_and_the_instance_page_fit_a_1366_px_screen(
    new_page, operator, expense_definition, tmp_path
):
    deploy_document(FAILING)
    broken = start_instance(
        key="customer_onboarding_with_a_long_process_key",
        business_key="ONBOARDING-2024-000123456789",
    )
    assert broken.status == "incident"
    for amount in (40, 250):
        start_instance(
            key="expense_approval",
            business_key=f"E-{amount}",
            variables={"amount": amount, "description": "Lunch"},
        )
    page = new_page(viewport=LAPTOP)
    login(page, operator)
    shots = screenshot_dir(tmp_path)

    page.goto("/admin/engine/processinstance/")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("Look up the customer in the CRM")  # incidents first
    expect(rows.first).to_contain_text("Activity_0bn1eoq")
    page.screenshot(path=str(shots / "admin-instances.png"))
    assert scrolls_sideways(page) == []

    page.goto(instance_page(broken))
    expect(page.locator("#baton-diagram")).to_have_attribute("data-ready", "true")
    expect(page.get_by_test_id("incident")).to_contain_text(
        re.compile(r"Incident at Look up the customer in the CRM\s+Activity_0bn1eoq")
    )
    page.screenshot(path=str(shots / "admin-instance.png"), full_page=True)
    assert scrolls_sideways(page) == []
