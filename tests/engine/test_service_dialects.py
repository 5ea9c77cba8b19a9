"""Service tasks written in each dialect Baton reads, run on a real worker; and the shipped
credit-check example against Baton's own demo API."""

import pytest

from engine.models import HumanTask, ProcessInstance, ServiceJob
from engine.services import start_instance
from processes.services import deploy, deploy_examples
from processes.validation import UploadedFile
from tests.engine.service_fixtures import FakeApi, Reply, Workers, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

ZEEBE = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" id="d" targetNamespace="x">
  <bpmn:process id="zeebe_call" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:serviceTask id="call" name="Call">
      <bpmn:extensionElements>
        <zeebe:taskDefinition type="http" retries="2" />
        <zeebe:ioMapping>
          <zeebe:input source="=api + &quot;/zeebe&quot;" target="url" />
          <zeebe:input source="POST" target="method" />
          <zeebe:input source="={order: order}" target="json" />
          <zeebe:output source="=result.body.accepted" target="accepted" />
        </zeebe:ioMapping>
      </bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="call" />
    <bpmn:sequenceFlow id="f2" sourceRef="call" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""

SPIFF = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="d" targetNamespace="x">
  <bpmn:process id="spiff_call" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:serviceTask id="call" name="Call">
      <bpmn:extensionElements>
        <spiffworkflow:serviceTaskOperator id="http" resultVariable="response">
          <spiffworkflow:parameters>
            <spiffworkflow:parameter id="url" type="str" value="api + '/spiff'" />
            <spiffworkflow:parameter id="query" type="any" value="{'q': term}" />
          </spiffworkflow:parameters>
        </spiffworkflow:serviceTaskOperator>
        <spiffworkflow:postScript>found = response["body"]["hits"]</spiffworkflow:postScript>
      </bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="call" />
    <bpmn:sequenceFlow id="f2" sourceRef="call" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""


def run(key: str, xml: str, variables: dict) -> ProcessInstance:
    deploy(name=key, files=[UploadedFile(f"{key}.bpmn", xml.encode())], actor=None)
    instance = start_instance(key=key, variables=variables)

    def settled() -> bool:
        instance.refresh_from_db()
        return instance.status not in ("running",)

    wait_until(settled, what=f"{key} to settle")
    return instance


def test_camunda_8_task_definition_and_io_mapping(celery_workers: Workers, fake_api: FakeApi):
    fake_api.reply("/zeebe", Reply(body={"accepted": True}))
    instance = run("zeebe_call", ZEEBE, {"api": fake_api.base_url, "order": "A-7"})
    assert instance.status == "completed"
    assert instance.variables["accepted"] is True
    [request] = fake_api.requests_to("/zeebe")
    assert request.method == "POST" and request.body == b'{"order":"A-7"}'
    assert ServiceJob.objects.get(instance=instance).max_attempts == 2


def test_spiffarena_service_task_operator(celery_workers: Workers, fake_api: FakeApi):
    fake_api.reply("/spiff", Reply(body={"hits": 3}))
    instance = run("spiff_call", SPIFF, {"api": fake_api.base_url, "term": "baton"})
    assert instance.status == "completed"
    assert instance.variables["response"]["body"] == {"hits": 3}
    assert instance.variables["found"] == 3  # the post-script ran after the result arrived
    [request] = fake_api.requests_to("/spiff")
    assert request.path == "/spiff?q=baton"


def start_credit_check(customer_id: str) -> ProcessInstance:
    instance = start_instance(
        key="credit_check", variables={"customer_id": customer_id, "amount": 5000}
    )

    def settled() -> bool:
        instance.refresh_from_db()
        return instance.status != "running"

    wait_until(settled, what="the credit check to call the demo API")
    return instance


def test_the_credit_check_example_against_the_demo_api(celery_workers: Workers) -> None:
    deploy_examples()
    good = start_credit_check("C-4")  # the demo API scores C-4 at 822
    assert (good.status, good.variables["score"]) == ("waiting", 822)
    assert HumanTask.objects.get(instance=good, status="open").element_id == "approve_credit"

    low = start_credit_check("C-2")  # 418: declined without a person
    assert (low.status, low.variables["outcome"]) == ("completed", "declined")

    unknown = start_credit_check("unknown-9")  # 404, caught by the boundary error event
    assert unknown.status == "waiting"
    task = HumanTask.objects.get(instance=unknown, status="open")
    assert task.element_id == "check_customer_data"
    assert unknown.variables["error"]["code"] == "HTTP_404"


def test_spiffarena_http_get_request_command(celery_workers: Workers, fake_api: FakeApi):
    fake_api.reply("/spiff", Reply(body={"hits": 5}))
    xml = (
        SPIFF.replace('id="http"', 'id="http/GetRequest"')
        .replace('id="query"', 'id="params"')
        .replace("spiff_call", "spiff_get")
    )
    xml = xml.replace('response["body"]["hits"]', 'response["hits"]')
    instance = run("spiff_get", xml, {"api": fake_api.base_url, "term": "x"})
    assert instance.status == "completed"
    # SpiffArena's shape for its http/* commands: the response body itself.
    assert instance.variables["response"] == {"hits": 5}
    assert instance.variables["found"] == 5
    [request] = fake_api.requests_to("/spiff")
    assert (request.method, request.path) == ("GET", "/spiff?q=x")
