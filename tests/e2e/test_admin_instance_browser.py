"""The admin's instance page in a real browser: bpmn-js draws the diagram and Baton's markers
show where the instance has been, where it waits, and how often each element ran."""

import re

import pytest
from playwright.sync_api import expect

from engine.services import start_instance
from tests.e2e.conftest import login

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_instance_page_shows_markers_on_the_diagram(
    page, expense_definition, make_staff, with_password
):
    operator = make_staff("olga_operator", "operators")
    with_password(operator)
    instance = start_instance(
        key="expense_approval", business_key="E-7", variables={"amount": 40, "description": "Lunch"}
    )

    login(page, operator)
    page.goto(f"/admin/engine/processinstance/{instance.pk}/change/")
    diagram = page.locator("#baton-diagram")
    expect(diagram).to_have_attribute("data-ready", "true")

    def shape(element_id: str):
        return diagram.locator(f'g.djs-element[data-element-id="{element_id}"]')

    expect(shape("categorise")).to_have_class(re.compile(r"baton-completed"))
    expect(shape("expense_submitted")).to_have_class(re.compile(r"baton-completed"))
    expect(shape("approve_expense")).to_have_class(re.compile(r"baton-active"))
    expect(shape("record_approval")).not_to_have_class(re.compile(r"baton-"))
    counts = diagram.locator(".djs-overlays[data-container-id='categorise'] .baton-run-count")
    expect(counts).to_have_text("1")
    expect(
        diagram.locator(".djs-overlays[data-container-id='approve_expense'] .baton-token")
    ).to_be_visible()

    # Clicking a completed element picks it as the reset target.
    shape("categorise").click()
    expect(page.locator('select[name="element_id"]')).to_have_value("categorise")
    expect(page.get_by_test_id("instance-status")).to_have_text("Waiting")


MULTI_INSTANCE = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI"
    xmlns:dc="http://www.omg.org/spec/DD/20100524/DC"
    xmlns:di="http://www.omg.org/spec/DD/20100524/DI"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="x">
  <bpmn:process id="three_approvals" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:userTask id="approve" name="Approve" camunda:assignee="${approver}">
      <bpmn:multiInstanceLoopCharacteristics camunda:collection="approvers"
          camunda:elementVariable="approver" />
    </bpmn:userTask>
    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="approve" />
    <bpmn:sequenceFlow id="f2" sourceRef="approve" targetRef="end" />
  </bpmn:process>
  <bpmndi:BPMNDiagram id="dia">
    <bpmndi:BPMNPlane id="plane" bpmnElement="three_approvals">
      <bpmndi:BPMNShape id="s_start" bpmnElement="start">
        <dc:Bounds x="100" y="100" width="36" height="36" /></bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="s_approve" bpmnElement="approve">
        <dc:Bounds x="200" y="78" width="100" height="80" /></bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="s_end" bpmnElement="end">
        <dc:Bounds x="360" y="100" width="36" height="36" /></bpmndi:BPMNShape>
      <bpmndi:BPMNEdge id="e1" bpmnElement="f1">
        <di:waypoint x="136" y="118" /><di:waypoint x="200" y="118" /></bpmndi:BPMNEdge>
      <bpmndi:BPMNEdge id="e2" bpmnElement="f2">
        <di:waypoint x="300" y="118" /><di:waypoint x="360" y="118" /></bpmndi:BPMNEdge>
    </bpmndi:BPMNPlane>
  </bpmndi:BPMNDiagram>
</bpmn:definitions>
"""


def test_a_multi_instance_activity_shows_its_active_instances_and_counts_the_completed(
    page, make_staff, with_password
):
    from engine.models import HumanTask
    from engine.services import complete_human_task
    from tests.helpers import deploy_document

    operator = make_staff("olga_operator", "operators")
    operator.is_superuser = True
    operator.save(update_fields=["is_superuser"])
    with_password(operator)
    deploy_document(MULTI_INSTANCE, "three_approvals.bpmn")
    instance = start_instance(key="three_approvals", variables={"approvers": ["ann", "bob", "cat"]})
    ann = instance.human_tasks.get(assignee="ann", status=HumanTask.Status.CLAIMED)
    complete_human_task(task_id=ann.pk, user=operator, variables={})

    login(page, operator)
    page.goto(f"/admin/engine/processinstance/{instance.pk}/change/")
    diagram = page.locator("#baton-diagram")
    expect(diagram).to_have_attribute("data-ready", "true")
    overlays = diagram.locator(".djs-overlays[data-container-id='approve']")
    expect(overlays.locator(".baton-instances")).to_have_text("2 of 3")
    expect(overlays.locator(".baton-run-count")).to_have_text("1")
    expect(diagram.locator('g.djs-element[data-element-id="approve"]')).to_have_class(
        re.compile(r"baton-active")
    )
