"""Compensation of many activities in one operation: every handler runs (bounded by the
step budget, not by the rounds of conditional events), and the instance goes on."""

import json

import pytest

from engine.bpmn.xml import compensation_handlers, parse_untrusted_xml
from engine.models import ProcessInstance
from engine.services import start_instance
from tests.helpers import deploy_document

pytestmark = pytest.mark.django_db

HEADER = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" '
    'targetNamespace="http://bpmn.io/schema/bpmn">\n'
)


def _many(count: int) -> str:
    return (
        HEADER
        + f"""<bpmn:process id="many_compensated" isExecutable="true">
  <bpmn:startEvent id="start" />
  <bpmn:task id="work">
    <bpmn:multiInstanceLoopCharacteristics isSequential="true">
      <bpmn:loopCardinality>{count}</bpmn:loopCardinality>
    </bpmn:multiInstanceLoopCharacteristics>
  </bpmn:task>
  <bpmn:boundaryEvent id="work_comp" attachedToRef="work">
    <bpmn:compensateEventDefinition /></bpmn:boundaryEvent>
  <bpmn:task id="undo_work" isForCompensation="true" />
  <bpmn:intermediateThrowEvent id="undo"><bpmn:compensateEventDefinition />
  </bpmn:intermediateThrowEvent>
  <bpmn:userTask id="after" />
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="work" />
  <bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="undo" />
  <bpmn:sequenceFlow id="f3" sourceRef="undo" targetRef="after" />
  <bpmn:association id="a1" sourceRef="work_comp" targetRef="undo_work" />
</bpmn:process>
</bpmn:definitions>"""
    )


def test_more_handlers_than_condition_rounds_all_run_in_one_operation() -> None:
    deploy_document(_many(150))
    instance = start_instance(key="many_compensated", variables={}, actor=None)
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.WAITING, instance.incident
    assert instance.events.filter(type="compensation_started").count() == 150
    assert list(instance.human_tasks.values_list("element_id", flat=True)) == ["after"]


# A multi-instance activity over `items`, every instance adding its result to `results`.
COLLECTING = (
    HEADER.replace(
        "<bpmn:definitions ",
        '<bpmn:definitions xmlns:camunda="http://camunda.org/schema/1.0/bpmn" ',
    )
    + """<bpmn:process id="collecting" isExecutable="true">
  <bpmn:startEvent id="start" />
  <bpmn:task id="work">
    <bpmn:multiInstanceLoopCharacteristics isSequential="true"
        camunda:collection="${items}" camunda:elementVariable="item" />
  </bpmn:task>
  <bpmn:boundaryEvent id="work_comp" attachedToRef="work">
    <bpmn:compensateEventDefinition /></bpmn:boundaryEvent>
  <bpmn:task id="undo_work" isForCompensation="true" />
  <bpmn:userTask id="after" />
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="work" />
  <bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="after" />
  <bpmn:association id="a1" sourceRef="work_comp" targetRef="undo_work" />
</bpmn:process>
</bpmn:definitions>"""
)


def test_kept_instance_data_grows_with_the_instances_not_with_their_square() -> None:
    """Each completed instance of a compensable multi-instance activity is kept for its
    handler, but not with a copy of all the data: 2,000 instances over a list of 2,000 items
    would otherwise store the list 2,000 times (4 million numbers) in the instance's state."""
    deploy_document(COLLECTING)
    items = list(range(100_000, 102_000))
    instance = start_instance(key="collecting", variables={"items": items}, actor=None)
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.WAITING, instance.incident
    # The items once in the data, and a few dozen bytes of each instance's own variables.
    assert len(json.dumps(instance.state)) < 1_000_000


def test_each_instance_handler_sees_the_activity_data_with_its_own_variables() -> None:
    document = (
        COLLECTING.replace('id="collecting"', 'id="collecting_undo"')
        .replace(
            '<bpmn:task id="work">',
            '<bpmn:scriptTask id="work" scriptFormat="python">',
        )
        .replace(
            'camunda:elementVariable="item" />\n  </bpmn:task>',
            'camunda:elementVariable="item" />\n'
            "    <bpmn:script>doubled = item * 2</bpmn:script>\n  </bpmn:scriptTask>",
        )
        .replace(
            '<bpmn:task id="undo_work" isForCompensation="true" />',
            '<bpmn:scriptTask id="undo_work" isForCompensation="true" scriptFormat="python">'
            "<bpmn:script>undone = (item, doubled, loopCounter, len(items))</bpmn:script>"
            "</bpmn:scriptTask>",
        )
        .replace(
            '<bpmn:userTask id="after" />',
            '<bpmn:intermediateThrowEvent id="undo"><bpmn:compensateEventDefinition />'
            '</bpmn:intermediateThrowEvent><bpmn:userTask id="after" />',
        )
        .replace(
            '<bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="after" />',
            '<bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="undo" />'
            '<bpmn:sequenceFlow id="f3" sourceRef="undo" targetRef="after" />',
        )
    )
    deploy_document(document)
    instance = start_instance(key="collecting_undo", variables={"items": [5, 6, 7]}, actor=None)
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.WAITING, instance.incident
    # Handlers run in reverse order: the last to run compensates the first instance.
    assert instance.variables["undone"] == [5, 10, 0, 3]
    assert instance.events.filter(type="compensation_started").count() == 3


def test_compensation_handlers_are_found_in_one_pass_either_way_round() -> None:
    """The one reading of "which handler does a compensation boundary event name" that the
    deploy checks (processes.constructs) and the parser share."""
    root = parse_untrusted_xml(
        (
            HEADER
            + """<bpmn:process id="p">
  <bpmn:task id="a" /><bpmn:task id="b" /><bpmn:task id="plain" />
  <bpmn:task id="undo_a" isForCompensation="true" />
  <bpmn:task id="undo_b" isForCompensation="true" />
  <bpmn:association id="x1" sourceRef="a_comp" targetRef="plain" />
  <bpmn:association id="x2" sourceRef="a_comp" targetRef="undo_a" />
  <bpmn:association id="x3" sourceRef="undo_b" targetRef="b_comp" />
  <bpmn:association id="x4" sourceRef="b_comp" targetRef="undo_a" />
</bpmn:process></bpmn:definitions>"""
        ).encode()
    )
    found = {k: v.get("id") for k, v in compensation_handlers(root).items()}
    assert found == {"a_comp": "undo_a", "b_comp": "undo_b"}
