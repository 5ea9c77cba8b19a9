"""Django forms for Camunda `formData` fields (as engine/bpmn/elements.py reads them).

The fields only render (labels, widgets, the browser's hints such as `min` and `maxlength`);
what is valid is decided by the engine's one Camunda validator, which `clean()` calls with
the values as typed, and whose messages it puts next to the fields. The service calls the
same validator, so the page and the API cannot disagree."""

import contextlib
import math
from decimal import Decimal
from typing import Any, ClassVar, cast

from django import forms

from engine.exceptions import InvalidInput
from engine.forms import clean_submission


class DateInput(forms.DateInput):
    input_type = "date"


class _TypedAsIs(forms.Field):
    """A field whose value goes to the engine's validator as typed (the engine checks it)."""

    def clean(self, value: Any) -> Any:
        return value


class _BooleanField(_TypedAsIs, forms.BooleanField):
    pass


class _WholeNumberField(_TypedAsIs, forms.IntegerField):
    pass


class _DateField(_TypedAsIs, forms.DateField):
    pass


class _ChoiceField(_TypedAsIs, forms.ChoiceField):
    pass


class _TextField(_TypedAsIs, forms.CharField):
    pass


def _whole_number_limits(field: dict[str, Any]) -> dict[str, Any]:
    """The browser's `min`/`max` of a whole number field: the nearest whole numbers inside the
    diagram's limits (at least 1.5 is at least 2), so that its hints match the engine."""
    constraints = field.get("constraints") or {}
    limits: dict[str, Any] = {}
    for name, rounded in (("min", math.ceil), ("max", math.floor)):
        raw = constraints.get(name)
        if raw not in (None, ""):
            with contextlib.suppress(ArithmeticError, ValueError, OverflowError):
                limits[f"{name}_value"] = rounded(Decimal(str(raw)))
    return limits


def _text_limits(field: dict[str, Any]) -> dict[str, Any]:
    constraints = field.get("constraints") or {}
    limits: dict[str, Any] = {}
    for name, keyword in (("minlength", "min_length"), ("maxlength", "max_length")):
        raw = constraints.get(name)
        if raw not in (None, "") and str(raw).isdigit():
            limits[keyword] = int(str(raw))
    return limits


def _django_field(field: dict[str, Any]) -> forms.Field:
    kind = field.get("type") or "string"
    common: dict[str, Any] = {
        "label": field.get("label") or field["id"],
        "required": bool(field.get("required")) and kind != "boolean",
        "disabled": bool(field.get("readonly")),
    }
    if kind == "boolean":
        return _BooleanField(**common)
    if kind == "long":
        return _WholeNumberField(**common, **_whole_number_limits(field))
    if kind == "date":
        return _DateField(widget=DateInput, **common)
    if kind == "enum":
        choices = [(v["id"], v.get("name") or v["id"]) for v in field.get("values", [])]
        if not common["required"]:
            choices = [("", "—"), *choices]
        return _ChoiceField(choices=choices, **common)
    return _TextField(**common, **_text_limits(field))


def _initial(field: dict[str, Any], data: dict[str, Any]) -> Any:
    value = data.get(field["id"], field.get("default"))
    if field.get("type") == "boolean" and isinstance(value, str):
        return value.lower() in {"true", "1", "on", "yes"}
    return value


class CamundaForm(forms.Form):
    """Base class of the generated forms; `spec` is the task's (or start event's) form."""

    spec: ClassVar[dict[str, Any]] = {}
    required_css_class = "required"
    variables: dict[str, Any] | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.variables = None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or self.cleaned_data
        typed = {
            name: cleaned.get(name) for name, field in self.fields.items() if not field.disabled
        }  # read-only fields are shown, never submitted
        try:
            self.variables = clean_submission(self.spec, typed)
        except InvalidInput as refused:
            errors = refused.errors if isinstance(refused.errors, dict) else {}
            for name, message in errors.items():
                self.add_error(name if name in self.fields else None, message)
            if not errors:
                self.add_error(None, refused.detail)
        return cleaned


def form_class_for(spec: dict[str, Any]) -> type[CamundaForm]:
    declared = {field["id"]: _django_field(field) for field in spec.get("fields", [])}
    return cast(
        type[CamundaForm], type("CamundaTaskForm", (CamundaForm,), {**declared, "spec": spec})
    )


def initial_for(fields: list[dict[str, Any]], data: dict[str, Any]) -> dict[str, Any]:
    return {field["id"]: _initial(field, data) for field in fields}


def variables_from(form: CamundaForm) -> dict[str, Any] | None:
    """The variables to submit, as the engine typed them; None while the form has errors."""
    return form.variables if form.is_valid() else None
