"""What the runtime needs to know per BPMN element that SpiffWorkflow's specs do not keep.

Read once at deploy time from the XML: who may work on a user task (Camunda attributes or
SpiffArena lanes), its due date and priority, and its form.
"""

import json
from typing import Any

from lxml import etree

from .expressions import is_expression
from .xml import BPMN_NS, CAMUNDA_NS, SPIFF_NS, ZEEBE_NS, parse_untrusted_xml

# Global user and manual tasks run as such where a call activity calls them (engine.bpmn.rewrites).
HUMAN_TASK_TAGS = {
    f"{{{BPMN_NS}}}{name}"
    for name in ("userTask", "manualTask", "globalUserTask", "globalManualTask")
}


def _split_list(value: str | None) -> list[str]:
    if not value:
        return []
    if is_expression(value):  # evaluated when the task opens (a list or a comma-separated text)
        return [value.strip()]
    return [item.strip() for item in value.split(",") if item.strip()]


def _assignment(element: etree._Element) -> dict[str, str | None]:
    """Who a user task is for: Camunda 7's attributes, or Camunda 8's
    `zeebe:assignmentDefinition` (a literal or a FEEL `= ...` expression each)."""
    zeebe = element.find(f"{{{BPMN_NS}}}extensionElements/{{{ZEEBE_NS}}}assignmentDefinition")
    names = ("assignee", "candidateUsers", "candidateGroups")
    if zeebe is not None:
        return {name: zeebe.get(name) for name in names}
    return {name: element.get(f"{{{CAMUNDA_NS}}}{name}") for name in names}


def _lanes_by_element(root: etree._Element) -> dict[str, str]:
    lanes: dict[str, str] = {}
    for lane in root.iter(f"{{{BPMN_NS}}}lane"):
        # An unnamed lane names no group: its tasks go to whoever started the instance.
        lane_name = (lane.get("name") or "").strip()
        for ref in lane.iter(f"{{{BPMN_NS}}}flowNodeRef"):
            if ref.text:
                lanes[ref.text.strip()] = lane_name
    return lanes


def _properties(element: etree._Element, namespace: str) -> dict[str, str]:
    """`<ns:properties><ns:property name= value=/>` of an element's extensionElements."""
    props: dict[str, str] = {}
    path = f"{{{BPMN_NS}}}extensionElements/{{{namespace}}}properties/{{{namespace}}}property"
    for prop in element.findall(path):
        if prop.get("name"):
            props[prop.get("name") or ""] = prop.get("value") or ""
    return props


def _camunda_form_field(field: etree._Element) -> dict[str, Any]:
    constraints: dict[str, str | None] = {}
    for constraint in field.iter(f"{{{CAMUNDA_NS}}}constraint"):
        constraints[constraint.get("name") or ""] = constraint.get("config")
    return {
        "id": field.get("id"),
        "type": field.get("type") or "string",
        "label": field.get("label") or field.get("id"),
        "default": field.get("defaultValue"),
        "required": "required" in constraints,
        "readonly": "readonly" in constraints,
        "constraints": {k: v for k, v in constraints.items() if k not in ("required", "readonly")},
        "values": [
            {"id": value.get("id"), "name": value.get("name") or value.get("id")}
            for value in field.findall(f"{{{CAMUNDA_NS}}}value")
        ],
        "properties": {
            prop.get("id"): prop.get("value")
            for prop in field.iter(f"{{{CAMUNDA_NS}}}property")
            if prop.get("id")
        },
    }


# The task property by which a diagram lets a completion keep variables its form does not
# declare (camunda:properties or spiffworkflow:properties, value "true").
ACCEPT_UNDECLARED_PROPERTY = "acceptUndeclaredVariables"


def _form(
    element: etree._Element, spiff_props: dict[str, str], json_files: dict[str, Any]
) -> dict[str, Any]:
    form = _form_fields(element, spiff_props, json_files)
    properties = {**spiff_props, **_properties(element, CAMUNDA_NS)}
    if properties.get(ACCEPT_UNDECLARED_PROPERTY, "").strip().lower() == "true":
        form["accepts_undeclared"] = True
    return form


_ZEEBE_EXTENSION = f"{{{BPMN_NS}}}extensionElements/{{{ZEEBE_NS}}}"
_EMBEDDED_FORM_PREFIX = "camunda-forms:bpmn:"
# form-js components Baton renders as fields (Camunda 8 forms), by the field type they become;
# display-only components are skipped.
_FORM_JS_TYPES = {
    "textfield": "string",
    "textarea": "string",
    "number": "long",
    "checkbox": "boolean",
    "select": "enum",
    "radio": "enum",
}
_FORM_JS_DISPLAY = {"text", "button", "spacer", "separator", "image", "html"}


def _form_js_fields(schema: Any) -> list[dict[str, Any]] | None:
    """A simple Camunda 8 form (form-js schema) as Baton's form fields; None when it holds a
    component Baton cannot render."""
    components = schema.get("components") if isinstance(schema, dict) else None
    if not isinstance(components, list):
        return None
    fields = []
    for component in components:
        if not isinstance(component, dict):
            return None
        kind = component.get("type")
        if kind in _FORM_JS_DISPLAY:
            continue
        if kind not in _FORM_JS_TYPES or not component.get("key"):
            return None
        validate = component.get("validate")
        validate = validate if isinstance(validate, dict) else {}
        values = component.get("values")
        values = values if isinstance(values, list) else []
        default = component.get("defaultValue")
        fields.append(
            {
                "id": str(component["key"]),
                "type": _FORM_JS_TYPES[kind],
                "label": str(component.get("label") or component["key"]),
                "default": None if default is None else str(default),
                "required": bool(validate.get("required")),
                "readonly": bool(component.get("readonly")),
                "constraints": {},
                "values": [
                    {"id": str(v.get("value")), "name": str(v.get("label") or v.get("value"))}
                    for v in values
                    if isinstance(v, dict)
                ],
                "properties": {"textarea": "true"} if kind == "textarea" else {},
            }
        )
    return fields


