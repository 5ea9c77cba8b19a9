"""The modeler in a real browser: import or build a diagram, assign a group in the properties
panel, save (version 1), see a validation error on the element (no new version), start the
process and find its task in the inbox; connectors offered for the topic; version diffs."""

import re
from pathlib import Path

import pytest
from playwright.sync_api import Dialog, Page, expect

from engine.connectors import _REGISTRY, connector, connector_choices
from engine.models import Connection, HumanTask, ProcessInstance
from processes.models import ProcessDefinition
from tests.e2e.conftest import login

pytestmark = pytest.mark.django_db(transaction=True)

DOCUMENT_REVIEW = Path(__file__).with_name("document_review.bpmn")
SCREEN = {"width": 1400, "height": 900}


@pytest.fixture
def page(new_page) -> Page:
    return new_page(viewport=SCREEN)


def _open_modeler(page: Page, url: str) -> None:
    page.goto(url)
    expect(page.locator("#canvas")).to_have_attribute("data-ready", "true")


def _shape(page: Page, element_id: str):
    return page.locator(f'g.djs-element[data-element-id="{element_id}"]')


def _select(page: Page, element_id: str) -> None:
    """Select an element (clicking a selected element would deselect it)."""
    shape = _shape(page, element_id)
    if "selected" not in (shape.get_attribute("class") or "").split():
        shape.click()
    expect(shape).to_have_class(re.compile(r"\bselected\b"))
    expect(page.locator(".bio-properties-panel-header-label")).to_be_visible()


def _click_empty_canvas(page: Page) -> None:
    page.locator("#canvas .djs-container > svg").click(position={"x": 700, "y": 30})


def _open_group(page: Page, label: str) -> None:
    """Expand a properties panel group (they start collapsed) unless it is open already."""
    header = page.locator(".bio-properties-panel-group-header").filter(
        has=page.locator(
            ".bio-properties-panel-group-header-title",
            has_text=re.compile(rf"^{re.escape(label)}$"),
        )
    )
    if "open" not in (header.get_attribute("class") or ""):
        header.click()
    expect(header).to_have_class(re.compile(r"\bopen\b"))


def _upload(page: Page, path: Path) -> None:
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Upload .bpmn").click()
    chooser.value.set_files(str(path))
    expect(page.locator("#modeler-status")).to_contain_text(f"{path.name} is open in the editor")


def _save(page: Page) -> None:
    page.get_by_role("button", name="Save and deploy").click()


