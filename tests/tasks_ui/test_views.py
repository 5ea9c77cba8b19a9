"""The web inbox through Django's test client: every view and permission rule, forms per
field type, approve/reject buttons, and where a person lands after submitting."""

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from engine.models import HumanTask, ProcessInstance
from engine.services import claim_task, start_instance
from processes.services import deploy
from processes.validation import UploadedFile
from tests.helpers import SPIFF_EXAMPLES

pytestmark = pytest.mark.django_db
EXPENSE = {"amount": 250, "description": "Taxi", "requester": "bob"}

FIELDS_BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="x">
  <bpmn:process id="fields" name="Every field" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:userTask id="fill" name="Fill everything" camunda:candidateGroups="managers"
        camunda:formKey="all">
      <bpmn:extensionElements>
        <camunda:formData>
          <camunda:formField id="title" label="Title" type="string">
            <camunda:validation><camunda:constraint name="required" />
              <camunda:constraint name="minlength" config="3" />
              <camunda:constraint name="maxlength" config="10" /></camunda:validation>
          </camunda:formField>
          <camunda:formField id="code" label="Code" type="string">
            <camunda:validation><camunda:constraint name="pattern" config="[A-Z]{2}-[0-9]+" />
            </camunda:validation>
          </camunda:formField>
          <camunda:formField id="count" label="Count" type="long">
            <camunda:validation><camunda:constraint name="min" config="1" />
              <camunda:constraint name="max" config="5" /></camunda:validation>
          </camunda:formField>
          <camunda:formField id="urgent" label="Urgent?" type="boolean" />
          <camunda:formField id="when" label="When" type="date" />
          <camunda:formField id="colour" label="Colour" type="enum">
            <camunda:value id="red" name="Red" /><camunda:value id="blue" name="Blue" />
          </camunda:formField>
          <camunda:formField id="origin" label="Origin" type="string" defaultValue="web">
            <camunda:validation><camunda:constraint name="readonly" /></camunda:validation>
          </camunda:formField>
        </camunda:formData>
      </bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="fill" />
    <bpmn:sequenceFlow id="f2" sourceRef="fill" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""


