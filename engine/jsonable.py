"""Making values safe to store in a JSON column, and reading JSON that others sent."""

import json
import sys
from typing import Any

from django.conf import settings

from .exceptions import InvalidInput


def json_safe(value: Any) -> Any:
    """`value` as plain JSON types; anything JSON cannot express becomes its `str()`."""
    return json.loads(json.dumps(value, default=str))


def encodes_within(value: Any, limit: int) -> bool:
    """Whether `value` as JSON (what `json_safe` would make of it) takes at most `limit`
    bytes, found by encoding it piece by piece and stopping once past the limit: a value
    that shares one list many times over (as JMESPath's `[@,@]` builds) may stand for
    gigabytes of JSON in a few kilobytes of memory."""
    size = 0
    for chunk in json.JSONEncoder(default=str).iterencode(value):
        size += len(chunk.encode())
        if size > limit:
            return False
    return True


class NumberTooLong(ValueError):
    """An integer in JSON longer than Python converts (sys.get_int_max_str_digits(), 4300
    digits by default). The decoder's own error for it is a plain ValueError, not a
    JSONDecodeError, so whoever catches only the latter answers a 500."""

    def __init__(self, digits: int, limit: int) -> None:
        super().__init__(f"an integer of {digits} digits; integers may have at most {limit} digits")


def parse_json_int(text: str) -> int:
    """The `parse_int` for json.load(s) of untrusted text: an integer too long to convert is a
    NumberTooLong that says so (Python's own message tells the sender to call
    sys.set_int_max_str_digits())."""
    limit = sys.get_int_max_str_digits()
    digits = len(text) - text.startswith("-")
    if limit and digits > limit:
        raise NumberTooLong(digits, limit)
    return int(text)


def nesting_depth(value: Any, stop_after: int) -> int:
    """How deeply lists and objects nest in `value` (a scalar is 0, `{"a": []}` is 2), counted
    without recursion and only up to `stop_after + 1`: enough to tell it is too deep."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > stop_after:
            break
        pending.extend((child, depth + 1) for child in children)
    return deepest


def too_deep(what: str = "The JSON value") -> InvalidInput:
    """The error for a value nested deeper than BATON_MAX_JSON_DEPTH; also raised by decoders
    that stop at Python's recursion limit (far deeper still)."""
    limit = settings.BATON_MAX_JSON_DEPTH
    return InvalidInput(
        f"{what} is nested deeper than {limit} levels (BATON_MAX_JSON_DEPTH).",
        errors=[
            {
                "field": "non_field_errors",
                "message": f"Lists and objects may nest at most {limit} levels deep.",
            }
        ],
    )


def check_json_depth(value: Any, what: str = "The JSON value") -> None:
    """Refuse values nested deeper than BATON_MAX_JSON_DEPTH: everything that stores,
    copies or serializes them (deepcopy, the workflow serializer, the JSON encoder)
    recurses, so a deeper value would fail later with a RecursionError, mid-operation."""
    if nesting_depth(value, settings.BATON_MAX_JSON_DEPTH) > settings.BATON_MAX_JSON_DEPTH:
        raise too_deep(what)
