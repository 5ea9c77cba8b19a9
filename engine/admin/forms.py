"""Forms of the instance repair page. They parse and check what the operator typed; the
services decide whether the repair is allowed."""

import datetime
import json
from typing import Any

from django import forms
from django.contrib.admin.helpers import ActionForm
from django.utils import timezone

from engine.jsonable import NumberTooLong, parse_json_int


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
