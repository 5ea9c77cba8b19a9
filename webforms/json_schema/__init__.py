"""Django forms built from a JSON Schema and a react-jsonschema-form UI schema (SpiffArena).

One module per idea: `layout` reads the schema into inputs, `fields` holds the Django fields
and widgets, `building` makes one field per input, `form` is the generated form and what it
submits, `numbers` converts JSON numbers.

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

from .fields import (
    IsoDateField,
    IsoDateTimeField,
    JsonChoiceField,
    JsonMultipleChoiceField,
    JsonValueField,
    LinesField,
)
from .form import (
    JsonSchemaForm,
    build_form,
    form_class_for,
    initial_for,
    validate_form,
    variables_from,
)

__all__ = [
    "IsoDateField",
    "IsoDateTimeField",
    "JsonChoiceField",
    "JsonMultipleChoiceField",
    "JsonSchemaForm",
    "JsonValueField",
    "LinesField",
    "build_form",
    "form_class_for",
    "initial_for",
    "validate_form",
    "variables_from",
]
