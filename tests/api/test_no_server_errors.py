"""Diagrams and payloads that used to answer 500 (issue 19): each is a 4xx problem or an
instance in incident, through the REST API."""

import itertools

import pytest

from engine.models import InstanceEvent, ProcessInstance
from tests.helpers import BPMN_HEADER, line_containing

SPIFF_HEADER = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" '
    'id="d" targetNamespace="http://bpmn.io/schema/bpmn">\n'
)
CORRELATION = """  <bpmn:collaboration id="c">
    <bpmn:participant id="p" processRef="{process}" />
    <bpmn:correlationKey id="ck" name="table_key">
      <bpmn:correlationPropertyRef>table_number</bpmn:correlationPropertyRef>
    </bpmn:correlationKey>
  </bpmn:collaboration>
  <bpmn:correlationProperty id="table_number" name="table_number">
    <bpmn:correlationPropertyRetrievalExpression messageRef="order_dispatch">
      <bpmn:formalExpression>table_number</bpmn:formalExpression>
    </bpmn:correlationPropertyRetrievalExpression>
  </bpmn:correlationProperty>
  <bpmn:message id="order_dispatch" name="order_dispatch" />
"""


def spiff_waiter(*, sender: bool = False) -> str:
    """start -> [user task `fill` -> send task `notify` (sends `order`)] -> receive task
    `served` (correlated on table_number) -> end."""
    nodes = ["start", *(["fill", "notify"] if sender else []), "served", "end"]
    flows = "".join(
        f'    <bpmn:sequenceFlow id="f{i}" sourceRef="{a}" targetRef="{b}" />\n'
        for i, (a, b) in enumerate(itertools.pairwise(nodes))
    )
    send = (
        '    <bpmn:userTask id="fill" />\n'
        '    <bpmn:sendTask id="notify" messageRef="order_dispatch"><bpmn:extensionElements>'
        "<spiffworkflow:messagePayload>order</spiffworkflow:messagePayload>"
        "</bpmn:extensionElements></bpmn:sendTask>\n"
    )
    return (
        SPIFF_HEADER
        + CORRELATION.format(process="waiter")
        + '  <bpmn:process id="waiter" isExecutable="true">\n'
        + '    <bpmn:startEvent id="start" />\n'
        + (send if sender else "")
        + '    <bpmn:receiveTask id="served" messageRef="order_dispatch" />\n'
        + '    <bpmn:endEvent id="end" />\n'
        + flows
        + "  </bpmn:process>\n</bpmn:definitions>\n"
    )


@pytest.fixture
def designer_client(api_client_for, designer):
    return api_client_for(designer)


@pytest.fixture
def client(api_client_for, make_user):
    return api_client_for(make_user("ian", "integrations", "managers"))


def deploy(designer_client, document: str) -> None:
    response = designer_client.post(
        "/api/v1/deployments/", {"name": "d", "bpmn_xml": document}, format="json"
    )
    assert response.status_code == 201, response.content


def assert_problem(response, *statuses: int) -> dict:
    assert response.status_code in statuses, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    return response.json()


def test_a_message_whose_payload_lacks_the_correlation_value_is_a_4xx(designer_client, client):
    deploy(designer_client, spiff_waiter())
    started = client.post(
        "/api/v1/definitions/waiter/start/", {"variables": {"table_number": 5}}, format="json"
    )
    assert started.status_code == 201, started.content
    response = client.post(
        "/api/v1/messages/",
        {"name": "order_dispatch", "variables": {"dish": "soup"}},
        format="json",
    )
    body = assert_problem(response, 400, 404, 409, 422)
    assert "correlation" in body["detail"]
    instance = ProcessInstance.objects.get()
    assert instance.status == ProcessInstance.Status.WAITING


def test_a_correlation_that_cannot_be_read_after_a_completion_is_an_incident(
    designer_client, client
):
    """Completing `fill` runs on into `notify`, whose message lacks the correlation property
    the receive task after it waits on: the instance is in incident at `notify`, recorded."""
    deploy(designer_client, spiff_waiter(sender=True))
    started = client.post(
        "/api/v1/definitions/waiter/start/", {"variables": {"order": {}}}, format="json"
    )
    assert started.status_code == 201, started.content
    (task,) = started.json()["open_tasks"]
    response = client.post(f"/api/v1/tasks/{task['id']}/complete/", {}, format="json")
    assert response.status_code == 200, response.content
    instance = ProcessInstance.objects.get()
    assert instance.status == ProcessInstance.Status.INCIDENT
    assert instance.incident is not None and instance.incident["element_id"] == "notify"
    assert "table_number" in instance.incident["error"]
    assert InstanceEvent.objects.filter(type="incident", element_id="notify").exists()


def test_a_business_rule_task_without_a_decision_is_refused_at_deploy(designer_client):
    document = (
        BPMN_HEADER.format(process_id="rules")
        + """  <bpmn:process id="rules" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:businessRuleTask id="decide" name="Decide" />
    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="decide" />
    <bpmn:sequenceFlow id="f2" sourceRef="decide" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""
    )
    response = designer_client.post(
        "/api/v1/deployments/", {"name": "d", "bpmn_xml": document}, format="json"
    )
    body = assert_problem(response, 400)
    (error,) = body["errors"]
    assert error["element_id"] == "decide"
    assert error["line"] == line_containing(document, 'id="decide"')
    assert "decisionRef" in error["message"]


def test_a_missing_multi_instance_collection_is_an_incident(designer_client, client):
    document = (
        BPMN_HEADER.format(process_id="each")
        + """  <bpmn:process id="each" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:scriptTask id="greet" scriptFormat="python">
      <bpmn:multiInstanceLoopCharacteristics camunda:collection="people"
        camunda:elementVariable="who" />
      <bpmn:script>greeting = "hi " + who</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="greet" />
    <bpmn:sequenceFlow id="f2" sourceRef="greet" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""
    )
    deploy(designer_client, document)
    response = client.post("/api/v1/definitions/each/start/", {"variables": {}}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "incident"
    assert response.json()["incident"]["element_id"] == "greet"


def test_an_idempotent_start_into_incident_answers_201(designer_client, client):
    document = (
        BPMN_HEADER.format(process_id="fails")
        + """  <bpmn:process id="fails" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:scriptTask id="divide" scriptFormat="python">
      <bpmn:script>x = 1 / 0</bpmn:script></bpmn:scriptTask>
    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="divide" />
    <bpmn:sequenceFlow id="f2" sourceRef="divide" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""
    )
    deploy(designer_client, document)
    url = "/api/v1/definitions/fails/start/"
    first = client.post(url, {"variables": {}}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == 201, first.content
    assert first.json()["status"] == "incident"
    again = client.post(url, {"variables": {}}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert again.status_code == 201 and again.json() == first.json()


def test_starting_by_hand_a_process_that_starts_on_a_message_is_a_409(designer_client, client):
    document = (
        BPMN_HEADER.format(process_id="on_paid")
        + """  <bpmn:message id="m_paid" name="paid" />
  <bpmn:process id="on_paid" isExecutable="true">
    <bpmn:startEvent id="start">
      <bpmn:messageEventDefinition messageRef="m_paid" /></bpmn:startEvent>
    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""
    )
    deploy(designer_client, document)
    response = client.post("/api/v1/definitions/on_paid/start/", {}, format="json")
    body = assert_problem(response, 409)
    assert "starts when message 'paid' arrives" in body["detail"]
    assert not ProcessInstance.objects.exists()
