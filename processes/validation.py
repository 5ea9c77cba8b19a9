"""Checking an upload before anything is stored: size, safe XML, BPMN XSD, the workflow
library's structural checks, Python syntax and every literal value Baton parses later (due
dates, priorities, timers, retry cycles, form constraints). Every problem names the file, the
line and the element (id and name); a deploy reports every problem it finds at once."""

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from django.conf import settings
from lxml import etree

from engine.bpmn.connector_tasks import (
    ConnectorTaskMixin,
    iter_param_expressions,
    may_be_external,
)
from engine.bpmn.elements import describe_human_tasks, describe_start_form
from engine.bpmn.expressions import ExpressionNotSupported, compile_expression, is_feel, is_wrapped
from engine.bpmn.expressions import is_expression as is_camunda_expression
from engine.bpmn.literals import literal_problems
from engine.bpmn.parsing import bpmn_validator, build_parser, detect_dialect
from engine.bpmn.scripting import ScriptSyntaxError, check_syntax
from engine.bpmn.serialization import spec_to_json, unsupported_elements
from engine.bpmn.types import DiagramInvalid, ProcessSpec, WorkflowError
from engine.bpmn.xml import (
    BPMN_NS,
    CAMUNDA_NS,
    FLOW_CONTAINERS,
    MAX_ELEMENTS_IN_A_ROW,
    SPIFF_NS,
    ZEEBE_NS,
    UnsafeXmlError,
    XmlLimitExceeded,
    XmlLimits,
    element_at_line,
    line_of_element,
    parse_untrusted_xml,
    run_over_limit,
)
from engine.connectors import get_connector, registered_connectors
from engine.exceptions import InvalidInput
from engine.jsonable import NumberTooLong, check_json_depth, parse_json_int, too_deep

from .constructs import unsupported_constructs
from .quirks import neutralised_copy
from .recursion import unconditional_recursions

FILE_KINDS = {
    ".bpmn": "bpmn",
    ".bpmn20.xml": "bpmn",
    ".xml": "bpmn",
    ".dmn": "dmn",
    ".json": "json",
}


@dataclass(frozen=True)
class UploadedFile:
    name: str
    content: bytes


@dataclass(frozen=True)
class Problem:
    file: str
    message: str
    line: int | None = None
    element_id: str = ""
    element_name: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "element_id": self.element_id,
            "element_name": self.element_name,
            "message": self.message,
        }

    def describe(self) -> str:
        """One line for a person: where (file, line, element name and id), then what."""
        element = (
            f"“{self.element_name}” ({self.element_id})"
            if self.element_name and self.element_name != self.element_id
            else self.element_id
        )
        where = ", ".join(
            part for part in (self.file, f"line {self.line}" if self.line else "", element) if part
        )
        return f"{where}: {self.message}" if where else self.message


