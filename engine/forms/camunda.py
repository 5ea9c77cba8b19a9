"""The one validator of Camunda `formData` forms (fields as engine/bpmn/elements.py reads
them): the service checks every submission with it, and the web form renders the same fields
and calls it from its `clean()`, so that they cannot disagree."""

import datetime
import re
from typing import Any

from engine.exceptions import InvalidInput


def _coerce(field: dict[str, Any], value: Any) -> Any:  # noqa: C901 -- one decision table, clearer whole than split
    kind = field.get("type") or "string"
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "on", "1", "yes"}:
            return True
        if isinstance(value, str) and value.lower() in {"false", "off", "0", "no", ""}:
            return False
        raise ValueError("must be true or false")
    if kind == "long":
        if isinstance(value, bool):
            raise ValueError("must be a whole number")
        try:
            return int(str(value).strip())
        except ValueError:
            raise ValueError("must be a whole number") from None
    if kind == "date":
        try:
            return datetime.date.fromisoformat(str(value)[:10]).isoformat()
        except ValueError:
            raise ValueError("must be a date (YYYY-MM-DD)") from None
    if kind == "enum":
        allowed = [v["id"] for v in field.get("values", [])]
        if str(value) not in allowed:
            raise ValueError(f"must be one of: {', '.join(allowed)}")
        return str(value)
    if not isinstance(value, str):
        raise ValueError("must be text")
    return value


def _check_constraints(field: dict[str, Any], value: Any) -> None:
    constraints = field.get("constraints") or {}
    checks = {
        "min": lambda c: value >= float(c),
        "max": lambda c: value <= float(c),
        "minlength": lambda c: len(value) >= int(c),
        "maxlength": lambda c: len(value) <= int(c),
        "pattern": lambda c: re.fullmatch(c, value) is not None,
    }
    messages = {
        "min": "must be at least {}",
        "max": "must be at most {}",
        "minlength": "must have at least {} characters",
        "maxlength": "must have at most {} characters",
        "pattern": "does not have the expected format",
    }
    for name, config in constraints.items():
        check = checks.get(name)
        if check is None or config is None:
            continue
        try:
            ok = check(config)
        except (TypeError, ValueError, re.error):
            ok = False
        if not ok:
            raise ValueError(messages[name].format(config))


def clean_camunda_fields(fields: list[dict[str, Any]], cleaned: dict[str, Any]) -> dict[str, Any]:
    """Check and type the form's fields in `cleaned` (changed in place and returned); raise
    `InvalidInput` with a message per field id. Read-only fields are dropped, an empty
    optional field becomes None and an empty boolean false (an unticked checkbox)."""
    errors: dict[str, str] = {}
    for field in fields:
        field_id = field["id"]
        if field.get("readonly"):
            cleaned.pop(field_id, None)
            continue
        value = cleaned.get(field_id)
        if value is None or value == "":
            if field.get("type") == "boolean":
                cleaned[field_id] = False
            elif field.get("required"):
                errors[field_id] = "This field is required."
            else:
                cleaned[field_id] = None
            continue
        try:
            cleaned[field_id] = _coerce(field, value)
            _check_constraints(field, cleaned[field_id])
        except ValueError as exc:
            errors[field_id] = f"{field.get('label') or field_id} {exc}."
    if errors:
        raise InvalidInput("Some fields are not valid.", errors=errors)
    return cleaned
