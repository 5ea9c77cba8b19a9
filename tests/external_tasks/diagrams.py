"""Diagrams with external tasks: a Camunda 7 topic and a Camunda 8 job type that name no
Baton connector."""

CAMUNDA7 = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="x">
  <bpmn:error id="card_declined" name="Card declined" errorCode="CARD_DECLINED"/>
  <bpmn:process id="{key}" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="charge"/>
    <bpmn:serviceTask id="charge" name="Charge the card" camunda:type="external"
        camunda:topic="{topic}">
      <bpmn:extensionElements>
        <camunda:inputOutput>
          <camunda:inputParameter name="cents">${{amount * 100}}</camunda:inputParameter>
          <camunda:inputParameter name="currency">EUR</camunda:inputParameter>
        </camunda:inputOutput>
        {retry}
      </bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:sequenceFlow id="f2" sourceRef="charge" targetRef="end"/>
    <bpmn:endEvent id="end"/>
    <bpmn:boundaryEvent id="declined" attachedToRef="charge">
      <bpmn:errorEventDefinition errorRef="card_declined"/>
    </bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="f3" sourceRef="declined" targetRef="end_declined"/>
    <bpmn:endEvent id="end_declined"/>
  </bpmn:process>
</bpmn:definitions>
"""

CAMUNDA8 = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" id="d" targetNamespace="x">
  <bpmn:process id="{key}" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="work"/>
    <bpmn:serviceTask id="work" name="Benchmark task">
      <bpmn:extensionElements>
        <zeebe:taskDefinition type="{topic}" retries="3"/>
      </bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


def camunda7(key: str = "payment", topic: str = "payments.charge", retry: str = "") -> str:
    cycle = (
        f"<camunda:failedJobRetryTimeCycle>{retry}</camunda:failedJobRetryTimeCycle>"
        if retry
        else ""
    )
    return CAMUNDA7.format(key=key, topic=topic, retry=cycle)


def camunda8(key: str = "bench", topic: str = "benchmark-task") -> str:
    return CAMUNDA8.format(key=key, topic=topic)
