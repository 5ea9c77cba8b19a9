"""The modeler's deploy page in a real browser (issue 18): a diagram opened from a file with
two problems is refused with both, each naming the element by name and id and the line in
the uploaded file, under the uploaded file's own name."""

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from processes.models import ProcessDefinition
from tests.e2e.conftest import login
from tests.helpers import line_containing

pytestmark = pytest.mark.django_db(transaction=True)

DOCUMENT_REVIEW = Path(__file__).with_name("document_review.bpmn")


def two_problems() -> str:
    return (
        DOCUMENT_REVIEW.read_text()
        .replace(
            '<bpmn:userTask id="review" name="Review document">',
            '<bpmn:userTask id="review" name="Review document"\n'
            '        camunda:dueDate="next friday">',
        )
        .replace(
            "<bpmn:outgoing>flow_1</bpmn:outgoing></bpmn:startEvent>",
            "<bpmn:outgoing>flow_1</bpmn:outgoing>\n"
            "      <bpmn:timerEventDefinition>\n"
            "        <bpmn:timeCycle>every monday</bpmn:timeCycle>\n"
            "      </bpmn:timerEventDefinition></bpmn:startEvent>",
        )
    )


def test_two_problems_of_an_uploaded_file_give_two_messages(
    new_page, designer, with_password, tmp_path: Path
) -> None:
    text = two_problems()
    upload = tmp_path / "Review (draft 2).bpmn"
    upload.write_text(text)
    page: Page = new_page(viewport={"width": 1400, "height": 900})
    login(page, with_password(designer))
    page.goto("/processes/new/")
    expect(page.locator("#canvas")).to_have_attribute("data-ready", "true")

    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Upload .bpmn").click()
    chooser.value.set_files(str(upload))
    expect(page.locator("#modeler-status")).to_contain_text("is open in the editor")
    page.get_by_role("button", name="Save and deploy").click()

    expect(page.locator("#modeler-status")).to_contain_text("Not deployed: 2 problem(s)")
    problems = page.locator("#problem-list li")
    expect(problems).to_have_count(2)
    due = problems.filter(has_text="next friday")
    expect(due).to_contain_text("Review document (review)")
    expect(due).to_contain_text(
        f"line {line_containing(text, 'next friday')} of Review_draft_2_.bpmn"
    )
    timer = problems.filter(has_text="every monday")
    expect(timer).to_contain_text("Document in (start)")
    expect(timer).to_contain_text(
        f"line {line_containing(text, 'every monday')} of Review_draft_2_.bpmn"
    )
    expect(page.locator('.baton-error-overlay[data-element-id="review"]')).to_be_visible()
    expect(page.locator('.baton-error-overlay[data-element-id="start"]')).to_be_visible()
    assert not ProcessDefinition.objects.exists()
    expect(page.locator("#modeler-status")).not_to_contain_text(re.compile("deployed\\."))