class DeploymentInvalid(Exception):
    """The upload cannot be deployed; `problems` says why, file by file."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.describe() for p in problems))
        self.problems = problems


@dataclass
class ParsedFile:
    name: str
    kind: str
    text: str
    checksum: str
    root: etree._Element | None = None
    json_value: Any = None


@dataclass
class ParsedProcess:
    key: str
    name: str
    file_name: str
    xml: str
    spec: dict[str, Any]
    checksum: str
    start_form: dict[str, Any]


@dataclass
class ParsedDeployment:
    dialect: str
    files: list[ParsedFile]
    processes: list[ParsedProcess]
    elements: dict[str, dict[str, Any]]
    checksum: str = ""
    problems: list[Problem] = field(default_factory=list)
    # Tolerated departures from the schema (processes/quirks.py): deployed, but reported.
    warnings: list[Problem] = field(default_factory=list)


def _kind_of(name: str) -> str | None:
    lowered = name.lower()
    for suffix, kind in FILE_KINDS.items():
        if lowered.endswith(suffix):
            return kind
    return None


def _sha256(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def _read_files(files: list[UploadedFile]) -> list[ParsedFile]:
    if not files:
        raise DeploymentInvalid([Problem(file="", message="No file was uploaded.")])
    problems: list[Problem] = []
    total = sum(len(f.content) for f in files)
    if total > settings.BATON_MAX_DEPLOYMENT_BYTES:
        problems.append(
            Problem(
                file="",
                message=f"The upload is {total} bytes; a deployment may hold at most "
                f"{settings.BATON_MAX_DEPLOYMENT_BYTES} bytes.",
            )
        )
    parsed: list[ParsedFile] = []
    names: set[str] = set()
    limits = XmlLimits.for_deployment()  # the element count runs across the files
    for upload in files:
        name = upload.name
        kind = _kind_of(name)
        if name in names:
            problems.append(Problem(file=name, message="Two files have this name."))
            continue
        names.add(name)
        if kind is None:
            problems.append(
                Problem(file=name, message="Only .bpmn, .dmn and .json files can be deployed.")
            )
            continue
        if len(upload.content) > settings.BATON_MAX_FILE_BYTES:
            problems.append(
                Problem(
                    file=name,
                    message=f"The file is {len(upload.content)} bytes; the limit is "
                    f"{settings.BATON_MAX_FILE_BYTES} bytes per file.",
                )
            )
            continue
        problem = _parse_one(upload, kind, parsed, limits)
        if problem is not None:
            problems.append(problem)
    if problems:
        raise DeploymentInvalid(problems)
    return parsed


def _parse_json(upload: UploadedFile, text: str, item: ParsedFile) -> Problem | None:
    try:
        item.json_value = json.loads(text, parse_int=parse_json_int)
        check_json_depth(item.json_value, "The JSON")
    except json.JSONDecodeError as exc:
        return Problem(file=upload.name, line=exc.lineno, message=f"Invalid JSON: {exc.msg}.")
    except NumberTooLong as exc:
        return Problem(file=upload.name, message=f"Invalid JSON: {exc}.")
    except RecursionError:
        return Problem(file=upload.name, message=too_deep("The JSON").detail)
    except InvalidInput as exc:
        return Problem(file=upload.name, message=exc.detail)
    return None


def _parse_one(
    upload: UploadedFile, kind: str, parsed: list[ParsedFile], limits: XmlLimits
) -> Problem | None:
    try:
        text = upload.content.decode("utf-8")
    except UnicodeDecodeError:
        return Problem(file=upload.name, message="The file is not UTF-8 text.")
    item = ParsedFile(name=upload.name, kind=kind, text=text, checksum=_sha256(upload.content))
    if kind == "json":
        problem = _parse_json(upload, text, item)
        if problem is not None:
            return problem
    else:
        try:
            item.root = parse_untrusted_xml(upload.content, limits)
        except XmlLimitExceeded as exc:
            return Problem(
                file=upload.name, line=exc.line, element_id=exc.element_id, message=str(exc)
            )
        except UnsafeXmlError as exc:
            return Problem(file=upload.name, message=str(exc))
        except etree.XMLSyntaxError as exc:
            return Problem(
                file=upload.name, line=exc.lineno, message=f"The XML is malformed: {exc.msg}"
            )
    parsed.append(item)
    return None


def _check_schema(item: ParsedFile, warnings: list[Problem]) -> list[Problem]:
    assert item.root is not None
    if item.root.tag != f"{{{BPMN_NS}}}definitions":
        return [
            Problem(
                file=item.name,
                line=item.root.sourceline,
                message="This is not a BPMN 2.0 document: the root element must be "
                "bpmn:definitions.",
            )
        ]
    tolerant, quirks = neutralised_copy(item.root)
    try:
        bpmn_validator().validate(tolerant, item.name)
    except DiagramInvalid as exc:
        line = int(exc.line_number) if exc.line_number else None
        return [
            Problem(
                file=item.name,
                line=line,
                element_id=element_at_line(item.root, line),
                message=f"The document does not follow the BPMN 2.0 schema: {exc}".rstrip(". ")
                + ".",
            )
        ]
    warnings.extend(
        Problem(file=item.name, line=q.line, element_id=q.element_id, message=q.message)
        for q in quirks
    )
    return []


def _owner_id(node: etree._Element) -> str:
    current: etree._Element | None = node
    while current is not None:
        if current.get("id"):
            return current.get("id") or ""
        current = current.getparent()
    return ""


def _check_python(item: ParsedFile) -> list[Problem]:
    assert item.root is not None
    problems = []
    snippets: list[tuple[etree._Element, str]] = []  # (node, what it is)
    for script in item.root.iter(f"{{{BPMN_NS}}}script"):
        snippets.append((script, "script"))
    for condition in item.root.iter(f"{{{BPMN_NS}}}conditionExpression"):
        snippets.append((condition, "condition"))
    for condition in item.root.iterfind(
        f".//{{{BPMN_NS}}}adHocSubProcess/{{{BPMN_NS}}}completionCondition"
    ):
        snippets.append((condition, "completion condition"))
    for tag in ("preScript", "postScript"):
        for script in item.root.iter(f"{{{SPIFF_NS}}}{tag}"):
            snippets.append((script, "script"))
    for node, what in snippets:
        is_expression = what != "script"
        source = (node.text or "").strip() if is_expression else (node.text or "")
        if not source.strip() or (is_expression and is_camunda_expression(source)):
            continue  # `${...}` and `= ...`: _check_camunda_expressions
        try:
            check_syntax(source, expression=is_expression)
        except ScriptSyntaxError as exc:
            line = node.sourceline + (exc.line or 1) - 1 if node.sourceline else None
            problems.append(
                Problem(
                    file=item.name,
                    line=line,
                    element_id=_owner_id(node),
                    message=f"The {what} is not valid Python: {exc}",
                )
            )
    return problems


# Where a diagram holds expressions that may be written `${...}` (Camunda 7) or `= ...`
# (Camunda 8): these elements' texts, every `camunda:` attribute and element text, and every
# `zeebe:` attribute. Scripts and documentation are not.
_EXPRESSION_TEXTS = {
    f"{{{BPMN_NS}}}{tag}"
    for tag in (
        "conditionExpression",
        "completionCondition",
        "loopCondition",
        "loopCardinality",
        "timeDuration",
        "timeDate",
        "timeCycle",
    )
}


_ZEEBE_LOOP = f"{{{ZEEBE_NS}}}loopCharacteristics"


_JAVA_DELEGATE_ATTRIBUTES = {
    f"{{{CAMUNDA_NS}}}{name}" for name in ("class", "delegateExpression", "expression")
}


def _wrapped_expressions(root: etree._Element) -> Iterator[tuple[etree._Element, str]]:
    for node in root.iter():
        if not isinstance(node.tag, str):
            continue
        holds_expression = node.tag in _EXPRESSION_TEXTS or node.tag.startswith(f"{{{CAMUNDA_NS}}}")
        text = node.text or ""
        if (holds_expression and is_wrapped(text)) or (
            node.tag in _EXPRESSION_TEXTS and is_feel(text)
        ):
            yield node, text.strip()
        # A zeebe:loopCharacteristics is checked by the multi-instance parser, which names it.
        zeebe = node.tag.startswith(f"{{{ZEEBE_NS}}}") and node.tag != _ZEEBE_LOOP
        for name, value in node.attrib.items():
            if name in _JAVA_DELEGATE_ATTRIBUTES:
                continue  # refused as Java, pointing to external tasks (not read as JUEL)
            camunda = name.startswith(f"{{{CAMUNDA_NS}}}") and is_wrapped(value)
            if camunda or (zeebe and is_feel(value)):
                yield node, value.strip()
        if node.tag.startswith(f"{{{CAMUNDA_NS}}}"):
            for name in ("sourceExpression", "businessKey"):
                value = node.get(name)
                if value and is_wrapped(value):
                    yield node, value.strip()


def _check_wrapped_expressions(item: ParsedFile) -> list[Problem]:
    """`${...}` (JUEL) and `= ...` (FEEL) expressions that cannot be read
    (engine.bpmn.expressions)."""
    assert item.root is not None
    problems = []
    for node, text in _wrapped_expressions(item.root):
        try:
            compile_expression(text)
        except ExpressionNotSupported as exc:
            problems.append(
                Problem(
                    file=item.name,
                    line=node.sourceline,
                    element_id=_owner_id(node),
                    message=f"The expression {text} cannot be read: {exc}",
                )
            )
    return problems


def _check_runs(item: ParsedFile) -> list[Problem]:
    """Runs of elements too long for the workflow library's recursive parser, refused up front."""
    assert item.root is not None
    problems = []
    for container in item.root.iter(*FLOW_CONTAINERS):
        element_id = run_over_limit(container)
        if element_id is not None:
            problems.append(
                Problem(
                    file=item.name,
                    line=line_of_element(item.root, element_id),
                    element_id=element_id,
                    message=f"{container.get('id')!r} has more than {MAX_ELEMENTS_IN_A_ROW} "
                    "elements in a row (following its sequence flows), the limit. Move parts of "
                    "it into subprocesses or call activities.",
                )
            )
    return problems


