"""What the browser gets (issue 14): a strict Content-Security-Policy on every page, diagram
XML only as a sandboxed download, throttled logins, redirects only within Baton, and task
completions that set only what the task's form declares."""

import pytest
from django.test import Client

from engine.models import ProcessInstance
from engine.services import start_instance
from tests.helpers import deploy_document

PASSWORD = "web-Security-pass-42"
EXPENSE = {"amount": 250, "description": "Taxi", "requester": "bob"}


@pytest.fixture
def expense_task(expense_definition, approver):
    instance = start_instance(key="expense_approval", variables=EXPENSE)
    return instance.human_tasks.get()


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def directives(header: str) -> dict[str, list[str]]:
    parts = [part.strip().split() for part in header.split(";") if part.strip()]
    return {part[0]: part[1:] for part in parts}


# --- Content-Security-Policy -----------------------------------------------------------------


@pytest.mark.django_db
def test_every_page_sends_a_strict_content_security_policy(
    expense_task, make_staff, example_definitions
):
    operator = make_staff("olga", "operators", "designers", "managers")
    instance = expense_task.instance
    pages = [
        "/accounts/login/",
        "/tasks/",
        f"/tasks/{expense_task.id}/",
        "/processes/",
        "/processes/expense_approval/",
        "/processes/expense_approval/edit/",
        "/processes/new/",
        "/processes/expense_approval/start/",
        "/admin/",
        "/admin/engine/processinstance/",
        f"/admin/engine/processinstance/{instance.pk}/change/",
        "/api/docs/",
        "/no-such-page/",
    ]
    # The modeler's expression editors add <style> elements: only its pages allow them.
    inline_styles = {"/processes/expense_approval/edit/", "/processes/new/"}
    client = signed_in(operator)
    for url in pages:
        response = client.get(url)
        assert response.status_code in (200, 404), (url, response.status_code)
        policy = directives(response["Content-Security-Policy"])
        assert policy["script-src"] == ["'self'"], url
        assert ("'unsafe-inline'" in policy["style-src"]) == (url in inline_styles), url
        assert policy["object-src"] == ["'none'"], url
        assert policy["frame-ancestors"] == ["'none'"], url
        assert policy["base-uri"] == ["'none'"], url


@pytest.mark.django_db
def test_no_page_carries_an_inline_script_handler_or_style(expense_task, make_staff):
    operator = make_staff("olga", "operators", "designers", "managers")
    client = signed_in(operator)
    instance = expense_task.instance
    for url in (
        "/tasks/",
        f"/tasks/{expense_task.id}/",
        "/processes/",
        "/processes/expense_approval/",
        "/processes/new/",
        f"/admin/engine/processinstance/{instance.pk}/change/",
        "/admin/engine/processinstance/delete-finished/",
        "/api/docs/",
    ):
        page = client.get(url).content.decode()
        for script in page.split("<script")[1:]:
            opening = script.split(">", 1)[0]
            assert "src=" in opening or 'type="application/json"' in opening, (url, opening)
        assert " onclick=" not in page and " onsubmit=" not in page, url
        assert "<style" not in page and ' style="' not in page, url


# --- diagram XML ---------------------------------------------------------------------------

SCRIPTED = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:html="http://www.w3.org/1999/xhtml" id="d" targetNamespace="x">
  <bpmn:process id="scripted" isExecutable="true">
    <bpmn:extensionElements><html:script>fetch('/xss-ran')</html:script>
      <html:img src="x" onerror="fetch('/xss-img')" /></bpmn:extensionElements>
    <bpmn:startEvent id="start" />
    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""


@pytest.mark.django_db
def test_diagram_xml_is_a_sandboxed_download(api_client_for, designer):
    deploy_document(SCRIPTED, "scripted.bpmn")
    for response in (
        api_client_for(designer).get("/api/v1/definitions/scripted/xml/"),
        signed_in(designer).get("/processes/scripted/download/"),
    ):
        assert response.status_code == 200
        assert response["Content-Disposition"].startswith("attachment;")
        assert response["X-Content-Type-Options"] == "nosniff"
        policy = directives(response["Content-Security-Policy"])
        assert policy["default-src"] == ["'none'"] and "sandbox" in policy
        assert "script-src" not in policy
        assert b"<html:script>" in response.content  # the file itself is unchanged


# --- logins ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_repeated_wrong_passwords_are_throttled(make_user, settings):
    user = make_user("ann")
    user.set_password(PASSWORD)
    user.save()
    client = Client()
    answers = [
        client.post("/accounts/login/", {"username": "ann", "password": f"wrong{i}"})
        for i in range(41)
    ]

    assert [a.status_code for a in answers[: settings.AXES_FAILURE_LIMIT - 1]] == [200] * (
        settings.AXES_FAILURE_LIMIT - 1
    )
    assert answers[40].status_code == 429
    assert b"Too many failed logins" in answers[40].content
    # Locked out: not even the right password gets in now.
    locked = client.post("/accounts/login/", {"username": "ann", "password": PASSWORD})
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_guessing_many_users_passwords_from_one_address_is_throttled(make_user, settings):
    for number in range(settings.AXES_FAILURE_LIMIT + 1):
        make_user(f"user{number}")
    client = Client()
    answers = [
        client.post("/accounts/login/", {"username": f"user{n}", "password": "guess"})
        for n in range(settings.AXES_FAILURE_LIMIT + 1)
    ]
    assert answers[0].status_code == 200
    assert answers[-1].status_code == 429
    # Another address is not locked out.
    other = Client(REMOTE_ADDR="192.0.2.7")
    assert other.post("/accounts/login/", {"username": "user0", "password": "x"}).status_code == 200


