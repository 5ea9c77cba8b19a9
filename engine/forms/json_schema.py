"""The one validator of JSON-schema forms (SpiffArena: react-jsonschema-form), used by the
service for every submission and by the web form (webforms.json_schema) in its
`clean()`."""

import copy
import datetime
import json
import re
import warnings
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from django.utils import timezone
from jsonschema import Draft7Validator
from jsonschema.exceptions import SchemaError
from jsonschema.exceptions import ValidationError as JsonValidationError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from referencing.exceptions import Unresolvable

from engine.exceptions import InvalidInput

# --- JSON-schema forms (SpiffArena: react-jsonschema-form) --------------------------------
#
# A SpiffArena form schema is a JSON Schema with a few extensions: an enum can be filled from
# task data (`"anyOf": ["options_from_task_data_var:fruits"]`), a property can carry a
# `validationErrorMessage` (or ajv-errors' `errorMessage`), and a date property can be bounded
# by `minimumDate` / `maximumDate` ("today" or "field:<sibling>[:start|end]").
# `prepare_json_schema` turns such a schema into a standard one, `json_schema_errors` checks
# data against it with the `jsonschema` library; the web forms (webforms.json_schema)
# and API submissions (`validate_json_schema_submission`) share both.

TASK_DATA_OPTIONS = "options_from_task_data_var:"
DATE_RANGE_DELIMITER = ":::"
_SCHEMA_MAPS = ("properties", "patternProperties", "definitions", "$defs", "dependentSchemas")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SCHEMA_ONE = (
    "additionalItems",
    "additionalProperties",
    "contains",
    "not",
    "if",
    "then",
    "else",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
)
_FORMAT_NAMES = {
    "date": "date (YYYY-MM-DD)",
    "date-time": "date and time",
    "time": "time",
    "email": "email address",
    "uri": "URL",
    "url": "URL",
    "ipv4": "IPv4 address",
    "ipv6": "IPv6 address",
    "uuid": "UUID",
    "regex": "regular expression",
}
_TYPE_NAMES = {
    "integer": "whole number",
    "number": "number",
    "string": "text",
    "boolean": "yes/no value",
    "array": "list",
    "object": "object",
    "null": "empty value",
}


NON_FIELD_KEY = "__all__"


class JsonSchemaError(NamedTuple):
    """One problem with submitted data: where (`path` into the data), which JSON Schema
    keyword failed (`keyword`, "required" for a missing property) and a message for people."""

    path: tuple[str | int, ...]
    keyword: str
    message: str

    @property
    def dotted_path(self) -> str:
        return ".".join(str(part) for part in self.path) or NON_FIELD_KEY


def _task_data_options(placeholder: Any, task_data: Mapping[str, Any] | None) -> list[Any] | None:
    """The list a SpiffArena placeholder (`["options_from_task_data_var:x"]`) names, or None."""
    if not (
        isinstance(placeholder, list)
        and len(placeholder) == 1
        and isinstance(placeholder[0], str)
        and placeholder[0].startswith(TASK_DATA_OPTIONS)
    ):
        return None
    options = (task_data or {}).get(placeholder[0][len(TASK_DATA_OPTIONS) :].strip())
    return options if isinstance(options, list) else []


def _option_schema(option: Any) -> dict[str, Any] | None:
    if isinstance(option, dict) and "value" in option:
        return {"enum": [option["value"]], "title": str(option.get("label", option["value"]))}
    if isinstance(option, str | int | float | bool):
        return {"enum": [option], "title": str(option)}
    return None


