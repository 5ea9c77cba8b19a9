"""Size-guarded formatting: f-strings, format(), str.format and %-formatting.

A format spec's width or precision is capped, a Decimal is not expanded beyond the digit
limit, and the fields of `str.format` reach attributes and items only through the access
guards that scripts use everywhere else.
"""

import _string
import datetime
import re
import string
from collections.abc import Callable
from typing import Any

from .errors import ScriptNotAllowed
from .limits import MAX_FORMAT_WIDTH, check_decimal, check_length, refuse

_DIGITS = re.compile(r"\d+")
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")


def check_format_spec(value: Any, spec: str) -> None:
    """Refuse a width or precision beyond the limit: any run of digits in the spec counts
    (the types' own spec parsers differ; a digit used as the fill character is harmless)."""
    if not spec or isinstance(value, datetime.date | datetime.time):
        return  # a strftime template: its text is as long as the template says
    widest = max((int(run[:18]) for run in _DIGITS.findall(spec)), default=0)
    if widest > MAX_FORMAT_WIDTH:
        refuse("a formatted field", widest, MAX_FORMAT_WIDTH, "characters")
    check_decimal(value)


def check_percent_format(template: str | bytes, args: Any) -> None:
    text = template if isinstance(template, str) else template.decode("latin-1")
    widest = 0
    count = 0
    for width, precision in _PERCENT_SPEC.findall(text):
        if width == "*" or precision == "*":
            raise ScriptNotAllowed("'*' widths in %-formatting are not allowed in diagram scripts.")
        widest = max(widest, int(width or 0), int(precision or 0))
        count += 1
    if widest > MAX_FORMAT_WIDTH:
        refuse("a formatted field", widest, MAX_FORMAT_WIDTH, "characters")
    check_length(text, len(text) + count * widest)
    if isinstance(args, dict):
        args = tuple(args.values())
    for value in args if isinstance(args, tuple) else (args,):
        check_decimal(value)


def _convert(value: Any, conversion: int) -> Any:
    if conversion == ord("s"):
        return str(value)
    if conversion == ord("r"):
        return repr(value)
    if conversion == ord("a"):
        return ascii(value)
    return value


def guarded_format_value(value: Any, conversion: int, spec: str) -> str:
    """One `{value!conversion:spec}` of an f-string."""
    value = _convert(value, conversion)
    check_format_spec(value, spec)
    return format(value, spec)


def guarded_fstring(*parts: str) -> str:
    check_length("", sum(len(part) for part in parts))
    return "".join(parts)


def guarded_format(value: Any, spec: str = "") -> str:
    check_format_spec(value, spec)
    return format(value, spec)


class SafeFormatter(string.Formatter):
    """`str.format` whose fields reach attributes and items through the given guards
    (`{0.__class__}` is refused), with capped field widths and total length."""

    def __init__(
        self, getattr_guard: Callable[[Any, str], Any], getitem_guard: Callable[[Any, Any], Any]
    ) -> None:
        self.length = 0
        self.getattr_guard = getattr_guard
        self.getitem_guard = getitem_guard

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> tuple[Any, Any]:
        first, rest = _string.formatter_field_name_split(field_name)
        obj = self.get_value(first, args, kwargs)
        for is_attribute, index in rest:
            obj = self.getattr_guard(obj, index) if is_attribute else self.getitem_guard(obj, index)
        return obj, first

    def format_field(self, value: Any, format_spec: str) -> Any:
        check_format_spec(value, format_spec)
        text = format(value, format_spec)
        self.length += len(text)
        check_length("", self.length)
        return text