def _check_unhonoured_attributes(item: ParsedFile) -> list[Problem]:
    """Attributes the engine would silently ignore, refused instead: an activity starts once
    per arriving token and completes with one, and a loop's maximum is a count."""
    assert item.root is not None
    problems = []

    def refuse(node: etree._Element, message: str) -> None:
        problems.append(
            Problem(
                file=item.name,
                line=node.sourceline,
                element_id=_owner_id(node),
                message=message,
            )
        )

    for node in item.root.iter(etree.Element):
        for attribute in ("startQuantity", "completionQuantity"):
            value = node.get(attribute)
            if value is not None and value.strip() != "1":
                refuse(
                    node,
                    f"{attribute}={value!r} is not supported: an activity starts once per "
                    f"arriving token and completes with one (leave {attribute} at 1).",
                )
    for loop in item.root.iter(f"{{{BPMN_NS}}}standardLoopCharacteristics"):
        maximum = loop.get("loopMaximum")
        if maximum is not None and not maximum.strip().isdigit():
            refuse(
                loop,
                f"loopMaximum={maximum!r} must be a whole number of 0 or more (leave it out "
                "for a loop without limit).",
            )
    return problems


def _check_constructs(item: ParsedFile, roots: list[etree._Element]) -> list[Problem]:
    """Constructs Baton refuses and references that lead nowhere (processes.constructs)."""
    assert item.root is not None
    return [
        Problem(
            file=item.name,
            line=node.sourceline,
            element_id=_owner_id(node),
            message=message,
        )
        for node, message in unsupported_constructs(item.root, roots)
    ]