def _prepare(node: Any, task_data: Mapping[str, Any] | None) -> None:  # noqa: C901 -- one decision table, clearer whole than split
    if not isinstance(node, dict):
        return
    for keyword in ("anyOf", "oneOf", "items"):
        options = _task_data_options(node.get(keyword), task_data)
        if options is None:
            continue
        if keyword == "items":  # SpiffArena: the variable holds the item schemas
            schemas = [o for o in options if isinstance(o, dict)]
        else:
            schemas = [s for s in map(_option_schema, options) if s is not None]
        if schemas:
            node[keyword] = schemas
        else:  # nothing to offer (yet): leave the value unconstrained rather than crash
            del node[keyword]
    if "required" in node and not isinstance(node["required"], list):
        del node["required"]  # draft-3 style `"required": true` is handled by the parent
    if isinstance(node.get("pattern"), str):
        try:
            re.compile(node["pattern"])
        except re.error:
            del node["pattern"]
    properties = node.get("properties")
    if isinstance(properties, dict):
        listed = node.get("required")
        required: list[Any] = listed if isinstance(listed, list) else []
        for name, sub in properties.items():
            if isinstance(sub, dict) and sub.get("required") is True and name not in required:
                required.append(name)
        if required:
            node["required"] = required
    for keyword in _SCHEMA_MAPS:
        if isinstance(node.get(keyword), dict):
            for sub in node[keyword].values():
                _prepare(sub, task_data)
    for keyword in _SCHEMA_LISTS:
        if isinstance(node.get(keyword), list):
            for sub in node[keyword]:
                _prepare(sub, task_data)
    for keyword in _SCHEMA_ONE:
        _prepare(node.get(keyword), task_data)
    items = node.get("items")
    for sub in items if isinstance(items, list) else [items]:
        _prepare(sub, task_data)
    dependencies = node.get("dependencies")
    if isinstance(dependencies, dict):
        for sub in dependencies.values():
            _prepare(sub, task_data)