def test_import_assign_save_see_an_error_start_and_find_the_task(
    new_page, designer, approver, with_password
):
    page = new_page(viewport=SCREEN)
    login(page, with_password(designer))
    page.goto("/processes/")
    page.get_by_role("link", name="New process").click()
    expect(page).to_have_url(re.compile(r"/processes/new/$"))
    expect(page.locator("#canvas")).to_have_attribute("data-ready", "true")

    _upload(page, DOCUMENT_REVIEW)
    _select(page, "review")
    _open_group(page, "User assignment")
    page.locator("#properties").get_by_label("Candidate groups").fill("managers")
    expect(page.locator("#dirty-flag")).to_be_visible()
    _save(page)

    status = page.locator("#modeler-status")
    expect(status).to_contain_text("Version 1 of “Document review” deployed.")
    expect(page).to_have_url(re.compile(r"/processes/document_review/edit/$"))
    expect(page.locator("#dirty-flag")).to_be_hidden()
    definition = ProcessDefinition.objects.get(key="document_review")
    assert definition.version == 1
    assert definition.deployment.deployed_by == designer
    assert definition.elements["review"]["candidate_groups"] == ["managers"]

    # An error: the user task becomes a script task whose script is not Python.
    _select(page, "review")
    page.locator('.djs-context-pad .entry[data-action="replace"]').click()
    page.locator('.djs-popup .entry[data-id="replace-with-script-task"]').click()
    _open_group(page, "Script")
    page.locator("#bio-properties-panel-scriptFormat").fill("python")
    page.locator("#bio-properties-panel-scriptType").select_option("script")
    page.locator("#bio-properties-panel-scriptValue").fill("total = (1 +")
    _save(page)

    expect(status).to_contain_text("Not deployed: 1 problem(s)")
    overlay = page.locator('.djs-overlay .baton-error-overlay[data-element-id="review"]')
    expect(overlay).to_be_visible()
    expect(overlay).to_contain_text("The script is not valid Python")
    expect(_shape(page, "review")).to_have_class(re.compile(r"\bbaton-error\b"))
    problem = page.locator("#problem-list li")
    expect(problem).to_have_count(1)
    expect(problem).to_contain_text("Review document (review)")
    expect(problem).to_contain_text("The script is not valid Python")
    assert list(ProcessDefinition.objects.values_list("version", flat=True)) == [1]

    # Leaving with unsaved changes asks first.
    dialogs: list[str] = []

    def accept(dialog: Dialog) -> None:
        dialogs.append(dialog.type)
        dialog.accept()

    page.on("dialog", accept)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Processes").click()
    expect(page).to_have_url(re.compile(r"/processes/$"))
    assert dialogs == ["beforeunload"]

    row = page.locator('tr[data-key="document_review"]')
    expect(row).to_contain_text("v1")
    row.get_by_role("link", name=re.compile(r"^Start")).click()
    page.get_by_role("button", name="Start", exact=True).click()
    expect(page.locator("ul.messages")).to_contain_text("Document review started.")
    instance = ProcessInstance.objects.get(definition__key="document_review")
    assert instance.started_by == designer

    inbox = new_page()
    login(inbox, with_password(approver))
    inbox.goto("/tasks/")
    task = HumanTask.objects.get(instance=instance)
    row = inbox.locator(f"#task-{task.id}")
    expect(row).to_contain_text("Review document")
    expect(row).to_contain_text("Document review")


def test_build_with_context_pad_and_keys_then_save(page, designer, with_password):
    login(page, with_password(designer))
    _open_modeler(page, "/processes/new/")

    # Start event -> append a task (its label opens for typing) -> make it a user task.
    _shape(page, "StartEvent_1").click()
    page.locator('.djs-context-pad .entry[data-action="append.append-task"]').click()
    page.keyboard.type("Sign contract")
    page.keyboard.press("Enter")
    task = page.locator("g.djs-shape").filter(has_text="Sign contract")
    expect(task).to_have_count(1)
    task_id = task.get_attribute("data-element-id")
    _select(page, task_id)
    page.locator('.djs-context-pad .entry[data-action="replace"]').click()
    page.locator('.djs-popup .entry[data-id="replace-with-user-task"]').click()
    user_task_id = (
        page.locator("g.djs-shape")
        .filter(has_text="Sign contract")
        .get_attribute("data-element-id")
    )
    _select(page, user_task_id)
    page.locator('.djs-context-pad .entry[data-action="append.end-event"]').click()
    ends = page.locator('g.djs-shape[data-element-id^="Event_"]')
    expect(ends).to_have_count(1)

    # Undo and redo, with the keyboard (on the focused canvas) and with the toolbar.
    _click_empty_canvas(page)
    page.keyboard.press("Control+z")
    expect(ends).to_have_count(0)
    page.keyboard.press("Control+y")
    expect(ends).to_have_count(1)
    page.get_by_role("button", name="Undo").click()
    expect(ends).to_have_count(0)
    page.get_by_role("button", name="Redo").click()
    expect(ends).to_have_count(1)

    # Zoom buttons change the canvas scale.
    scale = (
        "() => document.querySelector('.djs-container > svg .viewport').transform.baseVal"
        ".consolidate().matrix.a"
    )
    before = page.evaluate(scale)
    page.get_by_role("button", name="Zoom in").click()
    assert page.evaluate(scale) > before

    _select(page, user_task_id)
    _open_group(page, "User assignment")
    page.locator("#properties").get_by_label("Candidate groups").fill("legal")
    # The process itself: click the empty canvas, then name it and give it its key.
    _click_empty_canvas(page)
    expect(page.locator(".bio-properties-panel-header-type")).to_have_text(
        re.compile("process", re.I)
    )
    _open_group(page, "General")
    page.locator("#bio-properties-panel-id").fill("contract_signing")
    page.locator("#bio-properties-panel-name").fill("Contract signing")
    page.keyboard.press("Control+s")

    expect(page.locator("#modeler-status")).to_contain_text(
        "Version 1 of “Contract signing” deployed."
    )
    definition = ProcessDefinition.objects.get(key="contract_signing")
    assert definition.elements[user_task_id]["candidate_groups"] == ["legal"]
    assert definition.elements[user_task_id]["name"] == "Sign contract"


