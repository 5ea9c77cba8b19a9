"""SpiffArena's `http/*` commands leave the response body in the result variable (parsed
JSON, or `{"raw_response": text}`), as its connector proxy does; Baton's own `http`
connector keeps `{status, headers, body}` in every dialect."""

import pytest

from engine.models import ServiceJob
from engine.services import start_instance
from engine.services.job_runs import execute_service_job
from processes.services import deploy
from processes.validation import UploadedFile
from tests.engine.service_fixtures import FakeApi, Reply, jobs_for_no_worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SPIFF = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="d" targetNamespace="x">
  <bpmn:process id="KEY" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:serviceTask id="call" name="Call">
      <bpmn:extensionElements>
        <spiffworkflow:serviceTaskOperator id="OPERATOR" resultVariable="response">
          <spiffworkflow:parameters>
            <spiffworkflow:parameter id="url" type="str" value="api + '/PATH'" />
          </spiffworkflow:parameters>
        </spiffworkflow:serviceTaskOperator>
      </bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="call" />
    <bpmn:sequenceFlow id="f2" sourceRef="call" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""


def run(key: str, operator: str, path: str, api: FakeApi) -> dict:
    xml = SPIFF.replace("KEY", key).replace("OPERATOR", operator).replace("PATH", path)
    deploy(name=key, files=[UploadedFile(f"{key}.bpmn", xml.encode())], actor=None)
    with jobs_for_no_worker():
        instance = start_instance(key=key, variables={"api": api.base_url})
    execute_service_job(str(ServiceJob.objects.get(instance=instance).id))
    instance.refresh_from_db()
    assert instance.status == "completed", instance.incident
    return instance.variables["response"]


def test_spiffarena_get_request_gives_the_json_body(fake_api: FakeApi) -> None:
    fake_api.reply("/order", Reply(body={"id": 7, "lines": [1, 2]}))
    assert run("get_json", "http/GetRequest", "order", fake_api) == {"id": 7, "lines": [1, 2]}


def test_spiffarena_get_request_gives_text_as_raw_response(fake_api: FakeApi) -> None:
    fake_api.reply("/text", Reply(body="plain words", headers={"Content-Type": "text/plain"}))
    assert run("get_text", "http/GetRequestV2", "text", fake_api) == {"raw_response": "plain words"}


def test_baton_http_connector_keeps_status_headers_and_body(fake_api: FakeApi) -> None:
    fake_api.reply("/whole", Reply(body={"ok": 1}))
    response = run("whole", "http", "whole", fake_api)
    assert response["status"] == 200
    assert response["body"] == {"ok": 1}
    assert "json" in response["headers"]["content-type"]
