"""Small diagrams with timer, message and signal events, for the tests only."""

from tests.helpers import BPMN_HEADER

SPIFF_HEADER = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" '
    'id="Definitions_{process_id}" targetNamespace="http://bpmn.io/schema/bpmn">\n'
)


def flows(*pairs: tuple[str, str]) -> str:
    return "\n".join(
        f'    <bpmn:sequenceFlow id="flow_{source}_{target}" sourceRef="{source}" '
        f'targetRef="{target}" />'
        for source, target in pairs
    )


def camunda(process_id: str, body: str, definitions: str = "") -> str:
    """A Camunda-dialect document: `definitions` go before the process (messages,
    signals), `body` inside it."""
    return (
        BPMN_HEADER.format(process_id=process_id)
        + definitions
        + f'  <bpmn:process id="{process_id}" isExecutable="true">\n{body}\n'
        + "  </bpmn:process>\n</bpmn:definitions>\n"
    )


def user_task(
    task_id: str, group: str = "managers", name: str = "", fields: tuple[str, ...] = ()
) -> str:
    """A user task of `group`, with a form of text `fields` (what a completion may set)."""
    form = "".join(f'<camunda:formField id="{field}" type="string" />' for field in fields)
    body = (
        f"<bpmn:extensionElements><camunda:formData>{form}</camunda:formData>"
        "</bpmn:extensionElements>"
        if fields
        else ""
    )
    return (
        f'    <bpmn:userTask id="{task_id}" name="{name or task_id}" '
        f'camunda:candidateGroups="{group}">{body}</bpmn:userTask>'
    )


def timer(kind: str, value: str) -> str:
    return (
        f"<bpmn:timerEventDefinition><bpmn:{kind}>{value}</bpmn:{kind}></bpmn:timerEventDefinition>"
    )


def approval_with_escalation(duration: str = "P2D", interrupting: bool = True) -> str:
    """An approval that escalates to the directors when nobody approved within `duration`."""
    cancel = "true" if interrupting else "false"
    kind = "timeCycle" if duration.startswith("R") else "timeDuration"
    return camunda(
        "escalating_approval",
        "\n".join(
            [
                '    <bpmn:startEvent id="start" />',
                user_task("approve", "managers", "Approve"),
                '    <bpmn:boundaryEvent id="overdue" attachedToRef="approve" '
                f'cancelActivity="{cancel}">'
                f"{timer(kind, duration)}</bpmn:boundaryEvent>",
                user_task("escalate", "directors", "Escalated approval"),
                '    <bpmn:endEvent id="end" />',
                '    <bpmn:endEvent id="end_escalated" />',
                flows(
                    ("start", "approve"),
                    ("approve", "end"),
                    ("overdue", "escalate"),
                    ("escalate", "end_escalated"),
                ),
            ]
        ),
    )


def wait_for_timer(
    value: str = "PT1H", kind: str = "timeDuration", process_id: str = "waits"
) -> str:
    return camunda(
        process_id,
        "\n".join(
            [
                '    <bpmn:startEvent id="start" />',
                f'    <bpmn:intermediateCatchEvent id="wait">{timer(kind, value)}'
                "</bpmn:intermediateCatchEvent>",
                user_task("after", "managers", "After the wait"),
                '    <bpmn:endEvent id="end" />',
                flows(("start", "wait"), ("wait", "after"), ("after", "end")),
            ]
        ),
    )


def timer_start(value: str, kind: str = "timeCycle", process_id: str = "scheduled") -> str:
    return camunda(
        process_id,
        "\n".join(
            [
                f'    <bpmn:startEvent id="tick">{timer(kind, value)}</bpmn:startEvent>',
                user_task("check", "managers", "Scheduled check"),
                '    <bpmn:endEvent id="end" />',
                flows(("tick", "check"), ("check", "end")),
            ]
        ),
    )


def waits_for_message(
    message: str = "payment_received", process_id: str = "order", receive_task: bool = False
) -> str:
    """Start -> wait for `message` (catch event or receive task) -> user task `ship`."""
    if receive_task:
        wait = f'    <bpmn:receiveTask id="wait" messageRef="msg_{message}" />'
    else:
        wait = (
            '    <bpmn:intermediateCatchEvent id="wait">'
            f'<bpmn:messageEventDefinition messageRef="msg_{message}" />'
            "</bpmn:intermediateCatchEvent>"
        )
    return camunda(
        process_id,
        "\n".join(
            [
                '    <bpmn:startEvent id="start" />',
                wait,
                user_task("ship", "managers", "Ship"),
                '    <bpmn:endEvent id="end" />',
                flows(("start", "wait"), ("wait", "ship"), ("ship", "end")),
            ]
        ),
        f'  <bpmn:message id="msg_{message}" name="{message}" />\n',
    )


