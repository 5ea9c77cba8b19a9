"""One Django field per input of the layout, with the plan of where its value goes."""

import copy
from dataclasses import dataclass
from typing import Any

from django import forms
from django.core.validators import RegexValidator
from django.utils.html import escape

from .fields import (
    DateInput,
    DateTimeInput,
    ExclusiveMaxValueValidator,
    ExclusiveMinValueValidator,
    IsoDateField,
    IsoDateTimeField,
    JsonChoiceField,
    JsonMultipleChoiceField,
    JsonValueField,
    LinesField,
    MultipleOfValidator,
    TimeInput,
    read_only_class,
)
from .layout import MISSING, Prop, main_type
from .numbers import count_of, decimal_of, json_number, number_text

SAFE_INPUT_TYPES = {"text", "tel", "search", "url", "email", "color"}


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


def _json_help(schema: dict[str, Any]) -> str:
    kind = main_type(schema)
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
    kind = main_type(items)
    what = (
        "whole number"
        if kind == "integer"
        else "number"
        if kind == "number"
        else "date (YYYY-MM-DD)"
        if items.get("format") == "date"
        else "item"
    )
    limits = []
    if least:
        limits.append(f"at least {least}")
    if most is not None:
        limits.append(f"at most {most}")
    return f"Enter one {what} per line" + (f" ({', '.join(limits)})" if limits else "") + "."


def _help_text(prop: Prop) -> str:
    parts: list[str] = []
    description = prop.ui.get("description", prop.schema.get("description"))
    if description:
        parts.append(str(description))
    if prop.ui.get("help"):
        parts.append(str(prop.ui["help"]))
    if prop.kind == "lines" and not prop.readonly:
        parts.append(
            _lines_help(
                prop.items,
                count_of(prop.schema.get("minItems")),
                count_of(prop.schema.get("maxItems")),
            )
        )
    if prop.kind == "multichoice" and not prop.readonly:
        least, most = count_of(prop.schema.get("minItems")), count_of(prop.schema.get("maxItems"))
        limits = ([f"at least {least}"] if least else []) + (
            [f"at most {most}"] if most is not None else []
        )
        if limits:
            parts.append(f"Select {' and '.join(limits)}.")
    if prop.kind == "json" and not prop.readonly:
        parts.append(_json_help(prop.schema))
    return escape(" ".join(parts))  # rendered as HTML by Django's templates


def _text_widget(prop: Prop) -> forms.Widget:
    widget = prop.ui.get("widget")
    if widget == "textarea":
        rows = prop.ui.get("rows")
        return forms.Textarea(attrs={"rows": rows if count_of(rows) else 4})
    if widget == "password":
        return forms.PasswordInput()
    text = forms.TextInput()
    input_type = prop.ui.get("inputType") or (widget if widget == "color" else None)
    if input_type in SAFE_INPUT_TYPES:
        text.input_type = str(input_type)
    return text


def _string_kwargs(schema: dict[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if count_of(schema.get("minLength")):
        kwargs["min_length"] = schema["minLength"]
    if count_of(schema.get("maxLength")) is not None:
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
    minimum, maximum = decimal_of(schema.get("minimum")), decimal_of(schema.get("maximum"))
    low = decimal_of(schema.get("exclusiveMinimum"))
    high = decimal_of(schema.get("exclusiveMaximum"))
    if schema.get("exclusiveMinimum") is True:  # draft 4
        minimum, low = None, minimum
    if schema.get("exclusiveMaximum") is True:
        maximum, high = None, maximum
    if minimum is not None:
        kwargs["min_value"] = json_number(minimum) if integer else minimum
    if maximum is not None:
        kwargs["max_value"] = json_number(maximum) if integer else maximum
    if low is not None:
        validators.append(ExclusiveMinValueValidator(low))
    if high is not None:
        validators.append(ExclusiveMaxValueValidator(high))
    step = decimal_of(schema.get("multipleOf"))
    if step is not None and step > 0:
        validators.append(MultipleOfValidator(step))
        # A browser counts steps from `min`: only say so when both agree.
        if minimum is None or minimum % step == 0:
            attrs["step"] = number_text(step)
    if not integer and "step" not in attrs:
        attrs["step"] = "any"
    kwargs["widget"] = forms.NumberInput(attrs=attrs)
    return kwargs


def _requires_true(schema: dict[str, Any]) -> bool:
    return schema.get("const") is True or schema.get("enum") == [True]


def field_for_prop(prop: Prop) -> tuple[forms.Field, FieldPlan]:  # noqa: C901 -- one decision table, clearer whole than split
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
    least, most = count_of(schema.get("minItems")), count_of(schema.get("maxItems"))
    if kind == "boolean":
        field_class, always = forms.BooleanField, True
        kwargs["required"] = _requires_true(schema) and not prop.readonly
    elif kind == "choice":
        field_class = JsonChoiceField
        radio = ui.get("widget") == "radio"
        kwargs.update(
            options=prop.choices or [],
            blank=not radio and not prop.hidden,
            widget=forms.RadioSelect if radio else forms.Select,
        )
    elif kind == "multichoice":
        field_class, always = JsonMultipleChoiceField, True
        kwargs.update(
            options=prop.choices or [],
            min_items=least,
            max_items=most,
            required=False,
            widget=forms.SelectMultiple
            if ui.get("widget") == "select"
            else forms.CheckboxSelectMultiple,
        )
    elif kind == "lines":
        field_class, always, item_word = LinesField, True, "Line"
        item_type = main_type(prop.items) or "string"
        fmt = prop.items.get("format")
        kwargs.update(
            item_type=item_type,
            item_format=fmt if isinstance(fmt, str) else None,
            min_items=least,
            max_items=most,
            required=False,
        )
    elif kind in ("string", "email", "url"):
        field_class = {"string": forms.CharField, "email": forms.EmailField, "url": forms.URLField}[
            kind
        ]
        kwargs.update(_string_kwargs(schema))
        if kind == "url":
            kwargs["assume_scheme"] = "https"
        kwargs["widget"] = (
            _text_widget(prop)
            if kind == "string"
            else (forms.EmailInput() if kind == "email" else forms.URLInput())
        )
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
        kwargs["widget"] = forms.MultipleHiddenInput if kind == "multichoice" else forms.HiddenInput
    if prop.readonly:
        field_class = read_only_class(field_class)
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
        path=prop.path,
        kind=kind,
        readonly=prop.readonly,
        always=always,
        empty_value=copy.deepcopy(ui["emptyValue"]) if "emptyValue" in ui else MISSING,
        custom_message=custom if isinstance(custom, str) and custom else None,
        item_word=item_word,
    )
    return django_field, plan
