"""Django forms built from a JSON Schema and a react-jsonschema-form UI schema (SpiffArena).

The inbox renders them with Django's own accessible markup (`{{ form }}`: a label or a
fieldset legend per field, help texts tied with `aria-describedby`, error lists) and checks
them on the server: first each Django field, then the whole submission against the JSON
schema with the `jsonschema` library, each error attached to the field it is about.

API
---
`form_class_for(schema, ui_schema=None, *, task_data=None) -> type[JsonSchemaForm]`
    One field per property, in `ui:order`; nested objects are flattened into fields named
    `parent.child`. `task_data` fills SpiffArena's `options_from_task_data_var:<name>` choices
    and hides the fields listed in `form_ui_hidden_fields`.
`initial_for(schema, ui_schema, task_data) -> dict`
    Initial values by field name: the task's current data, else the schema's defaults.
`build_form(schema, ui_schema, task_data, data=None, **kwargs) -> JsonSchemaForm`
    The two above together: the form a task page shows (bound when `data` is given).
`validate_form(form) -> dict | None`
    `form.is_valid()`; the variables to submit, or None with the errors on the form.
`variables_from(form_class_or_form, cleaned_data) -> dict`
    Cleaned values re-assembled into the nested structure the schema describes (dates as
    ISO strings, numbers as int/float: JSON-ready), checked against the schema; raises
    `django.forms.ValidationError({field name: [errors]})` when the schema rejects them.

A `JsonSchemaForm` runs the schema check in `clean()`, so `form.is_valid()` covers it and
`form.variables` holds the result afterwards (None while the form has errors).

Typical view::

    form = build_form(spec["schema"], spec["ui_schema"], task_data, data=request.POST or None)
    if form.is_bound and (variables := validate_form(form)) is not None:
        complete_task(task, user, variables)

What is submitted
-----------------
Values of the form's properties only, nested as the schema says. An empty optional field is
left out (as react-jsonschema-form does) unless its UI schema sets `ui:emptyValue`; booleans
(checkboxes) are always submitted as true/false and lists as a (possibly empty) list.
Read-only fields (`ui:readonly`, `ui:disabled`, `readOnly`) are shown disabled and submit
their initial value unchanged (left out when they have none); as the person cannot change
them, the schema's objections to them are not reported.

Supported
---------
JSON Schema: `type` (string, integer, number, boolean, array, object; `[x, "null"]`),
`title`, `description`, `default`, `required`, `enum` (+ `enumNames`), `oneOf`/`anyOf` lists
of `const` (or one-value `enum`) with `title`, `const: true` booleans, `minLength`,
`maxLength`, `pattern`, `format` (date, date-time, time, email, uri), `minimum`, `maximum`,
`exclusiveMinimum`, `exclusiveMaximum` (draft 4 booleans too), `multipleOf`, `minItems`,
`maxItems`, `uniqueItems`, `readOnly`, local `$ref` (`#/definitions/...`, `#/$defs/...`),
`allOf` (merged), nullable `anyOf`/`oneOf` (`[{...}, {"type": "null"}]`); SpiffArena's
`options_from_task_data_var`, `validationErrorMessage`, `minimumDate`/`maximumDate`.
Anything else the validator still enforces; a property the form cannot model as a simple
input (an array of objects, a free-form object, a `oneOf` of objects, a recursive or remote
`$ref`) becomes a JSON text area whose content must parse as JSON.
UI schema: `ui:order` (with `*`), `ui:widget` (text, textarea, password, email, uri, color,
date, datetime, time, updown, range, radio, select, checkbox, checkboxes, hidden),
`ui:title`, `ui:description`, `ui:help`, `ui:placeholder`, `ui:readonly`, `ui:disabled`,
`ui:autofocus`, `ui:autocomplete`, `ui:emptyValue`, `ui:enumNames`, and the same keys
inside `ui:options` plus `rows` and `inputType`. Unknown keys (themes, layouts, custom
widgets) are ignored.
"""
import copy
import datetime
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, cast
from urllib.parse import unquote

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.validators import BaseValidator, RegexValidator
from django.forms.fields import InvalidJSONInput
from django.utils.html import escape

from engine.forms import json_schema_error_list, prepare_json_schema

__all__ = [
    "JsonSchemaForm",
    "build_form",
    "form_class_for",
    "initial_for",
    "validate_form",
    "variables_from",
]

MAX_DEPTH = 8  # nested objects deeper than this become one JSON field
BLANK_LABEL = "—"
LABEL_SEPARATOR = " \u203a "  # single right-pointing angle quotation mark
TRUE_STRINGS = {"true", "1", "yes", "on"}
SAFE_INPUT_TYPES = {"text", "tel", "search", "url", "email", "color"}


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


