"""Which of an instance's variables a task page shows beside its form (Camunda Tasklist's
variables, SpiffArena's read-only data): the ones the task names in its `show_variables`
property, in that order; without it, the fields its form declares read-only and a summary
of the instance's other variables (not those the form edits: they are in the form)."""

from dataclasses import dataclass
from typing import Any

from .variables import ShownVariable, shown_variables, summary_names


@dataclass(frozen=True)
class TaskData:
    variables: list[ShownVariable]
    # Camunda read-only fields shown here rather than as disabled inputs in the form.
    readonly_fields: frozenset[str]
    chosen: bool  # named by the task's show_variables property


def _form_fields(form: dict[str, Any]) -> tuple[list[dict[str, Any]], set[str]]:
    """(the read-only Camunda fields, the names the form shows itself)."""
    if form.get("type") == "camunda":
        fields = form.get("fields") or []
        readonly = [f for f in fields if f.get("readonly")]
        editable = {f["id"] for f in fields if not f.get("readonly")}
        return readonly, editable
    if form.get("type") == "json-schema" and isinstance(form.get("schema"), dict):
        # A JSON-schema form keeps its own read-only fields: it shows all its properties.
        properties = form["schema"].get("properties")
        return [], set(properties) if isinstance(properties, dict) else set()
    return [], set()


def task_data(
    form: dict[str, Any], show_variables: list[str], variables: dict[str, Any]
) -> TaskData:
    readonly, in_form = _form_fields(form)
    labels = {f["id"]: f.get("label") or f["id"] for f in readonly}
    defaults = {f["id"]: f.get("default") for f in readonly}
    if show_variables:
        names = list(dict.fromkeys(show_variables))
        shown_here = frozenset(name for name in labels if name in names)
        rows = shown_variables(variables, names, labels, defaults)
        return TaskData(rows, shown_here, True)
    first = list(labels)
    rest = summary_names(variables, leave_out={*first, *in_form})
    rows = shown_variables(variables, first + rest, labels, defaults)
    return TaskData(rows, frozenset(labels), False)
