"""The process page's "Test coverage" overlay in a real browser: a coverage report made by
the plugin's machinery and stored as CI would (load_test_coverage), then toggled on the
diagram: covered elements and flows highlighted, the others dimmed, with the percentages."""

import os
import re
from pathlib import Path

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from baton.testing.coverage import Coverage
from baton.testing.runner import ProcessTester
from tests.e2e.conftest import login
from tests.helpers import EXAMPLES_DIR

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_process_page_draws_the_test_coverage(
    page, baton: ProcessTester, make_staff, with_password, tmp_path: Path
):
    baton.load(EXAMPLES_DIR / "expense_approval.bpmn")
    run = baton.start("expense_approval", {"amount": 5, "description": "Tea"})
    run.complete("approve_expense", {"decision": "approve"})
    coverage = Coverage()
    coverage.add_instance(run.id)
    report = tmp_path / "coverage.json"
    coverage.write(report)
    call_command("load_test_coverage", str(report), "--source", "CI build 7")

    user = make_staff("dora_designer", "designers")
    with_password(user)
    login(page, user)
    page.goto("/processes/expense_approval/")
    diagram = page.locator("#diagram")
    expect(diagram).to_have_attribute("data-rendered", "true")
    summary = page.locator("#coverage-summary")
    expect(summary).to_contain_text("6 of 8 elements (75.0%)")
    expect(summary).to_contain_text("5 of 7 sequence flows (71.4%)")
    expect(summary).to_contain_text("CI build 7")

    def shape(element_id: str):
        return diagram.locator(f'g.djs-element[data-element-id="{element_id}"]')

    expect(shape("record_approval")).not_to_have_class(re.compile("coverage-hit"))
    page.get_by_role("button", name="Test coverage").click()
    expect(diagram).to_have_attribute("data-coverage", "shown")
    expect(shape("record_approval")).to_have_class(re.compile("coverage-hit"))
    expect(shape("flow_approved")).to_have_class(re.compile("coverage-hit"))
    expect(shape("record_rejection")).to_have_class(re.compile("coverage-miss"))
    expect(shape("flow_rejected")).to_have_class(re.compile("coverage-miss"))
    shots = Path(os.environ.get("BATON_SCREENSHOTS") or tmp_path)
    page.screenshot(path=str(shots / "test-coverage.png"), full_page=True)

    page.get_by_role("button", name="Test coverage").click()
    expect(shape("record_rejection")).not_to_have_class(re.compile("coverage-miss"))
