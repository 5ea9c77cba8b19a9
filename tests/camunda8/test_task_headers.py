"""Camunda 8 `zeebe:taskHeaders`: the connector gets them with its call, an external task's
worker with the task it fetches; they are no parameters and no variables."""

from typing import Any

import pytest
from rest_framework.test import APIClient

from engine.models import ProcessInstance, ServiceJob
from engine.services import start_instance
from processes.services import deploy
from processes.validation import UploadedFile

pytestmark = pytest.mark.django_db
FETCH = "/api/v1/external-tasks/fetch-and-lock/"

DIAGRAM = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" id="d" targetNamespace="x">
  <bpmn:process id="c8_headers" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="work"/>
    <bpmn:serviceTask id="work" name="Send the letter">
      <bpmn:extensionElements>
        <zeebe:taskDefinition type="letters.send"/>
        <zeebe:taskHeaders>
          <zeebe:header key="template" value="reminder"/>
          <zeebe:header key="priority" value="high"/>
        </zeebe:taskHeaders>
        <zeebe:ioMapping><zeebe:input source="= customer.name" target="to"/></zeebe:ioMapping>
      </bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


@pytest.fixture
def instance() -> ProcessInstance:
    deploy(name="h", files=[UploadedFile("h.bpmn", DIAGRAM.encode())], actor=None)
    return start_instance(key="c8_headers", variables={"customer": {"name": "Ann"}})


@pytest.fixture
def worker(make_user: Any, api_client_for: Any) -> APIClient:
    client: APIClient = api_client_for(make_user("wanda_worker", "external-workers"))
    return client


def test_an_external_task_worker_gets_the_headers_apart_from_the_variables(
    instance: ProcessInstance, worker: APIClient
) -> None:
    body = {"worker_id": "w", "topics": [{"topic_name": "letters.send", "lock_duration": 500}]}
    response = worker.post(FETCH, body, format="json")
    assert response.status_code == 200, response.content
    [task] = response.json()
    assert task["headers"] == {"template": "reminder", "priority": "high"}
    assert task["variables"] == {"customer": {"name": "Ann"}, "to": "Ann"}


def test_a_task_without_headers_gets_none(make_user: Any, worker: APIClient) -> None:
    xml = DIAGRAM.replace("c8_headers", "c8_no_headers")
    xml = xml[: xml.index("<zeebe:taskHeaders>")] + xml[xml.index("<zeebe:ioMapping>") :]
    deploy(name="n", files=[UploadedFile("n.bpmn", xml.encode())], actor=None)
    start_instance(key="c8_no_headers", variables={"customer": {"name": "Bo"}})
    body = {"worker_id": "w", "topics": [{"topic_name": "letters.send", "lock_duration": 500}]}
    [task] = worker.post(FETCH, body, format="json").json()
    assert task["headers"] == {}
    assert ServiceJob.objects.get().parameters == {"to": "Bo"}
