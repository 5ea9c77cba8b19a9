"""A Camunda form is validated by one validator: the task page, the API and the service give
the same answer, with the same message, for every value."""

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.test import Client

from engine.exceptions import InvalidInput
from engine.models import HumanTask, ProcessInstance
from engine.services import complete_human_task, start_instance
from processes.services import deploy
from processes.validation import UploadedFile

pytestmark = pytest.mark.django_db

LIMITS_BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="x">
  <bpmn:process id="limits" name="Limits" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:userTask id="order" name="Order" camunda:candidateGroups="managers">
      <bpmn:extensionElements>
        <camunda:formData>
          <camunda:formField id="quantity" label="Quantity" type="long">
            <camunda:validation><camunda:constraint name="required" />
              <camunda:constraint name="min" config="1.5" />
              <camunda:constraint name="max" config="9.5" /></camunda:validation>
          </camunda:formField>
          <camunda:formField id="note" label="Note" type="string">
            <camunda:validation><camunda:constraint name="minlength" config="2" />
            </camunda:validation>
          </camunda:formField>
        </camunda:formData>
      </bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="order" />
    <bpmn:sequenceFlow id="f2" sourceRef="order" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""


@pytest.fixture
def new_order_task(db) -> Callable[[], HumanTask]:
    deploy(name="limits", files=[UploadedFile("limits.bpmn", LIMITS_BPMN.encode())], actor=None)
    return lambda: start_instance(key="limits").human_tasks.get()


@pytest.fixture
def order_task(new_order_task) -> HumanTask:
    return new_order_task()


def login(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _page_errors(client: Client, task: HumanTask, posted: dict[str, str]) -> dict[str, list]:
    response = client.post(f"/tasks/{task.id}/", posted)
    if response.status_code == 302:
        return {}
    assert response.status_code == 400
    return {name: list(errors) for name, errors in response.context["form"].errors.items()}


def _service_errors(task: HumanTask, user: User, variables: dict[str, str]) -> dict[str, list]:
    try:
        complete_human_task(task_id=task.id, user=user, variables=variables)
    except InvalidInput as refused:
        return {name: [message] for name, message in (refused.errors or {}).items()}
    return {}


def test_a_decimal_minimum_refuses_1_on_the_page_as_in_the_service(order_task, approver):
    # With another field wrong too: the page must not wait for the service to object.
    posted = {"quantity": "1", "note": "x"}
    errors = _page_errors(login(approver), order_task, posted)
    assert errors == {
        "quantity": ["Quantity must be at least 1.5."],
        "note": ["Note must have at least 2 characters."],
    }
    assert _service_errors(order_task, approver, posted) == errors
    assert HumanTask.objects.get(pk=order_task.pk).status == HumanTask.Status.OPEN


def test_the_page_accepts_the_smallest_whole_number_the_service_accepts(order_task, approver):
    assert _page_errors(login(approver), order_task, {"quantity": "2"}) == {}
    assert ProcessInstance.objects.get(pk=order_task.instance_id).variables["quantity"] == 2


@pytest.mark.parametrize(
    "posted",
    [
        {"quantity": "1"},
        {"quantity": "1.5"},
        {"quantity": "1.0"},
        {"quantity": "10"},
        {"quantity": " 3 "},
        {"quantity": ""},
        {"quantity": "abc"},
        {"quantity": "3", "note": "x"},
        {"quantity": "3", "note": "  "},
    ],
)
def test_page_and_service_give_the_same_answer(new_order_task, approver, posted):
    page = _page_errors(login(approver), new_order_task(), posted)
    service = _service_errors(new_order_task(), approver, posted)
    assert page == service, posted


def test_the_api_refuses_1_with_the_same_message(order_task, approver, api_client_for):
    response = api_client_for(approver).post(
        f"/api/v1/tasks/{order_task.id}/complete/", {"variables": {"quantity": 1}}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"field": "quantity", "message": "Quantity must be at least 1.5."}
    ]
