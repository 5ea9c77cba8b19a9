"""How the operators' pages show elements and moments: an element by its name with its id in
small print, and every timestamp in the one format of the settings (DATETIME_FORMAT)."""

import json
from datetime import datetime
from typing import Any

from django import template
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()


@register.simple_tag
def element(element_id: str | None, names: dict[str, str] | None) -> SafeString | str:
    """`Approve expense (approve_expense)` with the id in small print; the bare id when the
    element has no name."""
    if not element_id:
        return ""
    name = (names or {}).get(element_id)
    if not name or name == element_id:
        return format_html('<code class="baton-id">{}</code>', element_id)
    return format_html('{} <small class="baton-id">{}</small>', name, element_id)


def _moment(value: Any) -> datetime | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    if timezone.is_naive(value):
        value = timezone.make_aware(value, timezone.get_default_timezone())
    return timezone.localtime(value)


@register.filter
def when(value: Any) -> SafeString | str:
    """A datetime (or an ISO 8601 string, as JSON keeps them) as `<time>` in DATETIME_FORMAT;
    anything else as it is."""
    moment = _moment(value)
    if moment is None:
        return "" if value is None else str(value)
    return format_html(
        '<time datetime="{}">{}</time>',
        moment.isoformat(),
        formats.date_format(moment, "DATETIME_FORMAT"),
    )


@register.filter
def pretty_json(value: Any) -> str:
    """A JSON value (an audit event's details) as indented JSON, not a Python repr."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