def message_start(message: str = "order_placed", process_id: str = "fulfilment") -> str:
    return camunda(
        process_id,
        "\n".join(
            [
                '    <bpmn:startEvent id="start" />',
                f'    <bpmn:startEvent id="on_message"><bpmn:messageEventDefinition '
                f'messageRef="msg_{message}" /></bpmn:startEvent>',
                user_task("pack", "managers", "Pack"),
                '    <bpmn:endEvent id="end" />',
                flows(("start", "pack"), ("on_message", "pack"), ("pack", "end")),
            ]
        ),
        f'  <bpmn:message id="msg_{message}" name="{message}" />\n',
    )


def message_boundary(message: str = "cancel_order", process_id: str = "cancellable") -> str:
    return camunda(
        process_id,
        "\n".join(
            [
                '    <bpmn:startEvent id="start" />',
                user_task("work", "managers", "Work"),
                '    <bpmn:boundaryEvent id="cancelled" attachedToRef="work">'
                f'<bpmn:messageEventDefinition messageRef="msg_{message}" /></bpmn:boundaryEvent>',
                '    <bpmn:endEvent id="end" />',
                '    <bpmn:endEvent id="end_cancelled" />',
                flows(("start", "work"), ("work", "end"), ("cancelled", "end_cancelled")),
            ]
        ),
        f'  <bpmn:message id="msg_{message}" name="{message}" />\n',
    )


def waits_for_signal(
    signal: str = "market_closed", process_id: str = "trader", boundary: bool = False
) -> str:
    if boundary:
        body = [
            '    <bpmn:startEvent id="start" />',
            user_task("trade", "managers", "Trade"),
            '    <bpmn:boundaryEvent id="closed" attachedToRef="trade">'
            f'<bpmn:signalEventDefinition signalRef="sig_{signal}" /></bpmn:boundaryEvent>',
            user_task("report", "managers", "Report"),
            '    <bpmn:endEvent id="end" />',
            '    <bpmn:endEvent id="end_closed" />',
            flows(
                ("start", "trade"), ("trade", "end"), ("closed", "report"), ("report", "end_closed")
            ),
        ]
    else:
        body = [
            '    <bpmn:startEvent id="start" />',
            '    <bpmn:intermediateCatchEvent id="wait">'
            f'<bpmn:signalEventDefinition signalRef="sig_{signal}" />'
            "</bpmn:intermediateCatchEvent>",
            user_task("report", "managers", "Report"),
            '    <bpmn:endEvent id="end" />',
            flows(("start", "wait"), ("wait", "report"), ("report", "end")),
        ]
    return camunda(
        process_id, "\n".join(body), f'  <bpmn:signal id="sig_{signal}" name="{signal}" />\n'
    )


def signal_start(signal: str = "market_closed", process_id: str = "closing_report") -> str:
    return camunda(
        process_id,
        "\n".join(
            [
                f'    <bpmn:startEvent id="on_signal"><bpmn:signalEventDefinition '
                f'signalRef="sig_{signal}" /></bpmn:startEvent>',
                user_task("summarise", "managers", "Summarise"),
                '    <bpmn:endEvent id="end" />',
                flows(("on_signal", "summarise"), ("summarise", "end")),
            ]
        ),
        f'  <bpmn:signal id="sig_{signal}" name="{signal}" />\n',
    )


def call_with_timeout(url_expression: str, duration: str = "PT30S") -> str:
    """A service task with an interrupting boundary timer: too slow, and a person takes over."""
    from tests.engine.service_diagrams import service_task

    return camunda(
        "slow_call",
        "\n".join(
            [
                '    <bpmn:startEvent id="start" />',
                service_task("call", url_expression),
                f'    <bpmn:boundaryEvent id="too_slow" attachedToRef="call">'
                f"{timer('timeDuration', duration)}</bpmn:boundaryEvent>",
                user_task("by_hand", "managers", "Do it by hand"),
                '    <bpmn:endEvent id="end" />',
                '    <bpmn:endEvent id="end_by_hand" />',
                flows(
                    ("start", "call"),
                    ("call", "end"),
                    ("too_slow", "by_hand"),
                    ("by_hand", "end_by_hand"),
                ),
            ]
        ),
    )