@pytest.fixture
def crm_connector():
    @connector("crm.lookup")
    def lookup(params, call):  # pragma: no cover - never called here
        return {}

    yield "crm.lookup"
    _REGISTRY.pop("crm.lookup", None)


def test_topic_offers_the_registered_connectors_and_versions_are_compared(
    page, designer, example_definitions, crm_connector, with_password
):
    login(page, with_password(designer))
    _open_modeler(page, "/processes/credit_check/edit/")
    _select(page, "check_credit_score")
    _open_group(page, "Implementation")

    topic = page.locator("#bio-properties-panel-externalTopic")
    expect(topic).to_have_value("http")
    options = topic.locator("option").all_inner_texts()
    assert options[0] == "<choose a connector>"
    assert [o.split(" - ")[0] for o in options[1:]] == [c["name"] for c in connector_choices()]
    assert "crm.lookup" in options and "http - Calls an HTTP API" in options
    retry = page.locator("#bio-properties-panel-batonRetryTimeCycle")
    expect(retry).to_have_value("R3/PT5S")

    topic.select_option("crm.lookup")
    retry.fill("R5/PT30S")
    _save(page)
    expect(page.locator("#modeler-status")).to_contain_text("Version 2 of “Credit check” deployed.")
    v2 = ProcessDefinition.objects.get(key="credit_check", version=2)
    assert 'camunda:topic="crm.lookup"' in v2.bpmn_xml
    assert "R5/PT30S" in v2.bpmn_xml

    # Download what is in the editor.
    with page.expect_download() as download:
        page.get_by_role("button", name="Download").click()
    assert download.value.suggested_filename == "credit_check.bpmn"
    assert 'camunda:topic="crm.lookup"' in Path(download.value.path()).read_text()

    page.get_by_role("link", name="Open Credit check").click()
    expect(page).to_have_url(re.compile(r"/processes/credit_check/$"))
    expect(page.locator("#diagram")).to_have_attribute("data-rendered", "true")
    expect(page.locator("#diff-summary")).to_contain_text("v1 → v2: 0 added, 0 removed, 1 changed")
    expect(page.locator(".diff-list.changed")).to_contain_text(
        "camunda:topic: “http” → “crm.lookup”"
    )
    expect(_shape(page, "check_credit_score")).to_have_class(re.compile(r"\bbaton-changed\b"))
    versions = page.locator("table.versions tbody tr")
    expect(versions).to_have_count(2)
    expect(versions.first).to_contain_text("dora_designer")
    expect(versions.last).to_contain_text("system")


def test_an_http_task_offers_the_named_connections(
    page, designer, example_definitions, with_password
):
    Connection.objects.create(name="crm", base_url="https://crm.example.com/api")
    login(page, with_password(designer))
    _open_modeler(page, "/processes/credit_check/edit/")
    _select(page, "check_credit_score")
    _open_group(page, "Implementation")

    choice = page.locator("#bio-properties-panel-batonConnection")
    expect(choice).to_have_value("")
    assert choice.locator("option").all_inner_texts()[1:] == ["crm - https://crm.example.com/api"]
    choice.select_option("crm")
    _save(page)
    expect(page.locator("#modeler-status")).to_contain_text("Version 2 of “Credit check” deployed.")
    v2 = ProcessDefinition.objects.get(key="credit_check", version=2)
    assert '<camunda:inputParameter name="connection">crm</camunda:inputParameter>' in v2.bpmn_xml
