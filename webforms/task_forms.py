"""One entry point for the forms of tasks and start events, whatever dialect made them.

A form may carry a *decision field* (approve/reject): named by the `decision_field` property
of the task (`camunda:properties` or `spiffworkflow:properties`), or by convention an enum
field called `decision`, `approval` or `outcome`, or a boolean field called `approved`.
The inbox renders its options as buttons instead of an input.
"""

from dataclasses import dataclass
from typing import Any

from django import forms

from . import camunda, json_schema

CONVENTIONAL_DECISIONS = {"decision", "approval", "outcome", "approved"}


@dataclass(frozen=True)
class Decision:
    field: str
    options: list[tuple[str, str]]  # (submitted value, button label)


def _camunda_decision(form_spec: dict[str, Any], named: str | None) -> Decision | None:
    for field in form_spec.get("fields", []):
        if field["id"] != named and not (named is None and field["id"] in CONVENTIONAL_DECISIONS):
            continue
        if field.get("type") == "enum":
            return Decision(
                field["id"], [(v["id"], v.get("name") or v["id"]) for v in field.get("values", [])]
            )
        if field.get("type") == "boolean":
            return Decision(field["id"], [("true", "Approve"), ("false", "Reject")])
    return None


def decision_for(form_spec: dict[str, Any], properties: dict[str, str]) -> Decision | None:
    named = properties.get("decision_field") or None
    if form_spec.get("type") == "camunda":
        return _camunda_decision(form_spec, named)
    return None


def build_form(
    form_spec: dict[str, Any], task_data: dict[str, Any], data: Any = None
) -> forms.Form | None:
    """A bound (POST) or unbound form for the task, or None when the task has no form."""
    if form_spec.get("type") == "camunda" and form_spec.get("fields"):
        form_class = camunda.form_class_for(form_spec)
        return form_class(data=data, initial=camunda.initial_for(form_spec["fields"], task_data))
    if form_spec.get("type") == "json-schema" and isinstance(form_spec.get("schema"), dict):
        return json_schema.build_form(
            form_spec["schema"], form_spec.get("ui_schema"), task_data, data=data
        )
    return None


def submitted_variables(
    form_spec: dict[str, Any], form: forms.Form | None
) -> dict[str, Any] | None:
    """The variables to submit, or None when the form has errors (now attached to it)."""
    if form is None:
        return {}
    if isinstance(form, json_schema.JsonSchemaForm):
        return json_schema.validate_form(form)
    if isinstance(form, camunda.CamundaForm):
        return camunda.variables_from(form)
    return form.cleaned_data if form.is_valid() else None
