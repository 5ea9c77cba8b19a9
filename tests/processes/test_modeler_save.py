"""The modeler's save endpoint: session auth, CSRF, designers only, validation errors with
element ids, and nothing stored unless the diagram deploys."""

import json

import pytest
from django.test import Client

from processes.models import Deployment, DeploymentFile, ProcessDefinition
from tests.helpers import build_bpmn, line_containing

SAVE_URL = "/processes/modeler/save/"


def post(client: Client, body, **extra):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(SAVE_URL, data=data, content_type="application/json", **extra)


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_designer_saves_version_1_then_2_and_an_unchanged_diagram_is_no_new_version(designer):
    client = client_for(designer)

    response = post(client, {"xml": build_bpmn("tiny"), "file_name": "tiny.bpmn"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["created"] is True
    assert body["message"] == "Version 1 of “Tiny process” deployed."
    assert body["definitions"] == [
        {
            "key": "tiny",
            "version": 1,
            "name": "Tiny process",
            "created": True,
            "url": "/processes/tiny/",
            "edit_url": "/processes/tiny/edit/",
            "start_url": "/processes/tiny/start/",
        }
    ]
    definition = ProcessDefinition.objects.get(key="tiny")
    assert definition.deployment.deployed_by == designer
    assert definition.file_name == "tiny.bpmn"
    assert definition.elements["review"]["candidate_groups"] == ["managers"]

    unchanged = post(client, {"xml": build_bpmn("tiny"), "file_name": "tiny.bpmn"})
    assert unchanged.status_code == 200
    assert unchanged.json()["created"] is False
    assert unchanged.json()["message"] == "Nothing changed: version 1 of “Tiny process” is current."

    changed = post(client, {"xml": build_bpmn("tiny", candidate_groups="legal")})
    assert changed.status_code == 201
    assert changed.json()["definitions"][0]["version"] == 2
    assert ProcessDefinition.objects.filter(key="tiny").count() == 2


def test_validation_errors_name_the_element_and_nothing_is_stored(designer):
    xml = build_bpmn("tiny", script="total = (1 +")

    response = post(client_for(designer), {"xml": xml, "file_name": "tiny.bpmn"})

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["title"] == "The diagram cannot be deployed"
    (error,) = body["errors"]
    assert error["element_id"] == "prepare"
    assert error["file"] == "tiny.bpmn"
    assert error["line"] == line_containing(xml, "total = (1 +")
    assert error["message"].startswith("The script is not valid Python")
    assert not Deployment.objects.exists()
    assert not DeploymentFile.objects.exists()


def test_an_unknown_connector_is_an_error_on_the_service_task(designer):
    xml = (
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" '
        'id="d" targetNamespace="x">'
        '<bpmn:process id="svc" isExecutable="true">'
        '<bpmn:startEvent id="s"/><bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="call"/>'
        '<bpmn:serviceTask id="call"><bpmn:extensionElements>'
        '<spiffworkflow:serviceTaskOperator id="crm.nowhere"/>'
        "</bpmn:extensionElements></bpmn:serviceTask>"
        '<bpmn:sequenceFlow id="f2" sourceRef="call" targetRef="e"/><bpmn:endEvent id="e"/>'
        "</bpmn:process></bpmn:definitions>"
    )

    response = post(client_for(designer), {"xml": xml})

    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["element_id"] == "call"
    assert error["message"].startswith("Unknown connector 'crm.nowhere'; registered: ")


def test_a_saved_version_of_another_version_is_not_overwritten(designer):
    client = client_for(designer)
    post(client, {"xml": build_bpmn("tiny")})
    response = post(client, {"xml": build_bpmn("tiny", script="(")})
    assert response.status_code == 400
    assert list(ProcessDefinition.objects.values_list("version", flat=True)) == [1]


def test_someone_outside_designers_gets_403_and_nothing_is_stored(approver):
    response = post(client_for(approver), {"xml": build_bpmn("tiny")})

    assert response.status_code == 403
    assert response.json()["detail"] == (
        "Only members of the designers group may deploy processes."
    )
    assert not Deployment.objects.exists()


def test_an_invalid_diagram_from_someone_outside_designers_is_refused_as_not_allowed(approver):
    response = post(client_for(approver), {"xml": "<not xml"})
    assert response.status_code == 403


def test_anonymous_gets_401(db):
    response = post(Client(), {"xml": build_bpmn("tiny")})

    assert response.status_code == 401
    assert response.json()["title"] == "Not signed in"
    assert not Deployment.objects.exists()


def test_a_post_without_the_csrf_token_is_refused(designer):
    client = Client(enforce_csrf_checks=True)
    client.force_login(designer)

    response = post(client, {"xml": build_bpmn("tiny")})

    assert response.status_code == 403
    assert not Deployment.objects.exists()


def test_the_csrf_token_of_the_page_lets_the_save_through(designer):
    client = Client(enforce_csrf_checks=True)
    client.force_login(designer)
    page = client.get("/processes/new/")
    token = page.cookies["csrftoken"].value

    response = post(client, {"xml": build_bpmn("tiny")}, HTTP_X_CSRFTOKEN=token)

    assert response.status_code == 201, response.content


def test_only_post_is_allowed(designer):
    assert client_for(designer).get(SAVE_URL).status_code == 405


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ("{not json", "The request body is not JSON."),
        ("[1, 2]", "The request body is not valid."),
        ({"xml": ""}, "The request body is not valid."),
        ({"xml": 42}, "The request body is not valid."),
        ({"diagram": "<x/>"}, "The request body is not valid."),
        (b"\xff\xfe", "The request body is not JSON."),
        ('{"xml": "\\ud800"}', "The diagram holds characters that are not valid Unicode."),
    ],
)
def test_bad_bodies_get_400_and_change_nothing(designer, body, detail):
    response = post(client_for(designer), body)

    assert response.status_code == 400
    assert response.json()["detail"] == detail
    assert not Deployment.objects.exists()


def test_malformed_xml_is_a_400_with_the_line(designer):
    response = post(client_for(designer), {"xml": "<definitions>\n<oops", "file_name": "x.bpmn"})

    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["file"] == "x.bpmn"
    assert error["message"].startswith("The XML is malformed")


def test_a_diagram_over_the_size_limit_is_refused(designer, settings):
    settings.BATON_MAX_FILE_BYTES = 1000

    response = post(client_for(designer), {"xml": build_bpmn("tiny") + " " * 1000})

    assert response.status_code == 400
    assert "the limit is 1000 bytes per file" in response.json()["errors"][0]["message"]
    assert not Deployment.objects.exists()


def test_a_request_body_over_django_s_limit_is_refused(designer, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000

    response = post(client_for(designer), {"xml": build_bpmn("tiny") + " " * 1000})

    assert response.status_code == 400
    assert response.json()["detail"] == "The diagram is too large to be deployed."


@pytest.mark.parametrize("file_name", ["../../etc/passwd.bpmn", "a b.bpmn", "x.txt", 7, None])
def test_unsafe_file_names_are_replaced(designer, file_name):
    response = post(client_for(designer), {"xml": build_bpmn("tiny"), "file_name": file_name})

    assert response.status_code == 201
    assert ProcessDefinition.objects.get().file_name == "diagram.bpmn"
