"""A one-service-task SpiffArena diagram whose parameters are Python expressions, run in this
process (execute_service_job) so that the test's settings apply."""

from typing import Any
from xml.sax.saxutils import quoteattr

from engine.models import ProcessInstance, ServiceJob
from engine.services import start_instance
from engine.services.job_runs import execute_service_job
from processes.services import deploy
from processes.validation import UploadedFile
from tests.engine.service_fixtures import jobs_for_no_worker


def diagram(key: str, operator: str, parameters: dict[str, str], *, catch: str = "") -> str:
    """start -> `call` (the connector `operator`, its result in `outcome`) -> end; with
    `catch`, an error boundary event for that code sets `caught` to the error's message."""
    rows = "".join(
        f'<spiffworkflow:parameter id="{name}" type="any" value={quoteattr(value)} />'
        for name, value in parameters.items()
    )
    boundary = errors = ""
    if catch:
        errors = f'<bpmn:error id="err" name="Error" errorCode="{catch}" />'
        boundary = (
            '<bpmn:boundaryEvent id="on_error" attachedToRef="call">'
            '<bpmn:errorEventDefinition errorRef="err" /></bpmn:boundaryEvent>'
            '<bpmn:scriptTask id="handle" scriptFormat="python">'
            "<bpmn:script>caught = True</bpmn:script></bpmn:scriptTask>"
            '<bpmn:endEvent id="end_caught" />'
            '<bpmn:sequenceFlow id="fe1" sourceRef="on_error" targetRef="handle" />'
            '<bpmn:sequenceFlow id="fe2" sourceRef="handle" targetRef="end_caught" />'
        )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="d" targetNamespace="x">
  {errors}
  <bpmn:process id="{key}" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:serviceTask id="call" name="Call">
      <bpmn:extensionElements>
        <spiffworkflow:serviceTaskOperator id="{operator}" resultVariable="outcome">
          <spiffworkflow:parameters>{rows}</spiffworkflow:parameters>
        </spiffworkflow:serviceTaskOperator>
      </bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="call" />
    <bpmn:sequenceFlow id="f2" sourceRef="call" targetRef="end" />
    {boundary}
  </bpmn:process>
</bpmn:definitions>
"""


def run(
    key: str, operator: str, parameters: dict[str, str], variables: dict[str, Any], **kw: str
) -> ProcessInstance:
    """Deploy, start and run the service task's job once; the instance afterwards."""
    xml = diagram(key, operator, parameters, **kw)
    deploy(name=key, files=[UploadedFile(f"{key}.bpmn", xml.encode())], actor=None)
    with jobs_for_no_worker():
        instance = start_instance(key=key, variables=variables)
    job = ServiceJob.objects.filter(instance=instance).first()
    assert job is not None, (instance.status, instance.incident)
    execute_service_job(str(job.id))
    instance.refresh_from_db()
    return instance


def job_of(instance: ProcessInstance) -> ServiceJob:
    return ServiceJob.objects.get(instance=instance)
