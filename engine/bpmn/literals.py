"""Deploy-time checks of every literal value Baton parses later, so that a diagram that would
fail at run time (a start that goes straight to incident) is refused when it is deployed:

- user and manual tasks: `camunda:dueDate` (an ISO 8601 date and time or duration, or a
  `${expression}`) and `camunda:priority` (a whole number or a `${expression}`);
- timers (`timeDate`, `timeDuration`, `timeCycle`; cron on timer start events only), as the
  timer parser reads them (engine/bpmn/event_definitions.py);
- `camunda:failedJobRetryTimeCycle` (`R5/PT30S`), as the connector task parser reads it;
- `camunda:formData` field constraints: `min`/`max` numbers, `minlength`/`maxlength` whole
  numbers, `pattern` a regular expression, and no constraint Baton would ignore.

`literal_problems` walks one document and returns every problem, not the first: the caller
reports them all at once."""

import ast
import datetime
import re
from collections.abc import Iterator
from dataclasses import dataclass

from django.utils.dateparse import parse_datetime
from lxml import etree

from .connector_tasks import retry_from_cycle
from .elements import HUMAN_TASK_TAGS
from .event_definitions import check_timer_text, timer_source
from .expressions import is_expression
from .schedules import duration_after
from .scripting import ScriptSyntaxError, check_syntax
from .xml import BPMN_NS, CAMUNDA_NS

# The constraints engine/forms/camunda.py applies; any other name would be ignored.
FORM_CONSTRAINTS = ("required", "readonly", "min", "max", "minlength", "maxlength", "pattern")
_TIMER_KINDS = {"timeDate": "date", "timeDuration": "duration", "timeCycle": "cycle"}


@dataclass(frozen=True)
class LiteralProblem:
    node: etree._Element  # where the value is written (its line)
    element: etree._Element  # the BPMN element it belongs to (its id and name)
    message: str


def _syntax_problem(expression: str) -> str | None:
    try:
        check_syntax(expression, expression=True)
    except ScriptSyntaxError as exc:
        return str(exc)
    return None


def due_moment(text: str, now: datetime.datetime) -> datetime.datetime:
    """When a user task is due, from its due date text (an ISO 8601 date and time, or a
    duration from `now`): the one rule the deploy check and the task projection share.
    Raise ValueError for anything else."""
    value = text.strip()
    try:
        if value[:1] in ("P", "p"):
            return now + duration_after(value.upper(), now)
        parsed = parse_datetime(value)
    except (TypeError, OverflowError) as exc:
        raise ValueError(str(exc)) from None
    if parsed is None:
        raise ValueError(f"{text!r} is neither an ISO 8601 date and time nor a duration")
    return parsed


def _due_date_problem(text: str) -> str | None:
    if is_expression(text):  # an expression: the deploy checks it as every ${...} (expressions)
        return None
    try:
        due_moment(text, datetime.datetime.now(datetime.UTC))
    except ValueError:
        return (
            f"the due date {text!r} is neither an ISO 8601 date and time "
            "(2030-01-31T17:00:00Z) nor a duration (P3D, PT4H), nor an expression (${due_date})."
        )
    return None


def _priority_problem(text: str) -> str | None:
    if is_expression(text):  # an expression: the deploy checks it as every ${...} (expressions)
        return None
    if re.fullmatch(r"\s*[+-]?\d{1,9}\s*", text):
        return None
    return f"the priority {text!r} is not a whole number (e.g. 50) nor an expression (${{...}})."


def _timer_problem(kind: str, text: str, *, start: bool) -> str | None:
    if is_expression(text):  # an expression: the deploy checks it as every ${...} (expressions)
        return None
    source, literal = timer_source(text)
    if not source:
        return "the timer has no value."
    if literal is None:  # an expression: Python, maybe a quoted constant (SpiffArena)
        problem = _syntax_problem(source)
        if problem is not None:
            return (
                f"the timer value {text.strip()!r} is neither an ISO 8601 {kind} nor a valid "
                f"expression ({problem})."
            )
        try:
            constant = ast.literal_eval(source)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return None
        if not isinstance(constant, str):
            return None
        literal = constant
    try:
        check_timer_text(kind, literal, start=start)
    except Exception as exc:  # noqa: BLE001 -- whatever the timer parser raises refuses it
        label = "cycle (or cron expression)" if kind == "cycle" else kind
        return f"the timer value {literal!r} is not a valid ISO 8601 {label}: {exc}"
    return None


