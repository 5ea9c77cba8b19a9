"""Diagrams that never reach a wait state on their own: loops of automatic steps and
processes that call themselves (engine.bpmn.budget)."""

from tests.helpers import BPMN_HEADER


def _properties(**properties: object) -> str:
    if not properties:
        return ""
    entries = "".join(
        f'<camunda:property name="{name}" value="{value}" />' for name, value in properties.items()
    )
    return (
        "<bpmn:extensionElements><camunda:properties>"
        f"{entries}</camunda:properties></bpmn:extensionElements>"
    )


def endless_loop(process_id: str = "endless", *, script: bool = True, **properties: object) -> str:
    """start -> count (n += 1) -> again --(not stop)--> count; default -> done (user task).
    Runs without end until the variable `stop` is true."""
    step = (
        '<bpmn:scriptTask id="count" scriptFormat="python">'
        "<bpmn:script>n = n + 1</bpmn:script></bpmn:scriptTask>"
        if script
        else '<bpmn:task id="count" />'
    )
    return (
        BPMN_HEADER.format(process_id=process_id)
        + f'  <bpmn:process id="{process_id}" isExecutable="true">{_properties(**properties)}\n'
        + '    <bpmn:startEvent id="start" />\n'
        + f"    {step}\n"
        + '    <bpmn:exclusiveGateway id="again" default="f_out" />\n'
        + '    <bpmn:userTask id="done" camunda:candidateGroups="managers" />\n'
        + '    <bpmn:endEvent id="end" />\n'
        + '    <bpmn:sequenceFlow id="f_start" sourceRef="start" targetRef="count" />\n'
        + '    <bpmn:sequenceFlow id="f_count" sourceRef="count" targetRef="again" />\n'
        + '    <bpmn:sequenceFlow id="f_back" sourceRef="again" targetRef="count">'
        + '<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">not stop'
        + "</bpmn:conditionExpression></bpmn:sequenceFlow>\n"
        + '    <bpmn:sequenceFlow id="f_out" sourceRef="again" targetRef="done" />\n'
        + '    <bpmn:sequenceFlow id="f_done" sourceRef="done" targetRef="end" />\n'
        + "  </bpmn:process>\n</bpmn:definitions>\n"
    )


def calls_itself(process_id: str = "recursive", *, conditional: bool) -> str:
    """start -> [deeper? gateway] -> call activity `again` (calls this process) -> end.
    With `conditional`, an exclusive gateway calls again only while `depth < limit`, and the
    call activity's script before it counts the depth."""
    gateway = (
        '    <bpmn:exclusiveGateway id="deeper" default="f_stop" />\n'
        '    <bpmn:sequenceFlow id="f_deeper" sourceRef="count" targetRef="deeper" />\n'
        '    <bpmn:sequenceFlow id="f_again" sourceRef="deeper" targetRef="again">'
        '<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">depth &lt; limit'
        "</bpmn:conditionExpression></bpmn:sequenceFlow>\n"
        '    <bpmn:sequenceFlow id="f_stop" sourceRef="deeper" targetRef="end" />\n'
        if conditional
        else '    <bpmn:sequenceFlow id="f_again" sourceRef="count" targetRef="again" />\n'
    )
    return (
        BPMN_HEADER.format(process_id=process_id)
        + f'  <bpmn:process id="{process_id}" isExecutable="true">\n'
        + '    <bpmn:startEvent id="start" />\n'
        + '    <bpmn:scriptTask id="count" scriptFormat="python">'
        + "<bpmn:script>depth = depth + 1</bpmn:script></bpmn:scriptTask>\n"
        + f'    <bpmn:callActivity id="again" calledElement="{process_id}" />\n'
        + '    <bpmn:endEvent id="end" />\n'
        + '    <bpmn:sequenceFlow id="f_start" sourceRef="start" targetRef="count" />\n'
        + gateway
        + '    <bpmn:sequenceFlow id="f_end" sourceRef="again" targetRef="end" />\n'
        + "  </bpmn:process>\n</bpmn:definitions>\n"
    )
