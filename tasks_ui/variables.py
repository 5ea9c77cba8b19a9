"""Instance variables as people read them: names humanised (`requester_name` -> "Requester
name", `dueDate` -> "Due date"), values formatted (numbers with separators, dates, yes/no,
lists), and long or nested values folded so that a page stays short.

Which variables a page shows is decided elsewhere (the task's `show_variables` property, the
form's read-only fields); this only says how they look. Everything here is plain text: the
templates escape it."""

import datetime
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

# Longer text (or text over several lines) is folded, its first characters as the summary.
FOLD_AFTER = 120
SUMMARY_LENGTH = 80
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")


@dataclass(frozen=True)
class ShownVariable:
    """One variable as a page shows it: `text` in line, or `summary` with `full` folded
    (a <details>), or `items` as a list."""

    name: str
    label: str
    text: str
    summary: str = ""
    full: str = ""
    items: list[str] = field(default_factory=list)
    missing: bool = False

    @property
    def folded(self) -> bool:
        return bool(self.full)


def humanise(name: str) -> str:
    """A variable name as a label: words split at `_`, `-`, `.` and camelCase humps."""
    words = _CAMEL.sub(" ", name).replace("_", " ").replace("-", " ").replace(".", " ")
    text = " ".join(words.split()).strip()
    if not text:
        return name
    return text[0].upper() + text[1:].lower() if not text.isupper() else text


def _number(value: int | float | Decimal) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.6f}".rstrip("0").rstrip(".")
    if isinstance(value, Decimal) and value != value.to_integral_value():
        return f"{value:,}"
    return f"{int(value):,}"


def _date_text(text: str) -> str | None:
    """An ISO date or date-time as `YYYY-MM-DD` or `YYYY-MM-DD HH:MM` (with its offset)."""
    if _DATE.match(text):
        try:
            return datetime.date.fromisoformat(text).isoformat()
        except ValueError:
            return None
    if _DATETIME.match(text):
        try:
            moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        offset = moment.strftime("%z")
        zone = "" if not offset else (" UTC" if offset == "+0000" else f" {offset}")
        return moment.strftime("%Y-%m-%d %H:%M") + zone
    return None


def format_scalar(value: Any) -> str:
    """A single value as short text."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, int | float | Decimal):
        return _number(value)
    if isinstance(value, str):
        return _date_text(value) or value
    return str(value)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | Decimal)


def _folded(name: str, label: str, full: str) -> ShownVariable:
    first_line = full.strip().splitlines()[0] if full.strip() else ""
    summary = first_line[:SUMMARY_LENGTH].rstrip()
    if len(first_line) > SUMMARY_LENGTH or summary != full.strip():
        summary += "…"
    return ShownVariable(name, label, text="", summary=summary, full=full)


def shown(name: str, value: Any, label: str | None = None) -> ShownVariable:
    """How one variable is shown."""
    label = label or humanise(name)
    if _is_scalar(value):
        text = format_scalar(value)
        if len(text) > FOLD_AFTER or "\n" in text.strip():
            return _folded(name, label, text)
        return ShownVariable(name, label, text=text)
    if isinstance(value, list | tuple) and all(_is_scalar(item) for item in value):
        items = [format_scalar(item) for item in value]
        joined = ", ".join(items)
        if len(joined) <= FOLD_AFTER:
            return ShownVariable(name, label, text=joined or "(none)")
        return ShownVariable(name, label, text=f"{len(items)} items", items=items)
    full = json.dumps(value, indent=2, ensure_ascii=False, default=str, sort_keys=True)
    return _folded(name, label, full)


def lookup(data: dict[str, Any], path: str) -> tuple[bool, Any]:
    """(found, value) of `path` in `data`, following dots into nested objects."""
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value


def shown_variables(
    data: dict[str, Any],
    names: Iterable[str],
    labels: dict[str, str] | None = None,
    defaults: dict[str, Any] | None = None,
) -> list[ShownVariable]:
    """The named variables (dotted paths into objects allowed), in that order; a name the
    instance does not have shows its default if it has one, else as not set."""
    labels = labels or {}
    defaults = defaults or {}
    rows = []
    for name in names:
        found, value = lookup(data, name)
        if not found and defaults.get(name) is not None:
            found, value = True, defaults[name]
        if found:
            rows.append(shown(name, value, labels.get(name)))
        else:
            label = labels.get(name) or humanise(name)
            rows.append(ShownVariable(name, label, text="not set", missing=True))
    return rows


def summary_names(data: dict[str, Any], *, leave_out: Iterable[str] = ()) -> list[str]:
    """The variables of an instance worth a summary: not internal (`_...`), not left out
    (those a form edits), in the instance's order."""
    skipped = set(leave_out)
    return [name for name in data if not name.startswith("_") and name not in skipped]
