"""Data transformation connectors: pure, no network, so that "call, transform, aggregate"
needs no script. Each input is capped (BATON_TRANSFORM_MAX_INPUT_BYTES, as JSON or as text).

- `transform/json_to_xml`: `value` (an object; a single key names the root element, else
  `root`, default "root") -> the XML text. Keys starting with `@` are attributes, `#text` is
  the element's text, a list repeats the element.
- `transform/xml_to_json`: `xml` (text) -> the same shape back: attributes as `@name`,
  repeated elements as lists, an element with only text as its text. Parsed like an
  uploaded diagram: no DOCTYPE, no entities, no network, the depth limit.
- `transform/json_to_csv`: `rows` (a list of objects or of lists), `columns` (the header and
  its order; default: the keys in order of first appearance, which for instance data is
  Postgres's JSONB order, not the order written), `delimiter` (",") -> CSV text.
- `transform/csv_to_json`: `csv` (text), `delimiter` (","), `header` (true: a list of objects
  keyed by the first row; false: a list of lists) -> the rows.
- `transform/jmespath`: `expression` (JMESPath), `value` -> what the expression selects.

Bad input is the BPMN error `TRANSFORM_INVALID` (or `TRANSFORM_TOO_LARGE`), catchable.
"""

import csv
import io
import json
import re
from typing import Any

import jmespath
from django.conf import settings
from jmespath import functions as jmespath_functions
from jmespath.exceptions import JMESPathError
from jmespath.visitor import Options, TreeInterpreter
from lxml import etree

from engine.bpmn.xml import UnsafeXmlError, XmlLimitExceeded, parse_untrusted_xml
from engine.jsonable import encodes_within

from . import BusinessError, ConnectorCall, connector

_NAME = re.compile(r"^[A-Za-z_][\w.-]*$")


def _invalid(message: str) -> BusinessError:
    return BusinessError("TRANSFORM_INVALID", message)


def _capped_text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise _invalid(f"`{name}` must be a text.")
    limit = settings.BATON_TRANSFORM_MAX_INPUT_BYTES
    if len(value.encode()) > limit:
        raise BusinessError("TRANSFORM_TOO_LARGE", f"`{name}` is larger than {limit} bytes.")
    return value


def _capped_value(value: Any, name: str) -> Any:
    limit = settings.BATON_TRANSFORM_MAX_INPUT_BYTES
    if len(json.dumps(value, default=str).encode()) > limit:
        raise BusinessError("TRANSFORM_TOO_LARGE", f"`{name}` is larger than {limit} bytes.")
    return value


# -- JSON -> XML -------------------------------------------------------------------------------


def _element_name(name: Any) -> str:
    text = str(name)
    if not _NAME.match(text) or text.lower().startswith("xml"):
        raise _invalid(f"{text!r} cannot be an XML element or attribute name.")
    return text


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _fill(element: etree._Element, value: Any) -> None:
    if not isinstance(value, dict):
        element.text = _text(value)
        return
    for key, item in value.items():
        if key == "#text":
            element.text = _text(item)
        elif key.startswith("@"):
            element.set(_element_name(key[1:]), _text(item))
        else:
            for each in item if isinstance(item, list) else [item]:
                _fill(etree.SubElement(element, _element_name(key)), each)


@connector("transform/json_to_xml", description="Turns a JSON value into XML text.")
def json_to_xml(params: dict[str, Any], call: ConnectorCall) -> str:
    value = _capped_value(params.get("value"), "value")
    if isinstance(value, dict) and len(value) == 1 and "root" not in params:
        [(root_name, value)] = value.items()
        if isinstance(value, list):
            raise _invalid("The root element cannot be a list; give `root` to wrap it.")
    else:
        root_name = params.get("root") or "root"
    root = etree.Element(_element_name(root_name))
    _fill(root, value)
    return str(etree.tostring(root, encoding="unicode"))


# -- XML -> JSON -------------------------------------------------------------------------------


def _local(tag: Any) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _as_json(element: etree._Element) -> Any:
    result: dict[str, Any] = {f"@{_local(k)}": v for k, v in element.attrib.items()}
    for child in element:
        if not isinstance(child.tag, str):
            continue  # comments and processing instructions
        name, value = _local(child.tag), _as_json(child)
        if name in result:
            existing = result[name]
            result[name] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            result[name] = value
    text = (element.text or "").strip()
    if not result:
        return text or None
    if text:
        result["#text"] = text
    return result


@connector("transform/xml_to_json", description="Turns XML text into a JSON value.")
def xml_to_json(params: dict[str, Any], call: ConnectorCall) -> dict[str, Any]:
    text = _capped_text(params.get("xml"), "xml")
    try:
        root = parse_untrusted_xml(text.encode())
    except (UnsafeXmlError, XmlLimitExceeded) as exc:
        raise _invalid(str(exc)) from None
    except etree.XMLSyntaxError as exc:
        raise _invalid(f"The XML is not well-formed: {exc}") from None
    return {_local(root.tag): _as_json(root)}


# -- CSV ---------------------------------------------------------------------------------------


def _delimiter(params: dict[str, Any]) -> str:
    delimiter = params.get("delimiter") or ","
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '\r\n"':
        raise _invalid("`delimiter` must be one character (not a quote or a line break).")
    return delimiter


def _cell(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value)
    return _text(value)