@pytest.mark.django_db
def test_a_claim_never_redirects_to_another_site(expense_task, approver):
    client = signed_in(approver)
    for target in ("https://evil.example/", "//evil.example/x", "http:/\\evil.example"):
        response = client.post(f"/tasks/{expense_task.id}/claim/", {"next": target})
        assert response.status_code == 302
        assert response["Location"] == f"/tasks/{expense_task.id}/", target
        client.post(f"/tasks/{expense_task.id}/unclaim/")
    inside = client.post(f"/tasks/{expense_task.id}/claim/", {"next": "/tasks/?tab=mine"})
    assert inside["Location"] == "/tasks/?tab=mine"


# --- completions -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_completion_sets_only_the_fields_of_the_task_s_form(
    expense_task, approver, api_client_for
):
    url = f"/api/v1/tasks/{expense_task.id}/complete/"
    refused = api_client_for(approver).post(
        url,
        {
            "variables": {
                "decision": "approve",
                "comment": "fine",
                "amount": 1,
                "requester": "mallory",
            }
        },
        format="json",
    )

    assert refused.status_code == 400
    assert refused["Content-Type"] == "application/problem+json"
    assert {e["field"] for e in refused.json()["errors"]} == {"amount", "requester"}
    instance = ProcessInstance.objects.get(pk=expense_task.instance_id)
    assert instance.status == "waiting"
    assert (instance.variables["amount"], instance.variables["requester"]) == (250, "bob")

    done = api_client_for(approver).post(
        url, {"variables": {"decision": "approve", "comment": "fine"}}, format="json"
    )
    assert done.status_code == 200, done.content
    instance.refresh_from_db()
    assert instance.variables["amount"] == 250 and instance.variables["decision"] == "approve"


OPEN_FORM = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="x">
  <bpmn:process id="open_form" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:userTask id="fill" camunda:candidateGroups="managers">
      <bpmn:extensionElements>
        <camunda:formData><camunda:formField id="note" type="string" /></camunda:formData>
        <camunda:properties>
          <camunda:property name="acceptUndeclaredVariables" value="true" />
        </camunda:properties>
      </bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="fill" />
    <bpmn:sequenceFlow id="f2" sourceRef="fill" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""


@pytest.mark.django_db
def test_a_diagram_may_let_a_task_accept_more_than_its_form(approver, api_client_for):
    deploy_document(OPEN_FORM, "open_form.bpmn")
    instance = start_instance(key="open_form", variables={})
    task = instance.human_tasks.get()
    done = api_client_for(approver).post(
        f"/api/v1/tasks/{task.id}/complete/",
        {"variables": {"note": "ok", "extra": 7}},
        format="json",
    )
    assert done.status_code == 200, done.content
    instance.refresh_from_db()
    assert (instance.variables["note"], instance.variables["extra"]) == ("ok", 7)


# --- what designers wrote is text everywhere -------------------------------------------------

MARKUP = '<img src=x onerror="fetch(1)">'
NAMED = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="x">
  <bpmn:process id="named" name="{MARKUP.replace("<", "&lt;").replace('"', "&quot;")}"
      isExecutable="true">
    <bpmn:documentation>{MARKUP.replace("<", "&lt;")}</bpmn:documentation>
    <bpmn:startEvent id="start" />
    <bpmn:userTask id="review" name="{MARKUP.replace("<", "&lt;").replace('"', "&quot;")}"
        camunda:candidateGroups="managers">
      <bpmn:documentation>{MARKUP.replace("<", "&lt;")}</bpmn:documentation>
    </bpmn:userTask>
    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="review" />
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""


@pytest.mark.django_db
def test_names_and_documentation_from_a_diagram_are_escaped_on_every_page(make_staff):
    deploy_document(NAMED, "named.bpmn")
    instance = start_instance(key="named", variables={"note": MARKUP})
    task = instance.human_tasks.get()
    person = make_staff("olga", "operators", "managers", "designers")
    client = signed_in(person)
    for url in (
        "/processes/",
        "/processes/named/",
        "/processes/named/edit/",
        "/tasks/",
        f"/tasks/{task.id}/",
        "/admin/engine/processinstance/",
        f"/admin/engine/processinstance/{instance.pk}/change/",
    ):
        page = client.get(url).content.decode()
        assert "<img src=x" not in page, url


def test_static_files_get_the_same_content_security_policy() -> None:
    # WhiteNoise answers before django-csp's middleware: an SVG could otherwise run script.
    page_policy = Client().get("/accounts/login/")["Content-Security-Policy"]
    static = Client().get("/static/baton/favicon.svg")
    assert static.status_code == 200
    assert static["Content-Security-Policy"] == page_policy
    assert directives(static["Content-Security-Policy"])["script-src"] == ["'self'"]
