"""A JSON-schema form (SpiffArena) is validated by one validator: choices filled from the
task's data (`options_from_task_data_var`) bind the API and the service as they bind the page."""

import json

import pytest
from django.test import Client

from engine.models import HumanTask, ProcessInstance
from engine.services import start_instance
from processes.services import deploy
from processes.validation import UploadedFile

pytestmark = pytest.mark.django_db

PICK_BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="d" targetNamespace="x">
  <bpmn:process id="pick" name="Pick a fruit" isExecutable="true">
    <bpmn:laneSet id="lanes">
      <bpmn:lane id="lane" name="managers">
        <bpmn:flowNodeRef>start</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>choose</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>end</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="start" />
    <bpmn:userTask id="choose" name="Choose">
      <bpmn:extensionElements>
        <spiffworkflow:properties>
          <spiffworkflow:property name="formJsonSchemaFilename" value="pick-schema.json" />
        </spiffworkflow:properties>
      </bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="choose" />
    <bpmn:sequenceFlow id="f2" sourceRef="choose" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""
PICK_SCHEMA = {
    "type": "object",
    "required": ["fruit"],
    "properties": {
        "fruit": {
            "type": "string",
            "title": "Fruit",
            "anyOf": ["options_from_task_data_var:fruits"],
        }
    },
}
FRUITS = [{"value": "apple", "label": "Apple"}, {"value": "pear", "label": "Pear"}]


@pytest.fixture
def choose_task(db) -> HumanTask:
    files = [
        UploadedFile("pick.bpmn", PICK_BPMN.encode()),
        UploadedFile("pick-schema.json", json.dumps(PICK_SCHEMA).encode()),
    ]
    deploy(name="pick", files=files, actor=None)
    return start_instance(key="pick", variables={"fruits": FRUITS}).human_tasks.get()


def test_a_choice_from_task_data_binds_the_api_as_it_binds_the_page(
    choose_task, approver, api_client_for
):
    picker = approver
    client = Client()
    client.force_login(picker)
    page = client.post(f"/tasks/{choose_task.id}/", {"fruit": "banana"})
    assert page.status_code == 400 and "fruit" in page.context["form"].errors
    api = api_client_for(picker).post(
        f"/api/v1/tasks/{choose_task.id}/complete/",
        {"variables": {"fruit": "banana"}},
        format="json",
    )
    assert api.status_code == 400
    assert "fruit" in [e["field"] for e in api.json()["errors"]]
    assert HumanTask.objects.get(pk=choose_task.pk).status == HumanTask.Status.OPEN

    done = api_client_for(picker).post(
        f"/api/v1/tasks/{choose_task.id}/complete/", {"variables": {"fruit": "pear"}}, format="json"
    )
    assert done.status_code == 200
    assert ProcessInstance.objects.get(pk=choose_task.instance_id).variables["fruit"] == "pear"