def _check_recursion(bpmn: list[ParsedFile]) -> list[Problem]:
    """Processes that call themselves on every run (processes.recursion)."""
    files = {id(f.root): f for f in bpmn if f.root is not None}
    return [
        Problem(
            file=files[id(call.getroottree().getroot())].name,
            line=call.sourceline,
            element_id=call.get("id") or "",
            message=message,
        )
        for call, message in unconditional_recursions([f.root for f in bpmn if f.root is not None])
    ]


def _check_business_rule_tasks(item: ParsedFile) -> list[Problem]:
    """A Camunda business rule task runs the DMN decision it names (the workflow library
    fails with a KeyError on one that names none)."""
    assert item.root is not None
    return [
        Problem(
            file=item.name,
            line=task.sourceline,
            element_id=task.get("id") or "",
            message="A business rule task needs camunda:decisionRef: the id of the DMN "
            "decision to evaluate (deploy its .dmn file with the diagram).",
        )
        for task in item.root.iter(f"{{{BPMN_NS}}}businessRuleTask")
        if not task.get(f"{{{CAMUNDA_NS}}}decisionRef")
        and task.find(f".//{{{ZEEBE_NS}}}calledDecision") is None
    ]


def _check_literals(item: ParsedFile) -> list[Problem]:
    """Due dates, priorities, timers, retry cycles and form constraints Baton would fail to
    read at run time (engine/bpmn/literals.py)."""
    assert item.root is not None
    return [
        Problem(
            file=item.name,
            line=found.node.sourceline,
            element_id=found.element.get("id") or "",
            message=found.message[:1].upper() + found.message[1:],
        )
        for found in literal_problems(item.root)
    ]


def _named(problems: list[Problem], files: list[ParsedFile]) -> list[Problem]:
    """The problems with the name of the element each is about, as the diagram shows it."""
    names: dict[tuple[str, str], str] = {}
    for item in files:
        if item.root is None:
            continue
        for node in item.root.iter(etree.Element):
            if node.get("id") and node.get("name") and node.tag.startswith(f"{{{BPMN_NS}}}"):
                names.setdefault((item.name, node.get("id") or ""), node.get("name") or "")
    return [
        replace(p, element_name=names.get((p.file, p.element_id), p.element_name))
        if p.element_id
        else p
        for p in problems
    ]


