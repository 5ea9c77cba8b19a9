"""The Django widgets, fields and validators a JSON-schema form is made of."""

import datetime
import functools
import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, cast

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import BaseValidator
from django.forms.fields import InvalidJSONInput

from .numbers import json_number, number_text

BLANK_LABEL = "—"


class DateInput(forms.DateInput):
    input_type = "date"


class DateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"


class TimeInput(forms.TimeInput):
    input_type = "time"


class ExclusiveMinValueValidator(BaseValidator):
    message = "Ensure this value is greater than %(limit_value)s."
    code = "min_value"

    def compare(self, a: Any, b: Any) -> bool:
        return bool(a <= b)


class ExclusiveMaxValueValidator(BaseValidator):
    message = "Ensure this value is less than %(limit_value)s."
    code = "max_value"

    def compare(self, a: Any, b: Any) -> bool:
        return bool(a >= b)


@dataclass(frozen=True)
class MultipleOfValidator:
    step: Decimal

    def __call__(self, value: Any) -> None:
        try:
            remainder = Decimal(str(value)) % self.step
        except (InvalidOperation, ValueError):
            return
        if remainder != 0:
            raise ValidationError(
                "Ensure this value is a multiple of %(step)s.",
                code="multiple_of",
                params={"step": number_text(self.step)},
            )


def _count_errors(count: int, least: int | None, most: int | None, verb: str) -> None:
    def items(n: int) -> str:
        return f"{n} item" + ("" if n == 1 else "s")

    if least is not None and count < least:
        raise ValidationError(f"{verb} at least {items(least)}.", code="min_items")
    if most is not None and count > most:
        raise ValidationError(f"{verb} at most {items(most)}.", code="max_items")


class JsonChoiceField(forms.ChoiceField):
    """A choice among JSON values of any type; cleans to the value (None when blank)."""

    def __init__(self, *, options: list[tuple[Any, str]], blank: bool, **kwargs: Any) -> None:
        self.string_keys = all(isinstance(value, str) for value, _ in options)
        self.values_by_key = {self.key(value): value for value, _ in options}
        choices = [(self.key(value), label) for value, label in options]
        super().__init__(choices=[("", BLANK_LABEL), *choices] if blank else choices, **kwargs)

    def key(self, value: Any) -> str:
        if self.string_keys:
            return value if isinstance(value, str) else str(value)
        return json.dumps(value, sort_keys=True, ensure_ascii=False)

    def prepare_value(self, value: Any) -> Any:
        if value is None or (isinstance(value, str) and value in self.values_by_key):
            return value
        return self.key(value)

    def clean(self, value: Any) -> Any:
        key = super().clean(value)
        return self.values_by_key.get(key) if key not in (None, "") else None


class JsonMultipleChoiceField(forms.MultipleChoiceField):
    """Several choices among JSON values; cleans to the list of values."""

    def __init__(
        self,
        *,
        options: list[tuple[Any, str]],
        min_items: int | None = None,
        max_items: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.single = JsonChoiceField(options=options, blank=False)
        self.min_items, self.max_items = min_items, max_items
        choices = [(self.single.key(value), label) for value, label in options]
        super().__init__(choices=choices, **kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return [self.single.prepare_value(item) for item in value]
        return value

    def validate(self, value: Any) -> None:
        super().validate(value)
        _count_errors(len(value or []), self.min_items, self.max_items, "Select")

    def clean(self, value: Any) -> Any:
        keys = super().clean(value)
        return [self.single.values_by_key[key] for key in keys]


class LinesField(forms.CharField):
    """A list of strings or numbers typed one per line in a text area."""

    def __init__(
        self,
        *,
        item_type: str,
        item_format: str | None = None,
        min_items: int | None = None,
        max_items: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.item_type, self.item_format = item_type, item_format
        self.min_items, self.max_items = min_items, max_items
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 4}))
        super().__init__(**kwargs)

    def _item(self, text: str) -> Any:
        if self.item_type == "integer":
            try:
                return int(text)
            except ValueError:
                raise ValueError("enter a whole number.") from None
        if self.item_type == "number":
            try:
                number = Decimal(text)
            except InvalidOperation:
                raise ValueError("enter a number.") from None
            if not number.is_finite():
                raise ValueError("enter a number.")
            return json_number(number)
        if self.item_format == "date":
            try:
                datetime.date.fromisoformat(text)
            except ValueError:
                raise ValueError("enter a valid date (YYYY-MM-DD).") from None
        return text

    def clean(self, value: Any) -> Any:
        text = super().clean(value)
        lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
        items: list[Any] = []
        errors: list[ValidationError] = []
        for number, line in enumerate(lines, start=1):
            try:
                items.append(self._item(line))
            except ValueError as exc:
                errors.append(ValidationError(f"Line {number}: {exc}", code="invalid"))
        try:
            _count_errors(len(items), self.min_items, self.max_items, "Enter")
        except ValidationError as exc:
            errors.append(exc)
        if errors:
            raise ValidationError(errors)
        return items

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return "\n".join(
                item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)
                for item in value
            )
        return value


class JsonValueField(forms.JSONField):
    """Any JSON value, typed as JSON text (pretty-printed when shown)."""

    def prepare_value(self, value: Any) -> Any:
        if value is None:
            return ""
        if isinstance(value, InvalidJSONInput):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


class IsoDateField(forms.DateField):
    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, str) and len(value) > 10:
            try:
                return datetime.date.fromisoformat(value[:10])
            except ValueError:
                return value
        return value


class IsoDateTimeField(forms.DateTimeField):
    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return value
        return super().prepare_value(value)


class _PassThrough(forms.Field):
    """A read-only field: its (initial) value is submitted exactly as it was."""

    def clean(self, value: Any) -> Any:
        return value if self.disabled else super().clean(value)


@functools.cache
def read_only_class(field_class: type[forms.Field]) -> type[forms.Field]:
    return cast(
        type[forms.Field], type(f"ReadOnly{field_class.__name__}", (_PassThrough, field_class), {})
    )
