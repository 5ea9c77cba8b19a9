"""The admin's instance page in a real browser: bpmn-js draws the diagram and Baton's markers
show where the instance has been, where it waits, and how often each element ran."""

import re

import pytest
from playwright.sync_api import expect

from engine.services import start_instance
from tests.e2e.conftest import login

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_instance_page_shows_markers_on_the_diagram(
    page, expense_definition, make_staff, with_password
):
    operator = make_staff("olga_operator", "operators")
    with_password(operator)
    instance = start_instance(
        key="expense_approval", business_key="E-7", variables={"amount": 40, "description": "Lunch"}
    )

    login(page, operator)
    page.goto(f"/admin/engine/processinstance/{instance.pk}/change/")
    diagram = page.locator("#baton-diagram")
    expect(diagram).to_have_attribute("data-ready", "true")

    def shape(element_id: str):
        return diagram.locator(f'g.djs-element[data-element-id="{element_id}"]')

    expect(shape("categorise")).to_have_class(re.compile(r"baton-completed"))
    expect(shape("expense_submitted")).to_have_class(re.compile(r"baton-completed"))
    expect(shape("approve_expense")).to_have_class(re.compile(r"baton-active"))
    expect(shape("record_approval")).not_to_have_class(re.compile(r"baton-"))
    counts = diagram.locator(".djs-overlays[data-container-id='categorise'] .baton-run-count")
    expect(counts).to_have_text("1")
    expect(
        diagram.locator(".djs-overlays[data-container-id='approve_expense'] .baton-token")
    ).to_be_visible()

    # Clicking a completed element picks it as the reset target.
    shape("categorise").click()
    expect(page.locator('select[name="element_id"]')).to_have_value("categorise")
    expect(page.get_by_test_id("instance-status")).to_have_text("Waiting")