TOO_DEEP_FOR_SPIFF = (
    "The process is too long or nests too deeply to be read; move parts of "
    "it into subprocesses or call activities."
)


# What a message for a modeller never shows: the repr of an exception, of bytes, of XML.
REPR_MARKS = ("<bpmn", "<Element ", "b'", 'b"', "Error(", "Exception(")


def _tag_of(root: etree._Element | None, element_id: str) -> str:
    if root is None or not element_id:
        return ""
    for node in root.iter(etree.Element):
        if node.get("id") == element_id:
            return str(etree.QName(node).localname)
    return ""


def _problem_from_spiff(exc: WorkflowError, files: list[ParsedFile]) -> Problem:
    file_name = getattr(exc, "file_name", "") or ""
    element_id = getattr(exc, "id", "") or ""
    root = next((f.root for f in files if f.name == file_name), None)
    line = line_of_element(root, element_id) if root is not None else None
    if not line and getattr(exc, "line_number", None):
        line = int(exc.line_number)
    message = str(exc).rstrip(". ") + "."
    # The workflow library wraps what went wrong in its own exception, a RecursionError included.
    if isinstance(exc.__context__, RecursionError):
        message = TOO_DEEP_FOR_SPIFF
    elif any(mark in message for mark in REPR_MARKS):
        # Whatever else the library wraps comes as a Python repr, which no modeller can read.
        tag = _tag_of(root, element_id)
        message = f"Baton cannot run this {tag or 'element'} as it is written (yet)."
    return Problem(file=file_name, line=line, element_id=element_id, message=message)


def _check_connector_tasks(item: ParsedFile, specs: list[ProcessSpec]) -> list[Problem]:
    """Every service task names a registered connector and has valid Python expressions."""
    assert item.root is not None
    problems = []
    for spec in specs:
        for task_spec in spec.task_specs.values():
            if not isinstance(task_spec, ConnectorTaskMixin):
                continue
            element_id = task_spec.bpmn_id or task_spec.name
            line = line_of_element(item.root, element_id)
            # An unknown Camunda topic or job type is an external task (engine/services).
            if get_connector(task_spec.connector) is None and not may_be_external(task_spec):
                known = ", ".join(registered_connectors())
                problems.append(
                    Problem(
                        file=item.name,
                        line=line,
                        element_id=element_id,
                        message=f"Unknown connector {task_spec.connector!r}; registered: {known}.",
                    )
                )
            trees = [*task_spec.connector_params.values(), *task_spec.result_mappings.values()]
            for expression in (e for tree in trees for e in iter_param_expressions(tree)):
                try:
                    check_syntax(expression, expression=True)
                except ScriptSyntaxError as exc:
                    problems.append(
                        Problem(
                            file=item.name,
                            line=line,
                            element_id=element_id,
                            message=f"The expression {expression!r} is not valid Python: {exc}",
                        )
                    )
    return problems


def _executable_processes(item: ParsedFile) -> list[etree._Element]:
    assert item.root is not None
    return [
        process
        for process in item.root.iter(f"{{{BPMN_NS}}}process")
        if process.get("isExecutable", "true").lower() == "true"
    ]


