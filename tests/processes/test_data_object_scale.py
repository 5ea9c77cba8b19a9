"""A diagram with many data objects deploys in about linear time (finding 1.1: each data
object and each reference used to walk the whole tree, ~cubic; 800 + 800 took minutes)."""

from processes.models import ProcessDefinition
from tests.helpers import BPMN_HEADER, deploy_document

DATA_OBJECTS = 1000


def many_data_objects(count: int) -> str:
    """start -> parallel split -> `count` / 2 script tasks, each writing two data objects
    (unnamed, labelled by their references) -> parallel join -> end: 3.5 flow elements per
    data object, under the diagram limit."""
    parts = [
        BPMN_HEADER.format(process_id="many_data"),
        '  <bpmn:process id="many_data" isExecutable="true">\n<bpmn:startEvent id="s"/>'
        '<bpmn:parallelGateway id="split"/><bpmn:parallelGateway id="join"/>'
        '<bpmn:sequenceFlow id="fs" sourceRef="s" targetRef="split"/>\n',
    ]
    for i in range(0, count, 2):
        pair = (i, i + 1)
        parts += [
            f'<bpmn:dataObject id="DataObject_{n}"/><bpmn:dataObjectReference id="ref_{n}" '
            f'name="value_{n}" dataObjectRef="DataObject_{n}"/>'
            for n in pair
        ]
        parts.append(f'<bpmn:scriptTask id="t{i}" scriptFormat="python">')
        parts += [
            f'<bpmn:dataOutputAssociation id="out_{n}"><bpmn:targetRef>ref_{n}</bpmn:targetRef>'
            "</bpmn:dataOutputAssociation>"
            for n in pair
        ]
        parts.append(
            f"<bpmn:script>value_{i} = value_{i + 1} = {i}</bpmn:script></bpmn:scriptTask>"
            f'<bpmn:sequenceFlow id="a{i}" sourceRef="split" targetRef="t{i}"/>'
            f'<bpmn:sequenceFlow id="b{i}" sourceRef="t{i}" targetRef="join"/>\n'
        )
    parts.append(
        '<bpmn:endEvent id="e"/>'
        '<bpmn:sequenceFlow id="fe" sourceRef="join" targetRef="e"/>\n'
        "  </bpmn:process>\n</bpmn:definitions>\n"
    )
    return "".join(parts)


def test_a_thousand_data_objects_deploy(db) -> None:
    deploy_document(many_data_objects(DATA_OBJECTS))

    assert ProcessDefinition.objects.filter(key="many_data").count() == 1