# --- widgets and fields ------------------------------------------------------------------


class DateInput(forms.DateInput):
    input_type = "date"


class DateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"


class TimeInput(forms.TimeInput):
    input_type = "time"


class ExclusiveMinValueValidator(BaseValidator):
    message = "Ensure this value is greater than %(limit_value)s."
    code = "min_value"

    def compare(self, a: Any, b: Any) -> bool:
        return bool(a <= b)


class ExclusiveMaxValueValidator(BaseValidator):
    message = "Ensure this value is less than %(limit_value)s."
    code = "max_value"

    def compare(self, a: Any, b: Any) -> bool:
        return bool(a >= b)


@dataclass(frozen=True)
class MultipleOfValidator:
    step: Decimal

    def __call__(self, value: Any) -> None:
        try:
            remainder = Decimal(str(value)) % self.step
        except (InvalidOperation, ValueError):
            return
        if remainder != 0:
            raise ValidationError(
                "Ensure this value is a multiple of %(step)s.", code="multiple_of",
                params={"step": _number_text(self.step)},
            )


def _count_errors(count: int, least: int | None, most: int | None, verb: str) -> None:
    def items(n: int) -> str:
        return f"{n} item" + ("" if n == 1 else "s")

    if least is not None and count < least:
        raise ValidationError(f"{verb} at least {items(least)}.", code="min_items")
    if most is not None and count > most:
        raise ValidationError(f"{verb} at most {items(most)}.", code="max_items")


class JsonChoiceField(forms.ChoiceField):
    """A choice among JSON values of any type; cleans to the value (None when blank)."""

    def __init__(self, *, options: list[tuple[Any, str]], blank: bool, **kwargs: Any) -> None:
        self.string_keys = all(isinstance(value, str) for value, _ in options)
        self.values_by_key = {self.key(value): value for value, _ in options}
        choices = [(self.key(value), label) for value, label in options]
        super().__init__(choices=[("", BLANK_LABEL), *choices] if blank else choices, **kwargs)

    def key(self, value: Any) -> str:
        if self.string_keys:
            return value if isinstance(value, str) else str(value)
        return json.dumps(value, sort_keys=True, ensure_ascii=False)

    def prepare_value(self, value: Any) -> Any:
        if value is None or (isinstance(value, str) and value in self.values_by_key):
            return value
        return self.key(value)

    def clean(self, value: Any) -> Any:
        key = super().clean(value)
        return self.values_by_key.get(key) if key not in (None, "") else None


class JsonMultipleChoiceField(forms.MultipleChoiceField):
    """Several choices among JSON values; cleans to the list of values."""

    def __init__(
        self, *, options: list[tuple[Any, str]], min_items: int | None = None,
        max_items: int | None = None, **kwargs: Any,
    ) -> None:
        self.single = JsonChoiceField(options=options, blank=False)
        self.min_items, self.max_items = min_items, max_items
        choices = [(self.single.key(value), label) for value, label in options]
        super().__init__(choices=choices, **kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return [self.single.prepare_value(item) for item in value]
        return value

    def validate(self, value: Any) -> None:
        super().validate(value)
        _count_errors(len(value or []), self.min_items, self.max_items, "Select")

    def clean(self, value: Any) -> Any:
        keys = super().clean(value)
        return [self.single.values_by_key[key] for key in keys]


class LinesField(forms.CharField):
    """A list of strings or numbers typed one per line in a text area."""

    def __init__(
        self, *, item_type: str, item_format: str | None = None, min_items: int | None = None,
        max_items: int | None = None, **kwargs: Any,
    ) -> None:
        self.item_type, self.item_format = item_type, item_format
        self.min_items, self.max_items = min_items, max_items
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 4}))
        super().__init__(**kwargs)

    def _item(self, text: str) -> Any:
        if self.item_type == "integer":
            try:
                return int(text)
            except ValueError:
                raise ValueError("enter a whole number.") from None
        if self.item_type == "number":
            try:
                number = Decimal(text)
            except InvalidOperation:
                raise ValueError("enter a number.") from None
            if not number.is_finite():
                raise ValueError("enter a number.")
            return _json_number(number)
        if self.item_format == "date":
            try:
                datetime.date.fromisoformat(text)
            except ValueError:
                raise ValueError("enter a valid date (YYYY-MM-DD).") from None
        return text

    def clean(self, value: Any) -> Any:
        text = super().clean(value)
        lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
        items: list[Any] = []
        errors: list[ValidationError] = []
        for number, line in enumerate(lines, start=1):
            try:
                items.append(self._item(line))
            except ValueError as exc:
                errors.append(ValidationError(f"Line {number}: {exc}", code="invalid"))
        try:
            _count_errors(len(items), self.min_items, self.max_items, "Enter")
        except ValidationError as exc:
            errors.append(exc)
        if errors:
            raise ValidationError(errors)
        return items

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return "\n".join(
                item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)
                for item in value
            )
        return value


