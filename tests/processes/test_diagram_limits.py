"""Diagrams are capped in flow elements, XML depth and elements in a row, with a 400 that names
the file and the limit, before SpiffWorkflow reads them; never a RecursionError."""

import json
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from engine.services import start_instance
from processes.models import Deployment, ProcessDefinition
from tests.api.test_endpoints import problem
from tests.helpers import BPMN_HEADER, build_bpmn, deploy_document

DEPLOYMENTS_URL = "/api/v1/deployments/"
FOOTER = "  </bpmn:process>\n</bpmn:definitions>\n"


def wide(tasks: int) -> str:
    """start -> parallel split -> `tasks` tasks -> parallel join -> end: 3 * tasks + 6
    flow elements, few bytes each."""
    parts = [
        BPMN_HEADER.format(process_id="wide"),
        '  <bpmn:process id="wide" isExecutable="true">\n'
        '<bpmn:startEvent id="s"/><bpmn:parallelGateway id="p"/>'
        '<bpmn:parallelGateway id="j"/><bpmn:endEvent id="e"/>\n'
        '<bpmn:sequenceFlow id="fs" sourceRef="s" targetRef="p"/>'
        '<bpmn:sequenceFlow id="fe" sourceRef="j" targetRef="e"/>\n',
    ]
    parts += [
        f'<bpmn:task id="t{i}"/><bpmn:sequenceFlow id="a{i}" sourceRef="p" targetRef="t{i}"/>'
        f'<bpmn:sequenceFlow id="b{i}" sourceRef="t{i}" targetRef="j"/>\n'
        for i in range(tasks)
    ]
    return "".join(parts) + FOOTER


def chain(length: int, tag: str = "task", process_id: str = "chain") -> str:
    """start -> `length` elements one after the other -> end: 2 * length + 3 flow elements."""
    parts = [
        BPMN_HEADER.format(process_id=process_id),
        f'  <bpmn:process id="{process_id}" isExecutable="true">\n<bpmn:startEvent id="s"/>\n',
    ]
    previous = "s"
    for i in range(length):
        parts.append(
            f'<bpmn:{tag} id="t{i}"/>'
            f'<bpmn:sequenceFlow id="f{i}" sourceRef="{previous}" targetRef="t{i}"/>\n'
        )
        previous = f"t{i}"
    parts.append(
        f'<bpmn:endEvent id="e"/>'
        f'<bpmn:sequenceFlow id="fe" sourceRef="{previous}" targetRef="e"/>\n'
    )
    return "".join(parts) + FOOTER


@pytest.fixture
def designer_client(api_client_for, designer):
    return api_client_for(designer)


def deploy_files(client, files: dict[str, str | bytes]) -> Any:
    uploads = [
        SimpleUploadedFile(name, content.encode() if isinstance(content, str) else content)
        for name, content in files.items()
    ]
    return client.post(DEPLOYMENTS_URL, {"files": uploads}, format="multipart")


def refused(response) -> list[dict]:
    body = problem(response, 400)
    assert "RecursionError" not in json.dumps(body)
    assert not Deployment.objects.exists() and not ProcessDefinition.objects.exists()
    return body["errors"]


ELEMENT_LIMIT = "more than 5000 flow elements"


def test_a_36k_element_diagram_under_the_byte_caps_is_refused_at_deploy(designer_client, settings):
    document = wide(12_000)
    assert len(document.encode()) < settings.BATON_MAX_FILE_BYTES
    (error,) = refused(deploy_files(designer_client, {"wide.bpmn": document}))
    assert error["file"] == "wide.bpmn"
    assert ELEMENT_LIMIT in error["message"] and "BATON_MAX_DIAGRAM_ELEMENTS" in error["message"]
    assert error["line"] and error["element_id"]  # where the count passed the limit


def test_a_50k_element_chain_gets_the_same_clear_400(designer_client, settings):
    document = chain(25_000)
    settings.BATON_MAX_FILE_BYTES = settings.BATON_MAX_DEPLOYMENT_BYTES  # only elements count
    (error,) = refused(deploy_files(designer_client, {"chain.bpmn": document}))
    assert error["file"] == "chain.bpmn"
    assert ELEMENT_LIMIT in error["message"]


def test_a_chain_within_the_element_cap_but_too_long_to_parse_is_a_clear_400(designer_client):
    (error,) = refused(deploy_files(designer_client, {"chain.bpmn": chain(1000)}))
    assert error["file"] == "chain.bpmn"
    assert "more than 250 elements in a row" in error["message"]
    assert error["element_id"] == "t249"  # the 251st element from the start event


def test_a_chain_at_the_limit_deploys_and_runs(db):
    # start + 248 events + end = 250 elements in a row; none waits, so one start runs them all.
    deploy_document(chain(248, tag="intermediateThrowEvent"), name="chain.bpmn")
    instance = start_instance(key="chain")
    assert instance.status == "completed"


def test_the_element_count_runs_across_the_files_of_a_deployment(designer_client, settings):
    settings.BATON_MAX_DIAGRAM_ELEMENTS = 9  # build_bpmn() has 5 flow elements
    files: dict[str, str | bytes] = {"a.bpmn": build_bpmn("first"), "b.bpmn": build_bpmn("second")}
    (error,) = refused(deploy_files(designer_client, files))
    assert error["file"] == "b.bpmn"
    assert "more than 9 flow elements" in error["message"]

    settings.BATON_MAX_DIAGRAM_ELEMENTS = 10
    assert deploy_files(designer_client, files).status_code == 201


@pytest.mark.parametrize("depth", [70, 300])  # 300: deeper than libxml2 itself allows
def test_xml_nested_deeper_than_the_limit_is_refused(designer_client, depth):
    nesting = "<camunda:properties>" * depth + "</camunda:properties>" * depth
    document = build_bpmn().replace(
        '<bpmn:startEvent id="start" name="Start" />',
        '<bpmn:startEvent id="start" name="Start">\n'
        f"<bpmn:extensionElements>{nesting}</bpmn:extensionElements></bpmn:startEvent>",
    )
    (error,) = refused(deploy_files(designer_client, {"deep.bpmn": document}))
    assert error["file"] == "deep.bpmn"
    assert "deeper than 64 levels" in error["message"]
    assert "BATON_MAX_XML_DEPTH" in error["message"]
    assert error["line"] == 5


def test_a_json_file_nested_too_deep_is_refused(designer_client):
    form = "[" * 100_000 + "]" * 100_000
    files: dict[str, str | bytes] = {"diagram.bpmn": build_bpmn(), "form.json": form}
    (error,) = refused(deploy_files(designer_client, files))
    assert error["file"] == "form.json"
    assert "deeper than 64 levels" in error["message"]


def test_the_modeler_s_save_names_the_limit_too(designer):
    from django.test import Client

    browser = Client()
    browser.force_login(designer)
    response = browser.post(
        "/processes/modeler/save/",
        content_type="application/json",
        data=json.dumps({"xml": wide(2000), "file_name": "wide.bpmn"}),
    )
    assert response.status_code == 400
    assert ELEMENT_LIMIT in response.json()["errors"][0]["message"]
    assert not ProcessDefinition.objects.exists()
