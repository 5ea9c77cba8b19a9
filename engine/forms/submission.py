"""What a completion or a start may set: the fields its form declares, checked by the form's
dialect (`camunda`, `json_schema`). Every way in (the web form, the API, the command line)
goes through `clean_submission` in the services."""

import copy
from collections.abc import Mapping
from typing import Any

from engine.exceptions import InvalidInput

from .camunda import clean_camunda_fields
from .json_schema import validate_json_schema_submission
from .references import SchemaReferences


def clean_submission(
    form: dict[str, Any], data: Any, *, task_data: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Return a deep copy of `data` with form fields checked and typed; raise `InvalidInput`.

    Only the form's fields are taken (a task without a form takes none): a submission may not
    set other process variables, unless the diagram says the task accepts undeclared ones
    (`elements.ACCEPT_UNDECLARED_PROPERTY`, or a JSON schema whose `additionalProperties`
    admits more). Read-only fields are shown, never taken. A boolean field left out counts
    as false (an unticked checkbox). `task_data` fills a JSON schema's choices that come from
    the task's data (SpiffArena's `options_from_task_data_var`).
    """
    if not isinstance(data, dict):
        raise InvalidInput("The submitted variables must be a JSON object.")
    _refuse_undeclared(form, data)
    cleaned = copy.deepcopy(data)
    if form.get("type") == "json-schema" and isinstance(form.get("schema"), dict):
        checked = validate_json_schema_submission(form, cleaned, task_data=task_data)
        for name in read_only_fields(form):
            checked.pop(name, None)
        return checked
    if form.get("type") != "camunda":
        return cleaned
    return clean_camunda_fields(form.get("fields", []), cleaned)


def declared_fields(form: dict[str, Any]) -> set[str] | None:
    """The variables a submission of this form may set; None: any (the diagram says so)."""
    if form.get("accepts_undeclared"):
        return None
    schema = form.get("schema")
    if form.get("type") == "json-schema" and isinstance(schema, dict):
        if schema.get("additionalProperties", False) not in (False, None):
            return None  # the schema itself admits more (true, or a schema for the rest)
        return _schema_fields(schema, SchemaReferences(schema), set())
    if form.get("type") == "camunda":
        return {f["id"] for f in form.get("fields", [])}
    return set()


def read_only_fields(form: dict[str, Any]) -> set[str]:
    """The fields a submission may not change (shown, not kept)."""
    if form.get("type") == "camunda":
        return {f["id"] for f in form.get("fields", []) if f.get("readonly")}
    schema = form.get("schema") if form.get("type") == "json-schema" else None
    if not isinstance(schema, dict):
        return set()
    properties = schema.get("properties")
    ui_schema = form.get("ui_schema")
    properties = properties if isinstance(properties, dict) else {}
    ui_schema = ui_schema if isinstance(ui_schema, dict) else {}

    def marked(node: Any, flag: str) -> bool:
        return isinstance(node, dict) and node.get(flag) is True

    return {
        name
        for name in _schema_fields(schema, SchemaReferences(schema), set())
        if marked(properties.get(name), "readOnly") or marked(ui_schema.get(name), "ui:readonly")
    }


def _schema_fields(node: Any, references: SchemaReferences, seen: set[int]) -> set[str]:
    """The top-level property names a JSON schema declares anywhere: `properties` and
    `required`, and those of the schemas it combines (`allOf`/`anyOf`/`oneOf`, `if`/`then`/
    `else`, `dependencies`, local `$ref`s)."""
    if not isinstance(node, dict) or id(node) in seen:
        return set()
    seen.add(id(node))
    names = set(node["properties"]) if isinstance(node.get("properties"), dict) else set()
    if isinstance(node.get("required"), list):
        names.update(str(n) for n in node["required"])
    parts: list[Any] = [node.get(k) for k in ("if", "then", "else")]
    for keyword in ("allOf", "anyOf", "oneOf"):
        if isinstance(node.get(keyword), list):
            parts.extend(node[keyword])
    if isinstance(node.get("dependencies"), dict):
        names.update(node["dependencies"])
        parts.extend(node["dependencies"].values())
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        parts.append(references.target(ref)[1])
    for part in parts:
        names |= _schema_fields(part, references, seen)
    return names


def _refuse_undeclared(form: dict[str, Any], data: dict[str, Any]) -> None:
    declared = declared_fields(form)
    if declared is None:
        return
    undeclared = sorted(str(key) for key in data if key not in declared)
    if undeclared:
        raise InvalidInput(
            "The submission sets variables the form does not declare.",
            errors={key: "The form has no such field." for key in undeclared},
        )
