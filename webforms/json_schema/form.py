"""The generated form: its class, initial values, and the variables it submits, checked by the
engine's JSON-schema validator in `clean()` with each error put on its field."""

import copy
import datetime
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar, cast

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from engine.forms import json_schema_error_list

from .building import FieldPlan, field_for_prop
from .layout import MISSING, layout_of, ui_options
from .numbers import json_number

TRUE_STRINGS = {"true", "1", "yes", "on"}


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


def form_class_for(
    schema: dict[str, Any] | None,
    ui_schema: dict[str, Any] | None = None,
    *,
    task_data: Mapping[str, Any] | None = None,
) -> type[JsonSchemaForm]:
    """A `JsonSchemaForm` subclass with one field per (nested) property of `schema`."""
    prepared, ui, layout = layout_of(schema, ui_schema, task_data)
    attrs: dict[str, Any] = {}
    plans: dict[str, FieldPlan] = {}
    for prop in layout.props:
        attrs[prop.name], plans[prop.name] = field_for_prop(prop)
    root_options = ui_options(ui)
    attrs.update(
        schema=prepared,
        ui_schema=ui,
        plans=plans,
        object_paths=tuple(layout.objects),
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
    _, _, layout = layout_of(schema, ui_schema, task_data)
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
        return json_number(value)
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
    form_class = (
        form_class_or_form if isinstance(form_class_or_form, type) else type(form_class_or_form)
    )
    variables = _assemble(form_class, cleaned_data)
    errors = _schema_errors(form_class, variables)
    if errors:
        raise ValidationError(cast(dict[str, Any], errors))
    return variables


def validate_form(form: JsonSchemaForm) -> dict[str, Any] | None:
    """Validate a bound form: the variables to submit, or None (the errors are on the form,
    each on its field). The schema check runs in `JsonSchemaForm.clean()`."""
    return form.variables if form.is_valid() else None