def login(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def expense_task(expense_definition, make_user) -> HumanTask:
    instance = start_instance(
        key="expense_approval", variables=EXPENSE, business_key="E-7", actor=make_user("rita")
    )
    return instance.human_tasks.get()


def test_the_inbox_needs_a_login(client) -> None:
    response = client.get("/tasks/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_tabs_show_mine_my_groups_and_completed(expense_task, approver, approver2, outsider):
    page = login(approver).get("/tasks/").content.decode()  # nothing assigned: My groups
    assert "Approve expense" in page and "E-7" in page and 'aria-current="page">My groups' in page
    assert "amount: 250" in page  # key variables
    assert "Approve expense" not in login(outsider).get("/tasks/?tab=groups").content.decode()
    claim_task(task_id=expense_task.id, user=approver)
    assert "Approve expense" in login(approver).get("/tasks/?tab=mine").content.decode()
    assert "Approve expense" not in login(approver).get("/tasks/?tab=groups").content.decode()
    other = login(approver2).get("/tasks/?tab=groups").content.decode()
    assert "Approve expense" not in other  # claimed by someone else: not actionable
    login(approver).post(f"/tasks/{expense_task.id}/", {"decision": "approve"})
    done = login(approver).get("/tasks/?tab=completed").content.decode()
    assert "Approve expense" in done


def test_header_shows_name_groups_and_open_task_count(expense_task, approver):
    page = login(approver).get("/tasks/").content.decode()
    assert approver.username in page and "(managers)" in page
    assert 'id="open-task-count" title="Tasks waiting for you">1<' in page


def test_filter_search_sort_and_paginate(expense_definition, approver, make_user):
    requester = make_user("rita")
    for number in range(30):
        start_instance(
            key="expense_approval",
            variables=EXPENSE,
            business_key=f"E-{number:02}",
            actor=requester,
        )
    client = login(approver)
    first = client.get("/tasks/?tab=groups&sort=name").content.decode()
    assert "30 tasks" in first and "Page 1 of 2" in first
    assert "Page 2 of 2" in client.get("/tasks/?tab=groups&page=2").content.decode()
    found = client.get("/tasks/?tab=groups&q=E-07").content.decode()
    assert "1 task" in found and "E-07" in found
    assert "No unclaimed task" in client.get("/tasks/?tab=groups&process=nope").content.decode()


def test_htmx_refresh_returns_the_list_only(expense_task, approver):
    fragment = login(approver).get("/tasks/?tab=groups", HTTP_HX_REQUEST="true")
    body = fragment.content.decode()
    assert body.lstrip().startswith("{%") is False and 'id="task-list"' in body
    assert "<html" not in body and "Approve expense" in body


def test_task_page_permissions(expense_task, approver, outsider):
    assert login(approver).get(f"/tasks/{expense_task.id}/").status_code == 200
    forbidden = login(outsider).get(f"/tasks/{expense_task.id}/")
    assert forbidden.status_code == 403 and b"Not allowed" in forbidden.content
    assert login(approver).get("/tasks/00000000-0000-0000-0000-000000000000/").status_code == 404
    assert login(outsider).post(f"/tasks/{expense_task.id}/claim/").status_code == 403


def test_approve_and_reject_are_buttons(expense_task, approver):
    page = login(approver).get(f"/tasks/{expense_task.id}/").content.decode()
    assert 'name="decision" value="approve"' in page and 'name="decision" value="reject"' in page
    assert '<select name="decision"' not in page
    response = login(approver).post(
        f"/tasks/{expense_task.id}/", {"decision": "reject", "comment": "no receipt"}
    )
    assert response.status_code == 302 and response["Location"] == "/tasks/"
    instance = ProcessInstance.objects.get(pk=expense_task.instance_id)
    assert (instance.status, instance.variables["outcome"]) == ("completed", "rejected")
    assert instance.variables["comment"] == "no receipt"


def test_every_field_type_is_generated_and_validated(approver):
    deploy(name="fields", files=[UploadedFile("fields.bpmn", FIELDS_BPMN.encode())], actor=None)
    task = start_instance(key="fields").human_tasks.get()
    client = login(approver)
    page = client.get(f"/tasks/{task.id}/").content.decode()
    for snippet in (
        'name="title" maxlength="10" minlength="3"',
        'type="number" name="count"',
        'type="checkbox" name="urgent"',
        'type="date" name="when"',
        '<select name="colour"',
    ):
        assert snippet in page, snippet
    # The read-only field is shown with the task's data (its default), not as an input.
    assert 'name="origin"' not in page
    assert re.search(r'data-variable="origin">\s*<dt>Origin</dt>\s*<dd>web</dd>', page)
    bad = client.post(
        f"/tasks/{task.id}/",
        {"title": "ab", "code": "x1", "count": "9", "when": "someday", "colour": "green"},
    )
    assert bad.status_code == 400
    errors = bad.context["form"].errors
    assert set(errors) == {"title", "code", "count", "when", "colour"}
    assert "Count must be at most 5." in bad.content.decode()  # the engine's own message
    assert HumanTask.objects.get(pk=task.id).status == "open"  # nothing changed
    good = client.post(
        f"/tasks/{task.id}/",
        {
            "title": "Report",
            "code": "AB-12",
            "count": "2",
            "urgent": "on",
            "when": "2026-12-01",
            "colour": "blue",
            "origin": "hacked",
        },
    )
    assert good.status_code == 302
    variables = ProcessInstance.objects.get(pk=task.instance_id).variables
    assert variables["title"] == "Report" and variables["count"] == 2
    assert variables["urgent"] is True and variables["when"] == "2026-12-01"
    assert "origin" not in variables  # read-only: never taken from the browser


def test_the_next_task_of_the_same_instance_opens_at_once(parallel_definition, make_user):
    both = make_user("bea", "legal", "managers")
    instance = start_instance(key="parallel_review", variables={"document": "D-1"})
    legal = instance.human_tasks.get(element_id="legal_review")
    response = login(both).post(f"/tasks/{legal.id}/", {"legal_ok": "on", "legal_notes": "ok"})
    finance = instance.human_tasks.get(element_id="finance_review")
    assert response["Location"] == f"/tasks/{finance.id}/"
    last = login(both).post(f"/tasks/{finance.id}/", {"finance_ok": "on"}, follow=True)
    assert last.redirect_chain[-1][0] == "/tasks/"
    assert "The process is complete." in last.content.decode()


def test_claim_and_unclaim_from_the_page_and_the_list(expense_task, approver, approver2):
    client = login(approver)
    response = client.post(f"/tasks/{expense_task.id}/claim/", {"next": "/tasks/"})
    assert response["Location"] == "/tasks/"
    assert HumanTask.objects.get(pk=expense_task.id).assignee == approver.username
    other = login(approver2).get(f"/tasks/{expense_task.id}/").content.decode()
    assert f"Claimed by <strong>{approver.username}</strong>" in other
    assert 'value="approve"' not in other  # no form for someone else's claim
    # From "Assigned to me", a task given back leaves the list (a notice says where it went).
    row = client.post(f"/tasks/{expense_task.id}/unclaim/", {"tab": "mine"}, HTTP_HX_REQUEST="true")
    assert row.status_code == 200 and b"<tr" not in row.content
    assert "It is back under" in row.content.decode()
    assert HumanTask.objects.get(pk=expense_task.id).assignee is None


def test_completing_a_finished_task_says_so(expense_task, approver):
    client = login(approver)
    client.post(f"/tasks/{expense_task.id}/", {"decision": "approve"})
    page = client.get(f"/tasks/{expense_task.id}/").content.decode()
    assert "Completed by" in page and 'value="approve"' not in page


def test_processes_page_and_start_form(expense_definition, approver):
    client = login(approver)
    assert "Expense approval" in client.get("/processes/").content.decode()
    bad = client.post("/processes/expense_approval/start/", {"amount": "0", "description": ""})
    assert bad.status_code == 400 and ProcessInstance.objects.count() == 0
    assert "This field is required." in bad.content.decode()
    good = client.post(
        "/processes/expense_approval/start/",
        {"amount": "320", "description": "Lunch", "business_key": "E-5"},
    )
    instance = ProcessInstance.objects.get()
    assert (instance.business_key, instance.variables["amount"]) == ("E-5", 320)
    task = instance.human_tasks.get()
    assert good["Location"] == f"/tasks/{task.id}/"  # the starter is a manager: straight in


INSTRUCTIONS_BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="d" targetNamespace="x">
  <bpmn:process id="instructed" isExecutable="true">
    <bpmn:laneSet id="lanes"><bpmn:lane id="l1" name="managers">
      <bpmn:flowNodeRef>read</bpmn:flowNodeRef></bpmn:lane></bpmn:laneSet>
    <bpmn:startEvent id="start" />
    <bpmn:manualTask id="read" name="Read this">
      <bpmn:extensionElements>
        <spiffworkflow:instructionsForEndUser>**Hello {{ guest }}** from {{ place.city }}
&lt;script&gt;alert(1)&lt;/script&gt; [link](javascript:alert(2))
</spiffworkflow:instructionsForEndUser>
      </bpmn:extensionElements>
    </bpmn:manualTask>
    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="read" />
    <bpmn:sequenceFlow id="f2" sourceRef="read" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""


def test_a_variable_in_instructions_is_text_never_a_link(approver):
    deploy(name="i", files=[UploadedFile("i.bpmn", INSTRUCTIONS_BPMN.encode())], actor=None)
    instance = start_instance(
        key="instructed",
        variables={
            "guest": "[Pay here](https://evil.example/pay) <https://evil.example>\nPay now\n===",
            "place": {"city": "# Oslo\n\n[ref]: https://evil.example"},
        },
    )
    page = login(approver).get(f"/tasks/{instance.human_tasks.get().id}/").content.decode()
    assert "evil.example" in page  # shown as the text it is...
    assert 'href="https://evil.example' not in page  # ...and never as a link
    shown = page.split('class="instructions"')[1].split("</div>")[0]
    assert "<h1>" not in shown and "Pay now ===" in shown


def test_instructions_are_markdown_with_variables_and_sanitised(approver):
    deploy(name="i", files=[UploadedFile("i.bpmn", INSTRUCTIONS_BPMN.encode())], actor=None)
    instance = start_instance(
        key="instructed", variables={"guest": "<b>Ann</b>", "place": {"city": "Oslo"}}
    )
    task = instance.human_tasks.get()
    page = login(approver).get(f"/tasks/{task.id}/").content.decode()
    # The designer's Markdown is rendered; the starter's variable is text, not markup.
    assert "<strong>Hello &lt;b&gt;Ann&lt;/b&gt;</strong> from Oslo" in page
    # The diagram's XML travels as JSON data (escaped, never run); the markup is what counts.
    markup = re.sub(r'<script id="work-diagram-data"[^>]*>.*?</script>', "", page, flags=re.S)
    assert "<script>alert(1)" not in markup and "javascript:" not in markup
    done = login(approver).post(f"/tasks/{task.id}/")  # a manual task: just "Complete"
    assert done.status_code == 302
    instance.refresh_from_db()
    assert instance.status == "completed"


def test_a_spiffarena_json_schema_form_in_the_inbox(make_user, shared_dir):
    roles = shared_dir / SPIFF_EXAMPLES / "1-basic-concepts" / "1-6-roles"
    files = [
        UploadedFile(p.name, p.read_bytes())
        for p in sorted(roles.iterdir())
        if p.suffix in {".bpmn", ".json"} and not p.name.startswith(("test_", "process_"))
    ]
    deploy(name="roles", files=files, actor=None)
    ann = make_user("ann")
    instance = start_instance(key="Process_9wllce2", actor=ann)
    client = login(ann)
    intro = instance.human_tasks.get()
    client.post(f"/tasks/{intro.id}/")
    describe = instance.human_tasks.get(element_id="Activity_121gfc7")
    page = client.get(f"/tasks/{describe.id}/").content.decode()
    assert '<label for="id_location">Location' in page and "Costa Rica" in page
    bad = client.post(f"/tasks/{describe.id}/", {"location": "Mars"})
    assert bad.status_code == 400 and "location" in bad.context["form"].errors
    good = client.post(
        f"/tasks/{describe.id}/", {"location": "Spain", "season": "Fall", "activites": "Hiking"}
    )
    approve = instance.human_tasks.get(element_id="Activity_041y60h")
    assert good["Location"] == f"/tasks/{approve.id}/"  # ann owns the approver lane too
    instance.refresh_from_db()
    assert instance.variables["location"] == "Spain"