class JsonValueField(forms.JSONField):
    """Any JSON value, typed as JSON text (pretty-printed when shown)."""

    def prepare_value(self, value: Any) -> Any:
        if value is None:
            return ""
        if isinstance(value, InvalidJSONInput):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


class IsoDateField(forms.DateField):
    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, str) and len(value) > 10:
            try:
                return datetime.date.fromisoformat(value[:10])
            except ValueError:
                return value
        return value


class IsoDateTimeField(forms.DateTimeField):
    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return value
        return super().prepare_value(value)


class _PassThrough(forms.Field):
    """A read-only field: its (initial) value is submitted exactly as it was."""

    def clean(self, value: Any) -> Any:
        return value if self.disabled else super().clean(value)


@functools.cache
def _read_only(field_class: type[forms.Field]) -> type[forms.Field]:
    return cast(type[forms.Field],
                type(f"ReadOnly{field_class.__name__}", (_PassThrough, field_class), {}))


# --- the form ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldPlan:
    """Where a form field's value goes in the submitted variables, and how."""

    path: tuple[str, ...]
    kind: str
    readonly: bool = False
    always: bool = False  # submitted even when empty (booleans, lists)
    empty_value: Any = MISSING  # ui:emptyValue
    custom_message: str | None = None  # validationErrorMessage / errorMessage
    item_word: str = "Item"


class JsonSchemaForm(forms.Form):
    """Base class of the generated forms (see the module docstring)."""

    schema: ClassVar[dict[str, Any]] = {}
    ui_schema: ClassVar[dict[str, Any]] = {}
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""
    plans: ClassVar[dict[str, FieldPlan]] = {}
    object_paths: ClassVar[tuple[tuple[str, ...], ...]] = ()

    variables: dict[str, Any] | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")  # titles are often questions
        super().__init__(*args, **kwargs)
        self.variables = None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or self.cleaned_data
        variables = _assemble(type(self), cleaned)
        for name, errors in _schema_errors(type(self), variables).items():
            if name == NON_FIELD_ERRORS:
                self.add_error(None, errors)
            elif not self.has_error(name):
                self.add_error(name, errors)
        self._use_custom_messages()
        if not self.errors:
            self.variables = variables
        return cleaned

    def _use_custom_messages(self) -> None:
        for name, plan in self.plans.items():
            if not plan.custom_message or name not in self.errors:
                continue
            errors = self.errors[name].as_data()
            if all(error.code == "required" for error in errors):
                continue
            kept = [error for error in errors if error.code == "required"]
            custom = ValidationError(plan.custom_message, code="invalid")
            self.errors[name] = self.error_class([*kept, custom], renderer=self.renderer)


# --- reading the schema ------------------------------------------------------------------


@dataclass
class _Prop:
    name: str
    path: tuple[str, ...]
    schema: dict[str, Any]
    ui: dict[str, Any]
    label: str
    required: bool
    readonly: bool
    hidden: bool
    default: Any
    kind: str = "json"
    choices: list[tuple[Any, str]] | None = None
    items: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Layout:
    props: list[_Prop] = field(default_factory=list)
    objects: list[tuple[str, ...]] = field(default_factory=list)
    names: set[str] = field(default_factory=set)


def _ui_options(ui: Any) -> dict[str, Any]:
    """react-jsonschema-form's view of a UI schema node: `ui:options` merged with `ui:x`."""
    if not isinstance(ui, dict):
        return {}
    options = dict(ui["ui:options"]) if isinstance(ui.get("ui:options"), dict) else {}
    for key, value in ui.items():
        if isinstance(key, str) and key.startswith("ui:") and key != "ui:options":
            options[key[3:]] = value
    return options


