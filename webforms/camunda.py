"""Django forms generated from Camunda `formData` fields (as engine/bpmn/elements.py reads
them), so that the inbox renders them with labels, help texts and error messages."""
import contextlib
import datetime
from decimal import Decimal
from typing import Any

from django import forms
from django.core.validators import RegexValidator


class DateInput(forms.DateInput):
    input_type = "date"


def _number_limits(field: dict[str, Any]) -> dict[str, Any]:
    constraints = field.get("constraints") or {}
    limits: dict[str, Any] = {}
    for name in ("min", "max"):
        raw = constraints.get(name)
        if raw not in (None, ""):
            with contextlib.suppress(ArithmeticError):
                limits[f"{name}_value"] = int(Decimal(str(raw)))
    return limits


def _text_limits(field: dict[str, Any]) -> dict[str, Any]:
    constraints = field.get("constraints") or {}
    limits: dict[str, Any] = {}
    for name, keyword in (("minlength", "min_length"), ("maxlength", "max_length")):
        raw = constraints.get(name)
        if raw not in (None, "") and str(raw).isdigit():
            limits[keyword] = int(str(raw))
    if constraints.get("pattern"):
        limits["validators"] = [RegexValidator(
            f"^(?:{constraints['pattern']})$", "Enter a value in the expected format."
        )]
    return limits


def _django_field(field: dict[str, Any]) -> forms.Field:
    kind = field.get("type") or "string"
    common: dict[str, Any] = {
        "label": field.get("label") or field["id"],
        "required": bool(field.get("required")) and kind != "boolean",
        "disabled": bool(field.get("readonly")),
    }
    if kind == "boolean":
        return forms.BooleanField(**common)
    if kind == "long":
        return forms.IntegerField(**common, **_number_limits(field))
    if kind == "date":
        return forms.DateField(widget=DateInput, **common)
    if kind == "enum":
        choices = [(v["id"], v.get("name") or v["id"]) for v in field.get("values", [])]
        if not common["required"]:
            choices = [("", "—"), *choices]
        return forms.ChoiceField(choices=choices, **common)
    return forms.CharField(**common, **_text_limits(field))


def _initial(field: dict[str, Any], data: dict[str, Any]) -> Any:
    value = data.get(field["id"], field.get("default"))
    if field.get("type") == "boolean" and isinstance(value, str):
        return value.lower() in {"true", "1", "on", "yes"}
    return value


def form_class_for(fields: list[dict[str, Any]]) -> type[forms.Form]:
    declared = {field["id"]: _django_field(field) for field in fields}
    return type("CamundaTaskForm", (forms.Form,), {**declared, "required_css_class": "required"})


def initial_for(fields: list[dict[str, Any]], data: dict[str, Any]) -> dict[str, Any]:
    return {field["id"]: _initial(field, data) for field in fields}


def variables_from(form: forms.Form) -> dict[str, Any]:
    """Cleaned values as JSON-friendly variables; read-only fields are not submitted."""
    variables: dict[str, Any] = {}
    for name, field in form.fields.items():
        if field.disabled:
            continue
        value = form.cleaned_data.get(name)
        if isinstance(value, datetime.date):
            value = value.isoformat()
        variables[name] = value
    return variables
