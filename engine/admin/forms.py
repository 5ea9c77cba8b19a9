"""Forms of the instance repair page. They parse and check what the operator typed; the
services decide whether the repair is allowed."""

import datetime
import json
from typing import Any

from django import forms
from django.contrib.admin.helpers import ActionForm
from django.utils import timezone

from engine.jsonable import NumberTooLong, parse_json_int
from engine.models import Batch, ProcessInstance
from engine.selectors import WAIT_KINDS, BatchFilter


class JSONObjectField(forms.Field):
    """A textarea holding a JSON object; anything else is a form error, never a change."""

    widget = forms.Textarea(
        attrs={"rows": 10, "cols": 80, "class": "baton-json", "spellcheck": "false"}
    )

    def to_python(self, value: Any) -> dict[str, Any]:
        text = str(value or "").strip()
        if not text:
            return {}
        try:
            parsed = json.loads(text, parse_int=parse_json_int)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(
                f"This is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})."
            ) from None
        except NumberTooLong as exc:
            raise forms.ValidationError(f"This is not valid JSON: {exc}.") from None
        if not isinstance(parsed, dict):
            raise forms.ValidationError('Give a JSON object: {"name": value, ...}.')
        return parsed


def _set_choices(form: forms.Form, name: str, choices: list[tuple[Any, str]]) -> None:
    field = form.fields[name]
    assert isinstance(field, forms.ChoiceField)
    field.choices = choices


class VariablesForm(forms.Form):
    variables = JSONObjectField(
        required=False,
        help_text=(
            "All variables of the instance. Change values, add names, or delete names to remove "
            "them."
        ),
    )
    retry = forms.BooleanField(required=False, label="Retry the incident after saving")


class ResetForm(forms.Form):
    element_id = forms.ChoiceField(label="Reset to")

    def __init__(self, *args: Any, targets: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _set_choices(self, "element_id", targets)


class SkipForm(forms.Form):
    task_id = forms.ChoiceField(label="Task")
    variables = JSONObjectField(
        required=False,
        label="Its result (JSON)",
        widget=forms.Textarea(
            attrs={
                "rows": 3,
                "cols": 60,
                "class": "baton-json",
                "placeholder": '{"decision": "approve"}',
            }
        ),
    )

    def __init__(self, *args: Any, tasks: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _set_choices(self, "task_id", tasks)


class ReasonForm(forms.Form):
    """A reason for suspend and terminate; whether one is needed is the service's rule."""

    reason = forms.CharField(required=False, max_length=500, label="Reason")


class MigrateForm(forms.Form):
    version = forms.TypedChoiceField(coerce=int, label="To version")

    def __init__(self, *args: Any, versions: list[int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _set_choices(self, "version", [(v, f"version {v}") for v in versions])


class DeleteFinishedForm(forms.Form):
    finished_before = forms.DateField(
        label="Finished before",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Completed and terminated instances that finished before this day are "
        "deleted with their tasks, jobs and audit trail.",
    )

    def cutoff(self) -> datetime.datetime:
        day: datetime.date = self.cleaned_data["finished_before"]
        return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))


class InstanceActionForm(ActionForm):
    """The changelist's action bar, with a reason for suspend and terminate."""

    reason = forms.CharField(
        required=False,
        max_length=500,
        label="Reason",
        widget=forms.TextInput(attrs={"placeholder": "reason (terminate needs one)"}),
    )


class BatchForm(forms.Form):
    """A batch from the instance list: which instances (the list's filters, carried over and
    editable) and what to do with them. The service checks the operation's arguments."""

    operation = forms.ChoiceField(choices=[("", "choose…"), *Batch.Operation.choices])
    reason = forms.CharField(
        required=False,
        max_length=2000,
        help_text="Suspend, terminate and cancel (terminate and cancel need one).",
    )
    version = forms.IntegerField(
        required=False, min_value=1, help_text="Migrate: the version to move to."
    )
    variables = JSONObjectField(
        required=False,
        label="Variables (JSON)",
        help_text="Set variables, retry: merged into each instance's data.",
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60, "class": "baton-json"}),
    )
    status = forms.ChoiceField(
        required=False, choices=[("", "any"), *ProcessInstance.Status.choices]
    )
    definition = forms.CharField(required=False, max_length=255, label="Process key")
    version_filter = forms.IntegerField(required=False, min_value=1, label="Of version")
    business_key = forms.CharField(required=False, max_length=255)
    incident_error = forms.CharField(
        required=False, max_length=500, help_text="Part of the incident's error text."
    )
    waiting_at = forms.CharField(
        required=False, max_length=255, help_text="An element id where a token waits."
    )
    waiting_for = forms.ChoiceField(required=False, choices=[("", "anything"), *WAIT_KINDS.items()])
    started_after = forms.DateTimeField(required=False, help_text="YYYY-MM-DD [HH:MM]")
    started_before = forms.DateTimeField(required=False)

    def batch_filter(self) -> BatchFilter:
        data = self.cleaned_data
        return BatchFilter(
            status=data["status"] or None,
            definition=data["definition"] or None,
            version=data["version_filter"],
            business_key=data["business_key"] or None,
            incident_error=data["incident_error"] or None,
            waiting_at=data["waiting_at"] or None,
            waiting_for=data["waiting_for"] or None,
            started_after=data["started_after"],
            started_before=data["started_before"],
        )

    def arguments(self) -> dict[str, Any]:
        """The arguments the chosen operation takes (the service refuses what is missing)."""
        data, operation = self.cleaned_data, self.cleaned_data["operation"]
        if operation in (
            Batch.Operation.SUSPEND,
            Batch.Operation.TERMINATE,
            Batch.Operation.CANCEL,
        ):
            return {"reason": data["reason"]}
        if operation == Batch.Operation.MIGRATE:
            return {"version": data["version"]}
        if operation in (Batch.Operation.RETRY, Batch.Operation.SET_VARIABLES):
            return {"variables": data["variables"] or {}}
        return {}


# The instance list's filter parameters, as the batch form's fields.
CHANGELIST_FILTERS = {
    "status": "status",
    "waiting_for": "waiting_for",
    "definition__key": "definition",
    "definition__version": "version_filter",
    "created_at__gte": "started_after",
    "created_at__lt": "started_before",
}


def batch_form_initial(params: Any) -> tuple[dict[str, Any], list[str]]:
    """The batch form's filter fields from the instance list's query string, and the list
    parameters that have no batch filter (the search box, the date drill-down)."""
    initial, left_out = {}, []
    for name in params:
        if name in CHANGELIST_FILTERS:
            initial[CHANGELIST_FILTERS[name]] = params.get(name)
        elif name not in ("o", "p", "all", "_changelist_filters"):
            left_out.append(name)
    return initial, left_out