def _resolve_pointer(root: dict[str, Any], ref: str) -> Any:
    if not ref.startswith("#"):
        return MISSING
    pointer = unquote(ref[1:])
    if pointer == "":
        return root
    if not pointer.startswith("/"):
        return MISSING  # anchors are not followed
    node: Any = root
    for raw in pointer[1:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return MISSING
    return node


def _deref(node: Any, root: dict[str, Any], seen: frozenset[str]) -> tuple[Any, frozenset[str]]:
    """`node` with its local `$ref` followed (keywords beside the `$ref` win); MISSING for a
    reference that cannot be followed: remote, unknown, or leading back to itself."""
    while isinstance(node, dict) and isinstance(node.get("$ref"), str):
        ref = node["$ref"]
        target = _resolve_pointer(root, ref)
        if ref in seen or target is MISSING:
            return MISSING, seen
        seen = seen | {ref}
        siblings = {key: value for key, value in node.items() if key != "$ref"}
        if not isinstance(target, dict):
            return (siblings or target), seen
        node = {**target, **siblings}
    return node, seen


def _effective(node: Any, root: dict[str, Any], seen: frozenset[str]) -> tuple[Any, frozenset[str]]:
    """The schema a field is built from: references followed, `allOf` merged, nullable
    unions (`type: [x, "null"]`, `anyOf: [{...}, {"type": "null"}]`) reduced to `x`."""
    node, seen = _deref(node, root, seen)
    if not isinstance(node, dict):
        return node, seen
    if isinstance(node.get("allOf"), list):
        parts = [{key: value for key, value in node.items() if key != "allOf"}]
        for part in node["allOf"]:
            resolved, seen = _effective(part, root, seen)
            if not isinstance(resolved, dict):
                return MISSING, seen
            parts.append(resolved)
        node = _merge(parts)
    for keyword in ("anyOf", "oneOf"):
        alternatives = node.get(keyword)
        if isinstance(alternatives, list) and not _choice_list(alternatives, root, seen):
            real = [a for a in alternatives
                    if not (isinstance(a, dict) and a.get("type") == "null")]
            if len(real) == 1 and len(alternatives) == 2:
                resolved, seen = _effective(real[0], root, seen)
                if isinstance(resolved, dict):
                    rest = {key: value for key, value in node.items() if key != keyword}
                    node = _merge([rest, resolved])
    return node, seen


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if key == "properties" and isinstance(value, dict):
                merged["properties"] = {**value, **merged.get("properties", {})}
            elif key == "required" and isinstance(value, list):
                merged["required"] = [*merged.get("required", []), *value]
            elif key not in merged:
                merged[key] = value
    return merged


def _main_type(schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        real = [k for k in kind if k != "null"]
        kind = real[0] if len(real) == 1 else None
    if isinstance(kind, str):
        return kind
    if isinstance(schema.get("properties"), dict):
        return "object"
    if "items" in schema:
        return "array"
    return None


def _value_label(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return json.dumps(value, ensure_ascii=False)


def _choice_list(
    alternatives: list[Any], root: dict[str, Any], seen: frozenset[str]
) -> list[tuple[Any, str]] | None:
    options: list[tuple[Any, str]] = []
    for alternative in alternatives:
        option, _ = _deref(alternative, root, seen)
        if not isinstance(option, dict):
            return None
        if "const" in option:
            value = option["const"]
        elif isinstance(option.get("enum"), list) and len(option["enum"]) == 1:
            value = option["enum"][0]
        else:
            return None
        options.append((value, str(option.get("title") or _value_label(value))))
    return options or None


def _choices(
    schema: dict[str, Any], ui: dict[str, Any], root: dict[str, Any], seen: frozenset[str]
) -> list[tuple[Any, str]] | None:
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        names = ui.get("enumNames") or schema.get("enumNames")
        if isinstance(names, list) and len(names) == len(enum):
            return [(value, str(name)) for value, name in zip(enum, names, strict=True)]
        return [(value, _value_label(value)) for value in enum]
    for keyword in ("oneOf", "anyOf"):
        alternatives = schema.get(keyword)
        if isinstance(alternatives, list):
            options = _choice_list(alternatives, root, seen)
            if options:
                return options
    return None


def _classify(prop: _Prop, root: dict[str, Any], seen: frozenset[str]) -> None:
    schema, widget = prop.schema, prop.ui.get("widget")
    kind = _main_type(schema)
    if kind == "array":
        items, item_seen = _effective(schema.get("items"), root, seen)
        if isinstance(items, dict):
            options = _choices(items, {}, root, item_seen)
            if options is not None:
                prop.kind, prop.choices, prop.items = "multichoice", options, items
                return
            if _main_type(items) in ("string", "integer", "number"):
                prop.kind, prop.items = "lines", items
                return
        prop.kind = "json"
        return
    options = _choices(schema, prop.ui, root, seen)
    if kind == "boolean":
        if widget in ("radio", "select"):
            prop.kind, prop.choices = "choice", options or [(True, "Yes"), (False, "No")]
        else:
            prop.kind = "boolean"
        return
    if options is not None:
        prop.kind, prop.choices = "choice", options
        return
    if kind == "string":
        fmt = schema.get("format")
        prop.kind = (
            "date" if fmt == "date" or widget == "date"
            else "datetime" if fmt == "date-time" or widget in ("datetime", "date-time")
            else "time" if fmt == "time" or widget == "time"
            else "email" if fmt == "email" or widget == "email"
            else "url" if fmt in ("uri", "url") or widget in ("uri", "url")
            else "string"
        )
        return
    prop.kind = kind if kind in ("integer", "number") else "json"


def _humanize(name: str) -> str:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).replace("_", " ").replace("-", " ")
    words = [w.lower() if w[:1].isupper() and w[1:].islower() else w for w in spaced.split()]
    text = " ".join(words) or name
    return text[:1].upper() + text[1:]


def _ordered(keys: list[str], order: Any) -> list[str]:
    """react-jsonschema-form's `ui:order`: listed keys first (`*` stands for the rest);
    unknown names are ignored and unlisted keys come last instead of failing."""
    if not isinstance(order, list):
        return keys
    wanted: list[str] = []
    for key in order:
        if (key == "*" or key in keys) and key not in wanted:
            wanted.append(key)
    rest = [key for key in keys if key not in wanted]
    if "*" in wanted:
        at = wanted.index("*")
        return [*wanted[:at], *rest, *wanted[at + 1:]]
    return [*wanted, *rest]


def _field_name(path: tuple[str, ...], taken: set[str]) -> str:
    base = ".".join(re.sub(r"[^\w.-]", "_", part) or "_" for part in path)
    name, counter = base, 1
    while name in taken:
        counter += 1
        name = f"{base}_{counter}"
    taken.add(name)
    return name


def _walk(
    node: dict[str, Any], ui: Any, root: dict[str, Any], seen: frozenset[str], layout: _Layout,
    *, path: tuple[str, ...] = (), label: str = "", readonly: bool = False,
    hidden: bool = False, defaults: Any = None,
) -> None:
    properties = node.get("properties")
    if not isinstance(properties, dict):
        return
    ui = ui if isinstance(ui, dict) else {}
    required = {name for name in node.get("required") or [] if isinstance(name, str)}
    for key in _ordered([k for k in properties if isinstance(k, str)], ui.get("ui:order")):
        schema, sub_seen = _effective(properties[key], root, seen)
        if schema is False:
            continue
        schema = schema if isinstance(schema, dict) else {}
        sub_ui = ui.get(key) if isinstance(ui.get(key), dict) else {}
        options = _ui_options(sub_ui)
        own_label = str(options.get("title") or schema.get("title") or _humanize(key))
        default = schema.get("default", MISSING)
        if default is MISSING and isinstance(defaults, dict):
            default = defaults.get(key, MISSING)
        prop = _Prop(
            name="", path=(*path, key), schema=schema, ui=options,
            label=f"{label}{LABEL_SEPARATOR}{own_label}" if label else own_label,
            required=key in required,
            readonly=readonly or bool(options.get("readonly") or options.get("disabled")
                                      or schema.get("readOnly")),
            hidden=hidden or options.get("widget") == "hidden", default=default,
        )
        nested = schema.get("properties")
        if (_main_type(schema) == "object" and isinstance(nested, dict) and nested
                and len(prop.path) < MAX_DEPTH):
            layout.objects.append(prop.path)
            _walk(schema, sub_ui, root, sub_seen, layout, path=prop.path, label=prop.label,
                  readonly=prop.readonly, hidden=prop.hidden,
                  defaults=default if isinstance(default, dict) else None)
            continue
        prop.name = _field_name(prop.path, layout.names)
        _classify(prop, root, sub_seen)
        layout.props.append(prop)


def _hide_listed_fields(ui: dict[str, Any], task_data: Mapping[str, Any] | None) -> None:
    """SpiffArena: task data `form_ui_hidden_fields` lists (dotted) fields to hide."""
    listed = (task_data or {}).get("form_ui_hidden_fields")
    if not isinstance(listed, list):
        return
    for dotted in listed:
        if not isinstance(dotted, str) or not dotted:
            continue
        node = ui
        for part in dotted.split("."):
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node["ui:widget"] = "hidden"


def _layout(
    schema: Any, ui_schema: Any, task_data: Mapping[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any], _Layout]:
    prepared = prepare_json_schema(schema, task_data)
    ui = copy.deepcopy(ui_schema) if isinstance(ui_schema, dict) else {}
    _hide_listed_fields(ui, task_data)
    layout = _Layout()
    root, seen = _effective(prepared, prepared, frozenset())
    if isinstance(root, dict):
        root_options = _ui_options(ui)
        _walk(root, ui, prepared, seen, layout,
              readonly=bool(root_options.get("readonly") or root_options.get("disabled")),
              defaults=root.get("default"))
    return prepared, ui, layout


# --- building fields ---------------------------------------------------------------------


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _number_text(value: Decimal) -> str:
    return str(_json_number(value))


def _json_number(value: Decimal) -> int | float:
    if value == value.to_integral_value():
        return int(value)
    return float(value)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _json_help(schema: dict[str, Any]) -> str:
    kind = _main_type(schema)
    shape = "a JSON value"
    if kind == "array":
        items = schema.get("items")
        keys = list(items.get("properties") or {}) if isinstance(items, dict) else []
        shape = "a JSON list" + (
            " of objects with the keys " + ", ".join(f"“{k}”" for k in keys) if keys else ""
        )
    elif kind == "object":
        keys = list(schema.get("properties") or {})
        shape = "a JSON object" + (
            " with the keys " + ", ".join(f"“{k}”" for k in keys) if keys else ""
        )
    return f"Enter {shape}."


def _lines_help(items: dict[str, Any], least: int | None, most: int | None) -> str:
    kind = _main_type(items)
    what = ("whole number" if kind == "integer" else "number" if kind == "number"
            else "date (YYYY-MM-DD)" if items.get("format") == "date" else "item")
    limits = []
    if least:
        limits.append(f"at least {least}")
    if most is not None:
        limits.append(f"at most {most}")
    return f"Enter one {what} per line" + (f" ({', '.join(limits)})" if limits else "") + "."


def _help_text(prop: _Prop) -> str:
    parts: list[str] = []
    description = prop.ui.get("description", prop.schema.get("description"))
    if description:
        parts.append(str(description))
    if prop.ui.get("help"):
        parts.append(str(prop.ui["help"]))
    if prop.kind == "lines" and not prop.readonly:
        parts.append(_lines_help(prop.items, _count(prop.schema.get("minItems")),
                                 _count(prop.schema.get("maxItems"))))
    if prop.kind == "multichoice" and not prop.readonly:
        least, most = _count(prop.schema.get("minItems")), _count(prop.schema.get("maxItems"))
        limits = ([f"at least {least}"] if least else []) + (
            [f"at most {most}"] if most is not None else [])
        if limits:
            parts.append(f"Select {' and '.join(limits)}.")
    if prop.kind == "json" and not prop.readonly:
        parts.append(_json_help(prop.schema))
    return escape(" ".join(parts))  # rendered as HTML by Django's templates


def _text_widget(prop: _Prop) -> forms.Widget:
    widget = prop.ui.get("widget")
    if widget == "textarea":
        rows = prop.ui.get("rows")
        return forms.Textarea(attrs={"rows": rows if _count(rows) else 4})
    if widget == "password":
        return forms.PasswordInput()
    text = forms.TextInput()
    input_type = prop.ui.get("inputType") or (widget if widget == "color" else None)
    if input_type in SAFE_INPUT_TYPES:
        text.input_type = str(input_type)
    return text


def _string_kwargs(schema: dict[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if _count(schema.get("minLength")):
        kwargs["min_length"] = schema["minLength"]
    if _count(schema.get("maxLength")) is not None:
        kwargs["max_length"] = schema["maxLength"]
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and pattern:
        # JSON Schema patterns are not anchored: RegexValidator searches, as they do.
        kwargs["validators"] = [RegexValidator(pattern, "Enter a value in the expected format.")]
    return kwargs


def _number_kwargs(schema: dict[str, Any], integer: bool) -> dict[str, Any]:
    validators: list[Any] = []
    kwargs: dict[str, Any] = {"validators": validators}
    attrs: dict[str, Any] = {}
    minimum, maximum = _number(schema.get("minimum")), _number(schema.get("maximum"))
    low, high = _number(schema.get("exclusiveMinimum")), _number(schema.get("exclusiveMaximum"))
    if schema.get("exclusiveMinimum") is True:  # draft 4
        minimum, low = None, minimum
    if schema.get("exclusiveMaximum") is True:
        maximum, high = None, maximum
    if minimum is not None:
        kwargs["min_value"] = _json_number(minimum) if integer else minimum
    if maximum is not None:
        kwargs["max_value"] = _json_number(maximum) if integer else maximum
    if low is not None:
        validators.append(ExclusiveMinValueValidator(low))
    if high is not None:
        validators.append(ExclusiveMaxValueValidator(high))
    step = _number(schema.get("multipleOf"))
    if step is not None and step > 0:
        validators.append(MultipleOfValidator(step))
        # A browser counts steps from `min`: only say so when both agree.
        if minimum is None or minimum % step == 0:
            attrs["step"] = _number_text(step)
    if not integer and "step" not in attrs:
        attrs["step"] = "any"
    kwargs["widget"] = forms.NumberInput(attrs=attrs)
    return kwargs


def _requires_true(schema: dict[str, Any]) -> bool:
    return schema.get("const") is True or schema.get("enum") == [True]


def _django_field(prop: _Prop) -> tuple[forms.Field, FieldPlan]:
    schema, ui = prop.schema, prop.ui
    always, item_word = False, "Item"
    kwargs: dict[str, Any] = {
        "label": prop.label,
        "help_text": _help_text(prop),
        "required": prop.required and not prop.readonly and "emptyValue" not in ui,
        "disabled": prop.readonly,
        "initial": None if prop.default is MISSING else copy.deepcopy(prop.default),
    }
    field_class: type[forms.Field]
    kind = prop.kind
    least, most = _count(schema.get("minItems")), _count(schema.get("maxItems"))
    if kind == "boolean":
        field_class, always = forms.BooleanField, True
        kwargs["required"] = _requires_true(schema) and not prop.readonly
    elif kind == "choice":
        field_class = JsonChoiceField
        radio = ui.get("widget") == "radio"
        kwargs.update(options=prop.choices or [], blank=not radio and not prop.hidden,
                      widget=forms.RadioSelect if radio else forms.Select)
    elif kind == "multichoice":
        field_class, always = JsonMultipleChoiceField, True
        kwargs.update(options=prop.choices or [], min_items=least, max_items=most,
                      required=False,
                      widget=forms.SelectMultiple if ui.get("widget") == "select"
                      else forms.CheckboxSelectMultiple)
    elif kind == "lines":
        field_class, always, item_word = LinesField, True, "Line"
        item_type = _main_type(prop.items) or "string"
        fmt = prop.items.get("format")
        kwargs.update(item_type=item_type, item_format=fmt if isinstance(fmt, str) else None,
                      min_items=least, max_items=most, required=False)
    elif kind in ("string", "email", "url"):
        field_class = {"string": forms.CharField, "email": forms.EmailField,
                       "url": forms.URLField}[kind]
        kwargs.update(_string_kwargs(schema))
        if kind == "url":
            kwargs["assume_scheme"] = "https"
        kwargs["widget"] = _text_widget(prop) if kind == "string" else (
            forms.EmailInput() if kind == "email" else forms.URLInput())
    elif kind == "date":
        field_class = IsoDateField
        kwargs["widget"] = DateInput(format="%Y-%m-%d")
    elif kind == "datetime":
        field_class = IsoDateTimeField
        kwargs["widget"] = DateTimeInput(format="%Y-%m-%dT%H:%M")
    elif kind == "time":
        field_class = forms.TimeField
        kwargs["widget"] = TimeInput(format="%H:%M")
    elif kind in ("integer", "number"):
        field_class = forms.IntegerField if kind == "integer" else forms.DecimalField
        kwargs.update(_number_kwargs(schema, integer=kind == "integer"))
    else:
        field_class = JsonValueField
        kwargs["widget"] = forms.Textarea(attrs={"rows": 6})
    if prop.hidden:
        kwargs["widget"] = (forms.MultipleHiddenInput if kind == "multichoice"
                            else forms.HiddenInput)
    if prop.readonly:
        field_class = _read_only(field_class)
    django_field = field_class(**kwargs)
    attrs = django_field.widget.attrs
    if ui.get("placeholder") and not prop.hidden:
        attrs["placeholder"] = str(ui["placeholder"])
    if isinstance(ui.get("autocomplete"), str):
        attrs["autocomplete"] = ui["autocomplete"]
    if ui.get("autofocus") is True and not prop.hidden:
        attrs["autofocus"] = True
    custom = schema.get("validationErrorMessage") or schema.get("errorMessage")
    plan = FieldPlan(
        path=prop.path, kind=kind, readonly=prop.readonly, always=always,
        empty_value=copy.deepcopy(ui["emptyValue"]) if "emptyValue" in ui else MISSING,
        custom_message=custom if isinstance(custom, str) and custom else None,
        item_word=item_word,
    )
    return django_field, plan


# --- public API --------------------------------------------------------------------------


def form_class_for(
    schema: dict[str, Any] | None,
    ui_schema: dict[str, Any] | None = None,
    *,
    task_data: Mapping[str, Any] | None = None,
) -> type[JsonSchemaForm]:
    """A `JsonSchemaForm` subclass with one field per (nested) property of `schema`."""
    prepared, ui, layout = _layout(schema, ui_schema, task_data)
    attrs: dict[str, Any] = {}
    plans: dict[str, FieldPlan] = {}
    for prop in layout.props:
        attrs[prop.name], plans[prop.name] = _django_field(prop)
    root_options = _ui_options(ui)
    attrs.update(
        schema=prepared, ui_schema=ui, plans=plans, object_paths=tuple(layout.objects),
        title=str(root_options.get("title") or prepared.get("title") or ""),
        description=str(root_options.get("description") or prepared.get("description") or ""),
    )
    return cast(type[JsonSchemaForm], type("JsonSchemaTaskForm", (JsonSchemaForm,), attrs))


def _lookup(data: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(data, Mapping) or part not in data:
            return MISSING
        data = data[part]
    return data


def initial_for(
    schema: dict[str, Any] | None,
    ui_schema: dict[str, Any] | None,
    task_data: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Initial values by field name: the task's data (nested objects followed), else the
    schema's `default`s. Fields with neither are left out."""
    _, _, layout = _layout(schema, ui_schema, task_data)
    initial: dict[str, Any] = {}
    for prop in layout.props:
        value = _lookup(task_data or {}, prop.path)
        if value is MISSING or value is None:
            value = prop.default
        if value is MISSING or value is None:
            continue
        if prop.kind == "boolean" and isinstance(value, str):
            value = value.strip().lower() in TRUE_STRINGS
        initial[prop.name] = copy.deepcopy(value)
    return initial


def build_form(
    schema: dict[str, Any] | None,
    ui_schema: dict[str, Any] | None,
    task_data: Mapping[str, Any] | None,
    data: Any = None,
    **kwargs: Any,
) -> JsonSchemaForm:
    """The task's form, filled from its data; bound when `data` (e.g. request.POST) is given."""
    form_class = form_class_for(schema, ui_schema, task_data=task_data)
    return form_class(data=data, initial=initial_for(schema, ui_schema, task_data), **kwargs)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return _json_number(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


def _put(target: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        child = target.get(part)
        if not isinstance(child, dict):
            child = target[part] = {}
        target = child
    target[path[-1]] = value


def _assemble(form_class: type[JsonSchemaForm], cleaned_data: Mapping[str, Any]) -> dict[str, Any]:
    variables: dict[str, Any] = {}
    for path in form_class.object_paths:
        node = variables
        for part in path:
            node = node.setdefault(part, {})
    for name, plan in form_class.plans.items():
        if name not in cleaned_data:
            continue
        value = cleaned_data[name]
        if plan.readonly:
            if value is not None:
                _put(variables, plan.path, copy.deepcopy(value))
            continue
        value = _jsonable(value)
        if value is None or value == "":
            if plan.empty_value is not MISSING:
                value = copy.deepcopy(plan.empty_value)
            elif not plan.always:
                continue
        _put(variables, plan.path, value)
    return variables


def _field_at(
    form_class: type[JsonSchemaForm], path: tuple[str | int, ...]
) -> tuple[str | None, tuple[str | int, ...]]:
    """The field an error at `path` is about (the longest field path it starts with)."""
    by_path = {plan.path: name for name, plan in form_class.plans.items()}
    for length in range(len(path), 0, -1):
        name = by_path.get(cast(tuple[str, ...], path[:length]))
        if name is not None:
            return name, path[length:]
    return None, path


def _schema_errors(
    form_class: type[JsonSchemaForm], variables: dict[str, Any]
) -> dict[str, list[ValidationError]]:
    """The schema's objections to `variables`, by field name (NON_FIELD_ERRORS for the rest).
    Read-only fields are not objected to: their values are the task's, not the person's."""
    errors: dict[str, list[ValidationError]] = {}
    for problem in json_schema_error_list(form_class.schema, variables):
        name, rest = _field_at(form_class, problem.path)
        if name is not None and form_class.plans[name].readonly:
            continue
        message = problem.message
        if name is None:
            if problem.path:
                message = f"{'.'.join(str(p) for p in problem.path)}: {message}"
        elif rest and isinstance(rest[0], int):
            message = f"{form_class.plans[name].item_word} {rest[0] + 1}: {message}"
        bucket = errors.setdefault(name or NON_FIELD_ERRORS, [])
        if all(existing.message != message for existing in bucket):
            bucket.append(ValidationError(message, code=problem.keyword))
    return errors


def variables_from(
    form_class_or_form: type[JsonSchemaForm] | JsonSchemaForm, cleaned_data: Mapping[str, Any]
) -> dict[str, Any]:
    """`cleaned_data` as the nested, JSON-ready variables the schema describes, checked
    against the schema; raises `ValidationError({field name: [errors]})` if it objects."""
    form_class = (form_class_or_form if isinstance(form_class_or_form, type)
                  else type(form_class_or_form))
    variables = _assemble(form_class, cleaned_data)
    errors = _schema_errors(form_class, variables)
    if errors:
        raise ValidationError(cast(dict[str, Any], errors))
    return variables


def validate_form(form: JsonSchemaForm) -> dict[str, Any] | None:
    """Validate a bound form: the variables to submit, or None (the errors are on the form,
    each on its field). The schema check runs in `JsonSchemaForm.clean()`."""
    return form.variables if form.is_valid() else None
