"""The insights page in a real browser: the diagram with the heatmap overlay (switchable), the
charts, and an element's slowest runs on click."""

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from engine.services import complete_human_task, start_instance
from tests.e2e.conftest import login

pytestmark = pytest.mark.django_db(transaction=True)


def test_insights_show_a_heatmap_and_charts(
    page, expense_definition, make_staff, with_password, approver, tmp_path: Path
):
    for number in range(4):
        instance = start_instance(
            key="expense_approval",
            business_key=f"E-{number}",
            variables={"amount": 40 + number, "description": "Lunch"},
        )
        if number % 2 == 0:
            task = instance.human_tasks.get()
            complete_human_task(task_id=task.id, user=approver, variables={"decision": "approve"})
    designer = make_staff("dora_designer", "designers")
    with_password(designer)
    login(page, designer)
    page.goto("/processes/expense_approval/insights/")
    diagram = page.locator("#insight-diagram")
    expect(diagram).to_have_attribute("data-rendered", "true")

    def shape(element_id: str):
        return diagram.locator(f'g.djs-element[data-element-id="{element_id}"]')

    # Every element ran as often: all as hot; the labels say how often.
    expect(shape("categorise")).to_have_class(re.compile(r"heat-5"))
    label = diagram.locator(".djs-overlays[data-container-id='categorise'] .heat-label")
    expect(label).to_have_text("4")
    expect(page.get_by_test_id("chart-timeline").locator("rect[fill='#2563eb']")).not_to_have_count(
        0
    )
    expect(page.get_by_test_id("chart-durations")).to_be_visible()

    # Switched to the p95 duration: every element that ran is coloured and labelled by it.
    page.get_by_role("button", name="p95 duration").click()
    expect(diagram).to_have_attribute("data-metric", "p95_ms")
    expect(shape("approve_expense")).to_have_class(re.compile(r"heat-[0-5]"))
    approve = diagram.locator(".djs-overlays[data-container-id='approve_expense'] .heat-label")
    expect(approve).to_have_text(re.compile(r"^[0-9.]+(ms|s|min|h|d)$"))
    shots = Path(os.environ.get("BATON_SCREENSHOTS") or tmp_path)
    page.screenshot(path=str(shots / "insights.png"), full_page=True)

    # Clicking an element lists its slowest runs.
    shape("approve_expense").click()
    expect(page.get_by_test_id("slowest-runs")).to_contain_text("Slowest runs of")
    expect(page.get_by_test_id("slowest-runs").locator("tbody tr")).to_have_count(2)