def _zeebe_form(element: etree._Element) -> dict[str, Any] | None:
    """A Camunda 8 user task's form: an embedded form (`zeebe:formDefinition formKey=
    "camunda-forms:bpmn:<id>"` naming a `zeebe:userTaskForm`) Baton renders when its fields
    are simple; any other form (a linked `formId`, a custom `formKey`) is kept on the task as
    not available in Baton, and the task takes the variables it is completed with, as a
    Camunda 8 user task does. None for a task that is no Camunda 8 user task."""
    definition = element.find(f"{_ZEEBE_EXTENSION}formDefinition")
    if definition is None:
        if element.find(f"{_ZEEBE_EXTENSION}userTask") is None:
            return None
        return {"accepts_undeclared": True}
    key = (definition.get("formKey") or "").strip()
    reference = key or (definition.get("formId") or "").strip()
    if key.startswith(_EMBEDDED_FORM_PREFIX):
        form_id = key[len(_EMBEDDED_FORM_PREFIX) :]
        for embedded in element.getroottree().getroot().iter(f"{{{ZEEBE_NS}}}userTaskForm"):
            if embedded.get("id") != form_id:
                continue
            try:
                fields = _form_js_fields(json.loads(embedded.text or ""))
            except ValueError:
                fields = None
            if fields is not None:
                return {"type": "camunda", "fields": fields}
    return {
        "accepts_undeclared": True,
        "unavailable": f"The form {reference} is not available in Baton.",
        "form_key": reference,
    }


def _form_fields(
    element: etree._Element, spiff_props: dict[str, str], json_files: dict[str, Any]
) -> dict[str, Any]:
    zeebe = _zeebe_form(element)
    if zeebe is not None:
        return zeebe
    fields = element.findall(
        f"{{{BPMN_NS}}}extensionElements/{{{CAMUNDA_NS}}}formData/{{{CAMUNDA_NS}}}formField"
    )
    if fields:
        return {"type": "camunda", "fields": [_camunda_form_field(f) for f in fields]}
    schema_file = spiff_props.get("formJsonSchemaFilename")
    if schema_file:
        ui_file = spiff_props.get("formUiSchemaFilename")
        return {
            "type": "json-schema",
            "schema_file": schema_file,
            "ui_schema_file": ui_file,
            "schema": json_files.get(schema_file),
            "ui_schema": json_files.get(ui_file) if ui_file else None,
        }
    return {}


# The task property naming the variables its page shows (comma-separated, in that order;
# dotted paths reach into objects): `camunda:properties` or `spiffworkflow:properties`.
SHOW_VARIABLES_PROPERTY = "show_variables"


def _instructions(element: etree._Element) -> str:
    node = element.find(f"{{{BPMN_NS}}}extensionElements/{{{SPIFF_NS}}}instructionsForEndUser")
    return (node.text or "").strip() if node is not None else ""


def describe_human_tasks(
    roots: list[etree._Element], json_files: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Map each user/manual task id of the documents to its assignment and form."""
    described: dict[str, dict[str, Any]] = {}
    for root in roots:
        lanes = _lanes_by_element(root)
        for element in root.iter(*HUMAN_TASK_TAGS):
            element_id = element.get("id") or ""
            spiff_props = _properties(element, SPIFF_NS)
            camunda_props = _properties(element, CAMUNDA_NS)
            lane = lanes.get(element_id, "")
            assignment = _assignment(element)
            groups = _split_list(assignment["candidateGroups"])
            if not groups and lane:
                groups = [lane]
            described[element_id] = {
                "name": element.get("name") or element_id,
                "lane": lane,
                "assignee": assignment["assignee"] or None,
                "candidate_users": _split_list(assignment["candidateUsers"]),
                "candidate_groups": groups,
                "due_date": element.get(f"{{{CAMUNDA_NS}}}dueDate") or None,
                "priority": element.get(f"{{{CAMUNDA_NS}}}priority") or None,
                "form": _form(element, spiff_props, json_files),
                "properties": {**spiff_props, **camunda_props},
                "instructions": _instructions(element),
                "show_variables": _split_list(
                    camunda_props.get(SHOW_VARIABLES_PROPERTY)
                    or spiff_props.get(SHOW_VARIABLES_PROPERTY)
                ),
            }
    return described


def describe_start_form(process: etree._Element, json_files: dict[str, Any]) -> dict[str, Any]:
    """The form of the process's (first) none start event, if it has one."""
    for start in process.iterchildren(f"{{{BPMN_NS}}}startEvent"):
        form = _form(start, _properties(start, SPIFF_NS), json_files)
        if form:
            return form
    return {}


def element_names(xml: str) -> dict[str, str]:
    """The name a modeller gave each element of a deployed diagram, by id (elements without
    a name are left out): what pages show instead of bare ids."""
    root = parse_untrusted_xml(xml.encode())
    names: dict[str, str] = {}
    for element in root.iter(f"{{{BPMN_NS}}}*"):
        element_id, name = element.get("id"), (element.get("name") or "").strip()
        if element_id and name:
            names[element_id] = " ".join(name.split())
    return names
