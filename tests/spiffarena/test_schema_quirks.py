"""Departures from the BPMN schema that SpiffArena's models carry and SpiffWorkflow runs: they
deploy, with a warning in the deploy response (API and modeler page), and run as drawn."""

import json

import pytest
from django.test import Client

from engine.models import ProcessInstance
from engine.services import start_instance
from processes.validation import UploadedFile, parse_deployment
from tests.helpers import BPMN_HEADER, line_containing

pytestmark = pytest.mark.django_db
DEPLOYMENTS = "/api/v1/deployments/"
SPIFF_HEADER = BPMN_HEADER.replace(
    "xmlns:camunda=",
    'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" xmlns:camunda=',
)


def document(body: str, process_id: str = "quirky") -> str:
    return (
        SPIFF_HEADER.format(process_id=process_id)
        + f'  <bpmn:process id="{process_id}" isExecutable="true">\n'
        + body
        + "  </bpmn:process>\n</bpmn:definitions>\n"
    )


DANGLING = document(
    '    <bpmn:startEvent id="start" />\n'
    '    <bpmn:sequenceFlow id="flow_1" sourceRef="start" targetRef="end" />\n'
    '    <bpmn:sequenceFlow id="Flow_loose" />\n'
    '    <bpmn:endEvent id="end" />\n'
)

MESSAGE_REF = (
    SPIFF_HEADER.format(process_id="quirky")
    + '  <bpmn:message id="go" name="go" />\n'
    + '  <bpmn:process id="quirky" isExecutable="true">\n'
    + '    <bpmn:startEvent id="start" messageRef="go" />\n'
    + '    <bpmn:sequenceFlow id="flow_1" sourceRef="start" targetRef="end" />\n'
    + '    <bpmn:endEvent id="end" />\n'
    + "  </bpmn:process>\n</bpmn:definitions>\n"
)

SHARED_ITEM_ID = document(
    '    <bpmn:startEvent id="start" />\n'
    '    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="edit" />\n'
    '    <bpmn:scriptTask id="edit" scriptFormat="python">\n'
    '      <bpmn:multiInstanceLoopCharacteristics isSequential="true">\n'
    "        <bpmn:loopDataInputRef>names</bpmn:loopDataInputRef>\n"
    "        <bpmn:loopDataOutputRef>names_out</bpmn:loopDataOutputRef>\n"
    '        <bpmn:inputDataItem id="name" name="name" />\n'
    '        <bpmn:outputDataItem id="name" name="name" />\n'
    "      </bpmn:multiInstanceLoopCharacteristics>\n"
    "      <bpmn:script>name = name.upper()</bpmn:script>\n"
    "    </bpmn:scriptTask>\n"
    '    <bpmn:sequenceFlow id="f2" sourceRef="edit" targetRef="end" />\n'
    '    <bpmn:endEvent id="end" />\n'
)


def test_a_sequence_flow_without_source_and_target_deploys_with_a_warning(api_client_for, designer):
    response = api_client_for(designer).post(
        DEPLOYMENTS, {"bpmn_xml": DANGLING, "name": "quirky"}, format="json"
    )
    assert response.status_code == 201, response.content
    [warning] = response.json()["warnings"]
    assert warning["element_id"] == "Flow_loose"
    assert warning["line"] == line_containing(DANGLING, "Flow_loose")
    assert "no sourceRef and no targetRef" in warning["message"]

    instance = start_instance(key="quirky", actor=designer)
    assert instance.status == ProcessInstance.Status.COMPLETED


def test_a_message_ref_attribute_on_a_start_event_deploys_with_a_warning() -> None:
    parsed = parse_deployment([UploadedFile("quirky.bpmn", MESSAGE_REF.encode())])
    [warning] = parsed.warnings
    assert (warning.element_id, warning.line) == (
        "start",
        line_containing(MESSAGE_REF, 'id="start"'),
    )
    assert "messageRef" in warning.message


def test_input_and_output_items_sharing_an_id_deploy_and_edit_items_in_place(designer) -> None:
    client = Client()
    client.force_login(designer)
    response = client.post(
        "/processes/modeler/save/",
        data=json.dumps({"xml": SHARED_ITEM_ID, "file_name": "quirky.bpmn"}),
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert [w["element_id"] for w in body["warnings"]] == ["name"]
    assert "Deployed despite" in body["message"]

    instance = start_instance(key="quirky", actor=designer, variables={"names": ["ann", "bob"]})
    assert instance.status == ProcessInstance.Status.COMPLETED
    assert instance.variables["names_out"] == ["ANN", "BOB"]


def test_a_duplicate_flow_element_id_is_still_refused() -> None:
    from processes.validation import DeploymentInvalid

    twice = DANGLING.replace(
        '<bpmn:endEvent id="end" />', '<bpmn:endEvent id="end" /><bpmn:task id="end" />'
    )
    with pytest.raises(DeploymentInvalid, match=r"BPMN 2\.0 schema"):
        parse_deployment([UploadedFile("quirky.bpmn", twice.encode())])
