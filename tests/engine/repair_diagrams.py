"""Diagrams and steps for the repair tests: a two-step approval (Camunda dialect) in several
versions, and how a manager works on it."""

from engine.models import HumanTask, ProcessInstance
from engine.services import complete_human_task

HEADER = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'id="Definitions_repair" targetNamespace="http://bpmn.io/schema/bpmn">\n'
)


def approval(
    process_id: str = "two_step", *, extra_task: bool = False, drop_pay: bool = False
) -> str:
    """start -> approve (managers) -> gateway: decision == "approve" -> pay (managers) -> end;
    otherwise -> record_rejection (script) -> end_rejected.

    `extra_task`: version 2 puts a user task `audit` between pay and end.
    `drop_pay`: version 2 has no `pay`; approval goes straight to the end."""
    condition = (
        '<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">decision == "approve"'
        "</bpmn:conditionExpression>"
    )
    rejection = (
        '<bpmn:scriptTask id="record_rejection" scriptFormat="python">'
        '<bpmn:script>outcome = "rejected"</bpmn:script></bpmn:scriptTask>'
    )
    if drop_pay:
        pay_task = ""
        audit = ""
        accept_target = "end"
    else:
        pay_task = '    <bpmn:userTask id="pay" name="Pay" camunda:candidateGroups="managers" />\n'
        accept_target = "pay"
        audit = (
            '    <bpmn:userTask id="audit" name="Audit" camunda:candidateGroups="managers" />\n'
            '    <bpmn:sequenceFlow id="f_pay_audit" sourceRef="pay" targetRef="audit" />\n'
            '    <bpmn:sequenceFlow id="f_audit_end" sourceRef="audit" targetRef="end" />\n'
            if extra_task
            else '    <bpmn:sequenceFlow id="f_pay_end" sourceRef="pay" targetRef="end" />\n'
        )
    return (
        HEADER
        + f"""  <bpmn:process id="{process_id}" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f_start" sourceRef="start" targetRef="approve" />
    <bpmn:userTask id="approve" name="Approve" camunda:candidateGroups="managers">
      <bpmn:extensionElements><camunda:formData>
        <camunda:formField id="decision" type="string" /></camunda:formData>
      </bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="f_approve" sourceRef="approve" targetRef="decide" />
    <bpmn:exclusiveGateway id="decide" default="f_reject" />
    <bpmn:sequenceFlow id="f_accept" sourceRef="decide" targetRef="{accept_target}">{condition}
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_reject" sourceRef="decide" targetRef="record_rejection" />
{pay_task}{audit}    {rejection}
    <bpmn:sequenceFlow id="f_rejected" sourceRef="record_rejection" targetRef="end_rejected" />
    <bpmn:endEvent id="end" />
    <bpmn:endEvent id="end_rejected" />
  </bpmn:process>
</bpmn:definitions>
"""
    )


def open_task(instance: ProcessInstance, element_id: str) -> HumanTask:
    return instance.human_tasks.get(element_id=element_id, status__in=HumanTask.ACTIVE_STATUSES)


def approve(instance: ProcessInstance, user, decision: str = "approve") -> None:
    """The manager decides the `approve` task of a two-step approval."""
    task = open_task(instance, "approve")
    complete_human_task(task_id=task.pk, user=user, variables={"decision": decision})
