"""Small Camunda diagrams with service tasks for the service-task tests."""

import itertools
from xml.sax.saxutils import escape

HEADER = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'id="Definitions_svc" targetNamespace="http://bpmn.io/schema/bpmn">\n'
)


def service_task(
    task_id: str,
    url_expression: str,
    *,
    outputs: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float | None = None,
    retry_cycle: str | None = None,
    topic: str = "http",
    params: dict[str, str] | None = None,
) -> str:
    """`params`: more input parameters as written in the diagram (`${...}` an expression,
    anything else literal text)."""
    inputs = [
        f'<camunda:inputParameter name="url">${{{escape(url_expression)}}}</camunda:inputParameter>'
    ]
    inputs += [
        f'<camunda:inputParameter name="{escape(name)}">{escape(text)}</camunda:inputParameter>'
        for name, text in (params or {}).items()
    ]
    if timeout is not None:
        inputs.append(
            f'<camunda:inputParameter name="timeout">${{{timeout}}}</camunda:inputParameter>'
        )
    if headers:
        entries = "".join(
            f'<camunda:entry key="{escape(k)}">{escape(v)}</camunda:entry>'
            for k, v in headers.items()
        )
        inputs.append(
            '<camunda:inputParameter name="headers">'
            f"<camunda:map>{entries}</camunda:map></camunda:inputParameter>"
        )
    for name, expression in (outputs or {}).items():
        inputs.append(
            f'<camunda:outputParameter name="{name}">${{{escape(expression)}}}'
            "</camunda:outputParameter>"
        )
    retry = (
        f"<camunda:failedJobRetryTimeCycle>{retry_cycle}</camunda:failedJobRetryTimeCycle>"
        if retry_cycle
        else ""
    )
    return (
        f'    <bpmn:serviceTask id="{task_id}" name="Call {task_id}" camunda:type="external" '
        f'camunda:topic="{topic}"><bpmn:extensionElements><camunda:inputOutput>'
        f"{''.join(inputs)}</camunda:inputOutput>{retry}</bpmn:extensionElements>"
        "</bpmn:serviceTask>\n"
    )


def sequence(process_id: str, tasks: list[str], *, catch_error: str | None = None) -> str:
    """start -> tasks... -> end. With `catch_error`, an error boundary event on the first
    task leads to script `handle` (handled = True) and end `end_handled`."""
    ids = [t.split('id="')[1].split('"')[0] for t in tasks]
    nodes = ["start", *ids, "end"]
    body = ['    <bpmn:startEvent id="start" />\n', *tasks, '    <bpmn:endEvent id="end" />\n']
    flows = [
        f'    <bpmn:sequenceFlow id="f{i}" sourceRef="{a}" targetRef="{b}" />\n'
        for i, (a, b) in enumerate(itertools.pairwise(nodes))
    ]
    errors = ""
    if catch_error is not None:
        code = f' errorCode="{catch_error}"' if catch_error else ""
        errors = f'  <bpmn:error id="err" name="API error"{code} />\n'
        body.append(
            f'    <bpmn:boundaryEvent id="on_error" attachedToRef="{ids[0]}">'
            '<bpmn:errorEventDefinition errorRef="err" /></bpmn:boundaryEvent>\n'
            '    <bpmn:scriptTask id="handle" scriptFormat="python">'
            "<bpmn:script>handled = True</bpmn:script></bpmn:scriptTask>\n"
            '    <bpmn:endEvent id="end_handled" />\n'
        )
        flows.append('<bpmn:sequenceFlow id="fe1" sourceRef="on_error" targetRef="handle" />\n')
        flows.append('<bpmn:sequenceFlow id="fe2" sourceRef="handle" targetRef="end_handled" />\n')
    return (
        HEADER
        + errors
        + f'  <bpmn:process id="{process_id}" isExecutable="true">\n'
        + "".join(body)
        + "".join(flows)
        + "  </bpmn:process>\n</bpmn:definitions>\n"
    )


def parallel(process_id: str, tasks: list[str]) -> str:
    """start -> fork -> each task -> join -> end."""
    ids = [t.split('id="')[1].split('"')[0] for t in tasks]
    body = [
        '    <bpmn:startEvent id="start" />\n',
        '    <bpmn:parallelGateway id="fork" />\n',
        *tasks,
        '    <bpmn:parallelGateway id="join" />\n',
        '    <bpmn:endEvent id="end" />\n',
        '    <bpmn:sequenceFlow id="f_start" sourceRef="start" targetRef="fork" />\n',
        '    <bpmn:sequenceFlow id="f_end" sourceRef="join" targetRef="end" />\n',
    ]
    for task_id in ids:
        body.append(
            f'    <bpmn:sequenceFlow id="f_in_{task_id}" sourceRef="fork" '
            f'targetRef="{task_id}" />\n'
        )
        body.append(
            f'    <bpmn:sequenceFlow id="f_out_{task_id}" sourceRef="{task_id}" '
            'targetRef="join" />\n'
        )
    return (
        HEADER
        + f'  <bpmn:process id="{process_id}" isExecutable="true">\n'
        + "".join(body)
        + "  </bpmn:process>\n</bpmn:definitions>\n"
    )