def _columns(rows: list[Any], given: Any) -> list[str]:
    if given is not None:
        if not isinstance(given, list) or not all(isinstance(c, str) for c in given):
            raise _invalid("`columns` must be a list of texts.")
        return given
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


@connector("transform/json_to_csv", description="Turns a list of rows into CSV text.")
def json_to_csv(params: dict[str, Any], call: ConnectorCall) -> str:
    rows = _capped_value(params.get("rows"), "rows")
    if not isinstance(rows, list):
        raise _invalid("`rows` must be a list of objects or of lists.")
    out = io.StringIO()
    writer = csv.writer(out, delimiter=_delimiter(params), lineterminator="\n")
    if all(isinstance(row, dict) for row in rows):
        columns = _columns(rows, params.get("columns"))
        writer.writerow(columns)
        writer.writerows([_cell(row.get(column)) for column in columns] for row in rows)
    elif all(isinstance(row, list) for row in rows):
        if params.get("columns") is not None:
            writer.writerow(_columns(rows, params["columns"]))
        writer.writerows([_cell(value) for value in row] for row in rows)
    else:
        raise _invalid("`rows` must be a list of objects or of lists, not a mix.")
    return out.getvalue()


@connector("transform/csv_to_json", description="Turns CSV text into a list of rows.")
def csv_to_json(params: dict[str, Any], call: ConnectorCall) -> list[Any]:
    text = _capped_text(params.get("csv"), "csv")
    header = params.get("header", True) not in (False, "false", "False", 0)
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(params))
        rows = [row for row in reader if row]
    except csv.Error as exc:
        raise _invalid(f"The CSV cannot be read: {exc}") from None
    if not header or not rows:
        return rows
    names = rows[0]
    return [
        dict(zip(names, row + [""] * (len(names) - len(row)), strict=False)) for row in rows[1:]
    ]


# -- JMESPath ----------------------------------------------------------------------------------


class _Budget:
    """The work one JMESPath evaluation may do (BATON_TRANSFORM_MAX_INPUT_BYTES units: a
    node visited, an item or character produced). A short expression can otherwise build
    gigabytes: `[@,@,@,@][] | [@,@,@,@][] | ...` quadruples a list at every step."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit

    def spend(self, units: int) -> None:
        self.left -= units
        if self.left < 0:
            raise BusinessError(
                "TRANSFORM_TOO_LARGE",
                f"The JMESPath expression does more work or builds more than {self.limit} "
                "bytes allow (BATON_TRANSFORM_MAX_INPUT_BYTES).",
            )


class _BoundedFunctions(jmespath_functions.Functions):
    """JMESPath's functions, with those that can build more than their input checked first."""

    def __init__(self, budget: _Budget) -> None:
        super().__init__()
        self.budget = budget

    @jmespath_functions.signature({"types": ["string"]}, {"types": ["array-string"]})
    def _func_join(self, separator: str, array: list[str]) -> str:
        self.budget.spend(sum(len(item) for item in array) + len(separator) * len(array))
        return separator.join(array)

    @jmespath_functions.signature({"types": []})
    def _func_to_string(self, arg: Any) -> str:
        if isinstance(arg, str):
            return arg
        if not encodes_within(arg, max(self.budget.left, 0)):
            self.budget.spend(self.budget.left + 1)
        return json.dumps(arg, separators=(",", ":"), default=str)


class _BoundedInterpreter(TreeInterpreter):
    """Evaluates a parsed expression within a budget: every node visited and every list,
    object and text it produces is paid for, and a flatten is paid for before it is built."""

    def __init__(self, budget: _Budget) -> None:
        super().__init__(Options(custom_functions=_BoundedFunctions(budget)))
        self.budget = budget

    def visit(self, node: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        self.budget.spend(1)
        result = super().visit(node, *args, **kwargs)
        if isinstance(result, list | dict | str):
            self.budget.spend(len(result))
        return result

    def visit_flatten(self, node: dict[str, Any], value: Any) -> Any:
        base = self.visit(node["children"][0], value)
        if not isinstance(base, list):
            return None
        self.budget.spend(sum(len(item) if isinstance(item, list) else 1 for item in base))
        merged: list[Any] = []
        for item in base:
            if isinstance(item, list):
                merged.extend(item)
            else:
                merged.append(item)
        return merged


@connector("transform/jmespath", description="Selects and reshapes a value with JMESPath.")
def jmespath_search(params: dict[str, Any], call: ConnectorCall) -> Any:
    expression = params.get("expression")
    if not isinstance(expression, str) or not expression.strip():
        raise _invalid("`expression` must be a JMESPath expression.")
    if len(expression) > 10_000:
        raise BusinessError("TRANSFORM_TOO_LARGE", "`expression` is longer than 10,000 characters.")
    value = _capped_value(params.get("value"), "value")
    limit = settings.BATON_TRANSFORM_MAX_INPUT_BYTES
    try:
        parsed = jmespath.compile(expression).parsed
        result = _BoundedInterpreter(_Budget(limit)).visit(parsed, value)
    except JMESPathError as exc:
        raise _invalid(f"The JMESPath expression failed: {exc}") from None
    # The result may share one list many times over: small in memory, huge as JSON.
    if not encodes_within(result, limit):
        raise BusinessError(
            "TRANSFORM_TOO_LARGE", f"The JMESPath result is larger than {limit} bytes."
        )
    return result
