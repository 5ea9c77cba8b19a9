"""A process that calls itself on every run is refused at deploy, naming the call activity
and its line; one that calls itself only under a condition deploys (its depth is bounded at
run time: tests/engine/test_step_budget.py)."""

from tests.engine.budget_diagrams import calls_itself
from tests.helpers import BPMN_HEADER, line_containing
from tests.processes.test_validation import refused


def test_a_process_that_calls_itself_unconditionally_is_refused(api_client_for, designer):
    document = calls_itself(conditional=False)
    (error,) = refused(api_client_for(designer), document)
    assert error["element_id"] == "again"
    assert error["line"] == line_containing(document, 'id="again"')
    assert "calls its own process again on every run (recursive -> recursive)" in error["message"]


def test_two_processes_that_call_each_other_unconditionally_are_refused(api_client_for, designer):
    document = (
        BPMN_HEADER.format(process_id="ping")
        + """  <bpmn:process id="ping" isExecutable="true">
    <bpmn:startEvent id="ping_start" />
    <bpmn:parallelGateway id="fork" />
    <bpmn:userTask id="meanwhile" />
    <bpmn:subProcess id="inner">
      <bpmn:startEvent id="inner_start" />
      <bpmn:callActivity id="call_pong" calledElement="pong" />
      <bpmn:endEvent id="inner_end" />
      <bpmn:sequenceFlow id="i1" sourceRef="inner_start" targetRef="call_pong" />
      <bpmn:sequenceFlow id="i2" sourceRef="call_pong" targetRef="inner_end" />
    </bpmn:subProcess>
    <bpmn:sequenceFlow id="p1" sourceRef="ping_start" targetRef="fork" />
    <bpmn:sequenceFlow id="p2" sourceRef="fork" targetRef="inner" />
    <bpmn:sequenceFlow id="p3" sourceRef="fork" targetRef="meanwhile" />
  </bpmn:process>
  <bpmn:process id="pong" isExecutable="true">
    <bpmn:startEvent id="pong_start" />
    <bpmn:scriptTask id="note" scriptFormat="python">
      <bpmn:script>x = 1</bpmn:script></bpmn:scriptTask>
    <bpmn:callActivity id="call_ping" calledElement="ping" />
    <bpmn:sequenceFlow id="q1" sourceRef="pong_start" targetRef="note" />
    <bpmn:sequenceFlow id="q2" sourceRef="note" targetRef="call_ping" />
  </bpmn:process>
</bpmn:definitions>
"""
    )
    errors = refused(api_client_for(designer), document)
    (error,) = errors
    assert error["element_id"] == "call_ping"
    assert error["line"] == line_containing(document, 'id="call_ping"')
    assert "(ping -> pong -> ping)" in error["message"]
    assert "calls its own process again on every run" in error["message"]


def test_a_process_that_calls_itself_under_a_condition_deploys(api_client_for, designer):
    response = api_client_for(designer).post(
        "/api/v1/deployments/",
        {"name": "r", "bpmn_xml": calls_itself(conditional=True)},
        format="json",
    )
    assert response.status_code == 201, response.content
