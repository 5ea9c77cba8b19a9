"""Camunda 7 call activity mappings: what the conformance cases do not pin (expressions,
in-mappings without out-mappings, storage, deploy refusals)."""

import copy
from typing import Any

import pytest

from engine.bpmn.serialization import spec_from_json
from engine.models import ProcessInstance
from engine.services import start_instance
from processes.validation import DeploymentInvalid, UploadedFile, parse_deployment
from tests.helpers import BPMN_HEADER, deploy_document, line_containing

CHILD = """
  <bpmn:process id="child" isExecutable="true">
    <bpmn:startEvent id="c_start" />
    <bpmn:scriptTask id="c_work" scriptFormat="python">
      <bpmn:script>result = amount * 2</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:endEvent id="c_end" />
    <bpmn:sequenceFlow id="c1" sourceRef="c_start" targetRef="c_work" />
    <bpmn:sequenceFlow id="c2" sourceRef="c_work" targetRef="c_end" />
  </bpmn:process>
</bpmn:definitions>
"""


def diagram(mappings: str, key: str = "parent") -> str:
    return (
        BPMN_HEADER.format(process_id=key)
        + f"""  <bpmn:process id="{key}" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:callActivity id="call" calledElement="child">
      <bpmn:extensionElements>{mappings}</bpmn:extensionElements>
    </bpmn:callActivity>
    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="call" />
    <bpmn:sequenceFlow id="f2" sourceRef="call" targetRef="end" />
  </bpmn:process>"""
        + CHILD
    )


def stored_spec(document: str) -> tuple[str, dict[str, Any]]:
    deployment = parse_deployment([UploadedFile("d.bpmn", document.encode())])
    parent = next(p for p in deployment.processes if p.key == "parent")
    return deployment.dialect, parent.spec


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("out_mapping", "expected"),
    [
        ('<camunda:out source="result" target="doubled" />', {"doubled": 120}),
        # Camunda 7: with in-mappings and no out-mapping nothing comes back.
        ("", {}),
    ],
)
def test_a_source_expression_goes_in_and_only_out_mappings_come_back(
    out_mapping: str, expected: dict[str, Any]
) -> None:
    deploy_document(
        diagram(
            '<camunda:in sourceExpression="${price gt 10 ? price * 3 : 0}" '
            'target="amount" /><camunda:in businessKey="#{execution.processBusinessKey}" />'
            + out_mapping
        )
    )
    instance = start_instance(key="parent", variables={"price": 20, "other": 1})
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.COMPLETED, instance.incident
    assert instance.variables == {"price": 20, "other": 1, **expected}


def test_mappings_survive_storage_and_specs_without_them_load_as_before() -> None:
    dialect, stored = stored_spec(
        diagram('<camunda:in source="price" target="amount" /><camunda:out variables="all" />')
    )
    call = stored["spec"]["task_specs"]["call"]
    assert call["typename"] == "CallActivity"
    assert call["in_mappings"] == [{"source": "price", "target": "amount"}]
    spec, _ = spec_from_json(dialect, stored)
    assert spec.task_specs["call"].in_mappings == [{"source": "price", "target": "amount"}]
    assert spec.task_specs["call"].out_mappings == [{"all": True}]

    older = copy.deepcopy(stored)
    del older["spec"]["task_specs"]["call"]["in_mappings"]
    del older["spec"]["task_specs"]["call"]["out_mappings"]
    spec, _ = spec_from_json(dialect, older)
    assert spec.task_specs["call"].in_mappings == []
    assert spec.task_specs["call"].out_mappings == []


def test_a_call_activity_without_mappings_is_stored_as_the_library_stores_it() -> None:
    _, stored = stored_spec(diagram(""))
    assert "in_mappings" not in stored["spec"]["task_specs"]["call"]


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ('<camunda:in source="price" />', "camunda:in needs a target"),
        ('<camunda:out target="x" />', "camunda:out needs source, sourceExpression"),
        ('<camunda:in sourceExpression="${price +}" target="x" />', "cannot be read"),
    ],
)
def test_an_incomplete_mapping_is_refused_at_deploy(mapping: str, message: str) -> None:
    document = diagram(mapping)
    with pytest.raises(DeploymentInvalid) as refused:
        parse_deployment([UploadedFile("d.bpmn", document.encode())])
    [problem] = refused.value.problems
    assert message in problem.message
    assert problem.element_id == "call"
    assert problem.line in (
        line_containing(document, "<camunda:"),
        line_containing(document, 'id="call"'),
    )