def _retry_cycle_problem(text: str) -> str | None:
    try:
        retry_from_cycle(text)
    except Exception:  # noqa: BLE001 -- the parser refuses any malformed cycle
        return (
            f"the retry time cycle {text!r} (camunda:failedJobRetryTimeCycle) is not of the "
            "form R5/PT30S (5 attempts, 30 seconds apart)."
        )
    return None


def _constraint_problem(name: str, config: str | None) -> str | None:
    if name not in FORM_CONSTRAINTS:
        return (
            f"the form constraint {name!r} is not one Baton checks ({', '.join(FORM_CONSTRAINTS)})."
        )
    if name in ("required", "readonly"):
        return None
    if config is None or not config.strip():
        return f"the form constraint {name!r} needs a value (config)."
    if name in ("min", "max"):
        try:
            float(config)
        except ValueError:
            return f"the form constraint {name}={config!r} is not a number."
    elif name in ("minlength", "maxlength"):
        if not config.strip().isdigit():
            return f"the form constraint {name}={config!r} is not a whole number of 0 or more."
    else:
        try:
            re.compile(config)
        except re.error as exc:
            return (
                f"the form constraint pattern={config!r} is not a valid regular expression: {exc}."
            )
    return None


def _owner(node: etree._Element) -> etree._Element:
    current: etree._Element | None = node
    while current is not None:
        if current.get("id") and not current.tag.startswith(f"{{{CAMUNDA_NS}}}"):
            return current
        current = current.getparent()
    return node


def _human_task_problems(root: etree._Element) -> Iterator[LiteralProblem]:
    for task in root.iter(*HUMAN_TASK_TAGS):
        for attribute, check in (("dueDate", _due_date_problem), ("priority", _priority_problem)):
            value = task.get(f"{{{CAMUNDA_NS}}}{attribute}")
            problem = check(value) if value is not None and value.strip() else None
            if problem:
                yield LiteralProblem(task, task, problem)


def _timer_problems(root: etree._Element) -> Iterator[LiteralProblem]:
    for definition in root.iter(f"{{{BPMN_NS}}}timerEventDefinition"):
        event = definition.getparent()
        if event is None:
            continue
        start = event.tag == f"{{{BPMN_NS}}}startEvent"
        for tag, kind in _TIMER_KINDS.items():
            for value in definition.iterchildren(f"{{{BPMN_NS}}}{tag}"):
                problem = _timer_problem(kind, value.text or "", start=start)
                if problem:
                    yield LiteralProblem(value, event, f"{problem} ({tag})")


def _retry_problems(root: etree._Element) -> Iterator[LiteralProblem]:
    for cycle in root.iter(f"{{{CAMUNDA_NS}}}failedJobRetryTimeCycle"):
        text = (cycle.text or "").strip()
        problem = _retry_cycle_problem(text) if text else None
        if problem:
            yield LiteralProblem(cycle, _owner(cycle), problem)


def _form_problems(root: etree._Element) -> Iterator[LiteralProblem]:
    for field in root.iter(f"{{{CAMUNDA_NS}}}formField"):
        for constraint in field.iter(f"{{{CAMUNDA_NS}}}constraint"):
            problem = _constraint_problem(constraint.get("name") or "", constraint.get("config"))
            if problem:
                label = field.get("label") or field.get("id") or "?"
                yield LiteralProblem(constraint, _owner(field), f"form field {label!r}: {problem}")


def literal_problems(root: etree._Element) -> list[LiteralProblem]:
    """Every literal of the document that Baton would fail to read at run time."""
    return [
        *_human_task_problems(root),
        *_timer_problems(root),
        *_retry_problems(root),
        *_form_problems(root),
    ]