def prepare_json_schema(schema: Any, task_data: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A deep copy of a SpiffArena form schema that plain JSON Schema validators accept.

    `options_from_task_data_var:<name>` placeholders become the options listed in
    `task_data[<name>]` (`[{"value", "label"}]`), or are dropped when there are none;
    draft-3 style `"required": true` on a property moves to its parent's `required` list;
    patterns Python cannot compile are dropped. No schema (None) accepts everything.
    """
    prepared = copy.deepcopy(schema) if isinstance(schema, dict) else {}
    _prepare(prepared, task_data)
    return prepared


def _validator_class(schema: dict[str, Any]) -> type[Validator]:
    with warnings.catch_warnings():  # an unknown "$schema" falls back to draft 7
        warnings.simplefilter("ignore", DeprecationWarning)
        return validator_for(schema, default=Draft7Validator)


def _plural(count: Any, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _is_choice_list(schemas: Any) -> bool:
    return (
        isinstance(schemas, list)
        and bool(schemas)
        and all(
            isinstance(s, dict)
            and ("const" in s or (isinstance(s.get("enum"), list) and len(s["enum"]) == 1))
            for s in schemas
        )
    )


def _friendly_message(error: JsonValidationError) -> str:
    keyword, limit, value = error.validator, error.validator_value, error.instance
    schema = error.schema if isinstance(error.schema, dict) else {}
    exclusive = schema.get(f"exclusive{str(keyword).capitalize()}") is True  # draft 4
    if keyword in ("enum", "const") or (keyword in ("anyOf", "oneOf") and _is_choice_list(limit)):
        shown = json.dumps(value, ensure_ascii=False, default=str)
        return f"Select a valid choice. {shown} is not one of the available choices."
    messages: dict[str, str] = {
        "minLength": f"Ensure this value has at least {_plural(limit, 'character')}.",
        "maxLength": f"Ensure this value has at most {_plural(limit, 'character')}.",
        "pattern": "Enter a value in the expected format.",
        "format": f"Enter a valid {_FORMAT_NAMES.get(str(limit), str(limit))}.",
        "minimum": f"Ensure this value is greater than {'' if exclusive else 'or equal to '}"
        f"{limit}.",
        "maximum": f"Ensure this value is less than {'' if exclusive else 'or equal to '}{limit}.",
        "exclusiveMinimum": f"Ensure this value is greater than {limit}.",
        "exclusiveMaximum": f"Ensure this value is less than {limit}.",
        "multipleOf": f"Ensure this value is a multiple of {limit}.",
        "minItems": f"Ensure there {'is' if limit == 1 else 'are'} at least "
        f"{_plural(limit, 'item')}.",
        "maxItems": f"Ensure there {'is' if limit == 1 else 'are'} at most "
        f"{_plural(limit, 'item')}.",
        "uniqueItems": "Ensure the items are unique.",
        "anyOf": "Enter a valid value.",
        "oneOf": "Enter a valid value.",
    }
    if keyword == "type":
        kinds = limit if isinstance(limit, list) else [limit]
        return "Enter a valid " + " or ".join(_TYPE_NAMES.get(str(k), str(k)) for k in kinds) + "."
    return messages.get(str(keyword), error.message)


def _custom_message(schema: Any, keyword: str, prop: str | None = None) -> str | None:
    """The schema author's own message: SpiffArena's `validationErrorMessage` (not for a
    missing value, which says "This field is required.") or ajv-errors' `errorMessage`."""
    if not isinstance(schema, dict):
        return None
    custom = schema.get("errorMessage")
    if isinstance(custom, dict):
        custom = custom.get(keyword)
        if keyword == "required" and isinstance(custom, dict):
            custom = custom.get(prop)
    if isinstance(custom, str) and custom:
        return custom
    spiff = schema.get("validationErrorMessage")
    if keyword != "required" and isinstance(spiff, str) and spiff:
        return spiff
    return None


def _describe(error: JsonValidationError) -> list[JsonSchemaError]:
    path = tuple(error.absolute_path)
    keyword = str(error.validator)
    if keyword == "required" and isinstance(error.instance, dict):
        missing = [
            p
            for p in error.validator_value
            if isinstance(p, str) and p not in error.instance and error.message.startswith(repr(p))
        ]
        prop = missing[0] if missing else None
        message = _custom_message(error.schema, "required", prop) or "This field is required."
        if prop is not None:
            properties = error.schema.get("properties") if isinstance(error.schema, dict) else None
            sub = properties.get(prop) if isinstance(properties, dict) else None
            message = _custom_message(sub, "required") or message
            return [JsonSchemaError((*path, prop), keyword, message)]
        return [JsonSchemaError(path, keyword, message)]
    message = _custom_message(error.schema, keyword) or _friendly_message(error)
    return [JsonSchemaError(path, keyword, message)]


def _as_date(value: Any, end: bool = False) -> datetime.date | None:
    if not isinstance(value, str) or not value:
        return None
    parts = value.split(DATE_RANGE_DELIMITER)
    try:
        return datetime.date.fromisoformat(parts[-1 if end else 0].strip()[:10])
    except ValueError:
        return None


def _date_limit_errors(  # noqa: C901 -- one decision table, clearer whole than split
    schema: Any, data: Any, path: tuple[str | int, ...] = ()
) -> Iterator[JsonSchemaError]:
    """SpiffArena's `minimumDate` / `maximumDate`: "today" or "field:<sibling>[:start|end]",
    several separated by commas; a date range ("start:::end") is checked by its start."""
    if not isinstance(schema, dict):
        return
    properties = schema.get("properties")
    if isinstance(data, dict) and isinstance(properties, dict):
        for name, sub in properties.items():
            if not isinstance(sub, dict) or name not in data:
                continue
            value = _as_date(data[name])
            for keyword, sign in (("minimumDate", 1), ("maximumDate", -1)):
                rules = sub.get(keyword)
                if value is None or not isinstance(rules, str):
                    continue
                for rule in (r.strip() for r in rules.split(",")):
                    other, what = None, ""
                    if rule == "today":
                        now = timezone.now()
                        other = (timezone.localtime(now) if timezone.is_aware(now) else now).date()
                        what = "today"
                    elif rule.startswith("field:"):
                        _, _, spec = rule.partition(":")
                        field, _, side = spec.partition(":")
                        other = _as_date(data.get(field), end=side == "end")
                        title = (properties.get(field) or {}).get("title") or field
                        what = f"“{title}”"
                    if other is not None and (value - other).days * sign < 0:
                        when = "on or after" if sign > 0 else "on or before"
                        if what == "today":
                            when = "today or later" if sign > 0 else "today or earlier"
                            message = f"Ensure this date is {when}."
                        else:
                            message = f"Ensure this date is {when} {what}."
                        yield JsonSchemaError(
                            (*path, name), keyword, _custom_message(sub, keyword) or message
                        )
            yield from _date_limit_errors(sub, data[name], (*path, name))
    items = schema.get("items")
    if isinstance(data, list) and isinstance(items, dict):
        for index, item in enumerate(data):
            yield from _date_limit_errors(items, item, (*path, index))


def json_schema_error_list(schema: dict[str, Any], data: Any) -> list[JsonSchemaError]:
    """Every problem of `data` against a (prepared) JSON Schema, in words for people.

    The draft is the one the schema's `$schema` names (draft 7 when it names none); formats
    (`date`, `email`, ...) are checked. A schema that is itself broken yields one error at
    the root instead of raising.
    """
    cls = _validator_class(schema)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        message = f"The form's JSON schema is not valid: {exc.message}"
        return [JsonSchemaError((), "schema", message)]
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    found: list[JsonSchemaError] = []
    try:
        for error in validator.iter_errors(data):
            found.extend(_describe(error))
    except (Unresolvable, re.error, RecursionError) as exc:
        message = f"The form's JSON schema cannot be applied: {exc}"
        found.append(JsonSchemaError((), "schema", message))
    found.extend(_date_limit_errors(schema, data))
    unique: list[JsonSchemaError] = []
    for item in found:
        if item not in unique:
            unique.append(item)
    return unique


def json_schema_errors(schema: dict[str, Any], data: Any) -> dict[str, str]:
    """`json_schema_error_list` keyed by dotted path (`order.table_number`, `tasks.0.title`;
    `__all__` for the whole object), several messages for one path joined by a space."""
    errors: dict[str, str] = {}
    for error in json_schema_error_list(schema, data):
        key = error.dotted_path
        errors[key] = f"{errors[key]} {error.message}" if key in errors else error.message
    return errors


def _null_for_optional_booleans(node: Any) -> None:
    """SpiffArena's forms submit null for an optional checkbox never ticked: accept it."""
    if not isinstance(node, dict):
        return
    properties = node.get("properties")
    if isinstance(properties, dict):
        listed = node.get("required")
        required = listed if isinstance(listed, list) else []
        for name, sub in properties.items():
            if isinstance(sub, dict) and sub.get("type") == "boolean" and name not in required:
                sub["type"] = ["boolean", "null"]
            _null_for_optional_booleans(sub)
    _null_for_optional_booleans(node.get("items"))
    for keyword in ("definitions", "$defs"):
        if isinstance(node.get(keyword), dict):
            for sub in node[keyword].values():
                _null_for_optional_booleans(sub)


def validate_json_schema_submission(
    form: dict[str, Any], data: Any, *, task_data: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Check an API submission for a task whose form is a JSON schema (SpiffArena).

    `data` is validated against `form["schema"]` (prepared with `task_data`, which fills
    `options_from_task_data_var` choices); raises `InvalidInput("Some fields are not valid.",
    errors={dotted.path: message})`. Returns a deep copy of `data`.
    """
    if not isinstance(data, dict):
        raise InvalidInput("The submitted variables must be a JSON object.")
    schema = prepare_json_schema(form.get("schema"), task_data)
    _null_for_optional_booleans(schema)
    errors = json_schema_errors(schema, data)
    if errors:
        raise InvalidInput("Some fields are not valid.", errors=errors)
    return copy.deepcopy(data)