def _build_processes(bpmn: list[ParsedFile], others: list[ParsedFile]) -> ParsedDeployment:  # noqa: C901 -- one decision table, clearer whole than split
    roots = [f.root for f in bpmn if f.root is not None]
    dialect = detect_dialect(roots)
    parser = build_parser(dialect)
    # Schema validation already ran file by file, with better messages.
    parser.validator = None
    json_files = {f.name: f.json_value for f in others if f.kind == "json"}
    try:
        for item in bpmn:
            parser.add_bpmn_xml(item.root, item.name)
        for item in others:
            if item.kind == "dmn":
                parser.add_dmn_xml(item.root, item.name)
    except WorkflowError as exc:
        raise DeploymentInvalid([_problem_from_spiff(exc, bpmn + others)]) from None
    except RecursionError:
        raise DeploymentInvalid([Problem(file=bpmn[0].name, message=TOO_DEEP_FOR_SPIFF)]) from None

    dependency_checksums = sorted(f.checksum for f in others)
    processes: list[ParsedProcess] = []
    problems: list[Problem] = []
    for item in bpmn:
        for node in _executable_processes(item):
            key = node.get("id") or ""
            try:
                spec = parser.get_spec(key)
                subprocess_specs = parser.get_subprocess_specs(key)
                connector_problems = _check_connector_tasks(
                    item, [spec, *subprocess_specs.values()]
                )
                if connector_problems:
                    problems.extend(connector_problems)
                    continue
                spec_json = spec_to_json(dialect, spec, subprocess_specs)
                json.dumps(spec_json)
            except WorkflowError as exc:
                problems.append(_problem_from_spiff(exc, bpmn + others))
                continue
            except RecursionError:
                problems.append(Problem(file=item.name, element_id=key, message=TOO_DEEP_FOR_SPIFF))
                continue
            except TypeError:
                unsupported = unsupported_elements(dialect, spec, subprocess_specs) or [
                    (key, "part of this process")
                ]
                problems.extend(
                    Problem(
                        file=item.name,
                        line=line_of_element(item.root, element_id),
                        element_id=element_id,
                        message=f"Baton cannot run this element type ({kind}) yet.",
                    )
                    for element_id, kind in unsupported
                )
                continue
            processes.append(
                ParsedProcess(
                    key=key,
                    name=node.get("name") or key,
                    file_name=item.name,
                    xml=item.text,
                    spec=spec_json,
                    checksum=_sha256(
                        item.checksum.encode(), *(c.encode() for c in dependency_checksums)
                    ),
                    start_form=describe_start_form(node, json_files),
                )
            )
    if problems:
        raise DeploymentInvalid(problems)
    return ParsedDeployment(
        dialect=dialect,
        files=bpmn + others,
        processes=processes,
        elements=describe_human_tasks(roots, json_files),
    )


def parse_deployment(files: list[UploadedFile]) -> ParsedDeployment:
    """Validate an upload and parse its executable processes; raise `DeploymentInvalid`."""
    parsed = _read_files(files)
    bpmn = [f for f in parsed if f.kind == "bpmn"]
    others = [f for f in parsed if f.kind != "bpmn"]
    if not bpmn:
        raise DeploymentInvalid([Problem(file="", message="The upload holds no BPMN file.")])
    problems: list[Problem] = []
    warnings: list[Problem] = []
    roots = [f.root for f in bpmn if f.root is not None]
    # The workflow library cannot read a document off the schema or with too long runs.
    unreadable = False
    for item in bpmn:
        schema_problems = _check_schema(item, warnings)
        if schema_problems:
            problems.extend(schema_problems)
            unreadable = True
            continue
        runs = _check_runs(item)
        unreadable = unreadable or bool(runs)
        problems.extend(
            [
                *_check_python(item),
                *_check_wrapped_expressions(item),
                *runs,
                *_check_unhonoured_attributes(item),
                *_check_constructs(item, roots),
                *_check_literals(item),
            ]
        )
    if not unreadable:
        problems.extend(_check_recursion(bpmn))
        if detect_dialect(roots) == "camunda":
            # The library's parser cannot read such a task at all (a KeyError).
            rules = [p for item in bpmn for p in _check_business_rule_tasks(item)]
            problems.extend(rules)
            unreadable = bool(rules)
    if not unreadable and not any(_executable_processes(item) for item in bpmn):
        problems.append(
            Problem(
                file=bpmn[0].name,
                message='No process is marked executable (isExecutable="true").',
            )
        )
        unreadable = True
    if unreadable:
        raise DeploymentInvalid(_named(problems, parsed))
    try:
        deployment = _build_processes(bpmn, others)
    except DeploymentInvalid as exc:
        # The workflow library's checks run even when the ones above found problems, so that
        # one save shows them all; an element already reported is not reported twice, and a
        # problem the library cannot place (often a consequence of one above) only alone.
        reported = {(p.file, p.element_id) for p in problems if p.element_id}
        problems.extend(
            p
            for p in exc.problems
            if (p.element_id or not problems) and (p.file, p.element_id) not in reported
        )
    if problems:
        raise DeploymentInvalid(_named(problems, parsed))
    by_name = sorted(parsed, key=lambda f: f.name)
    deployment.checksum = _sha256(*(f.checksum.encode() for f in by_name))
    deployment.warnings = _named(warnings, parsed)
    return deployment
