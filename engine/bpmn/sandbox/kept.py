"""What a script may leave in the process data: every value within the limits, of a type the
process data can keep, and all of it together within MAX_RESULT_BYTES.

The size is that of the data written out: a list that appears twice counts twice. It is
computed once per distinct object, so data that shares its parts (`a = [a, a]` thirty times)
is measured in a moment, not expanded into gigabytes first.
"""

import datetime
import decimal
import math
import uuid
from typing import Any

from .limits import (
    MAX_DECIMAL_DIGITS,
    MAX_NESTING_DEPTH,
    MAX_SEQUENCE_LENGTH,
    MAX_STORED_INT_BITS,
    MAX_STORED_INT_DIGITS,
    MAX_STRING_LENGTH,
    decimal_too_large,
)


class NotKept(ValueError):
    """The data cannot be kept in the process data."""


class TooLarge(NotKept):
    pass


class Unsupported(NotKept):
    def __init__(self, type_name: str, what: str = "") -> None:
        super().__init__(what or f"a value of type {type_name}")
        self.type_name = type_name


_KEY_TYPES = (str, int, float, bool, type(None))
_SMALL = (datetime.date, datetime.time, datetime.timedelta, uuid.UUID)
_CONTAINERS = frozenset({list, tuple, dict, set, frozenset})


class _Measure:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.known: dict[int, tuple[int, int]] = {}  # id -> (size, height) of a container
        self.open: set[int] = set()

    def size(self, value: Any, depth: int) -> tuple[int, int]:
        """(bytes, height) of `value`, found `depth` levels below the top."""
        kind = type(value)
        if kind is str and len(value) <= MAX_STRING_LENGTH:  # the common case, first
            return 8 + len(value), 0
        if kind in _CONTAINERS or isinstance(value, list | tuple | dict | set | frozenset):
            return self._container(value, depth)
        return self._scalar(value), 0

    def _container(self, value: Any, depth: int) -> tuple[int, int]:
        key = id(value)
        if key in self.open:
            raise TooLarge("data that refers to itself")
        if key not in self.known:
            self.open.add(key)
            self.known[key] = self._contents(value, depth)
            self.open.discard(key)
        size, height = self.known[key]
        if depth + height > MAX_NESTING_DEPTH:
            raise TooLarge(f"data nested more than {MAX_NESTING_DEPTH} levels deep")
        return size, height

    def _contents(self, value: Any, depth: int) -> tuple[int, int]:
        if len(value) > MAX_SEQUENCE_LENGTH:
            names: dict[type, str] = {dict: "a dict", list: "a list", tuple: "a tuple"}
            what = names.get(type(value), "a set")
            raise TooLarge(f"{what} of {len(value):,} items (at most {MAX_SEQUENCE_LENGTH:,})")
        if depth >= MAX_NESTING_DEPTH:
            raise TooLarge(f"data nested more than {MAX_NESTING_DEPTH} levels deep")
        items: Any = value
        if isinstance(value, dict):
            if not all(isinstance(k, _KEY_TYPES) for k in value):
                raise Unsupported("dict", "a dict key other than text, a number, a boolean or None")
            items = (part for pair in value.items() for part in pair)
        total, height = 8 + len(value), 0
        for item in items:
            size, below = self.size(item, depth + 1)
            total += size
            height = max(height, below + 1)
            if total > self.limit:
                raise TooLarge("more data than the process data may hold")
        return total, height

    def _scalar(self, value: Any) -> int:
        if value is None or isinstance(value, bool):
            return 8
        if isinstance(value, int):
            if value.bit_length() > MAX_STORED_INT_BITS:
                digits = int(value.bit_length() / math.log2(10))
                raise TooLarge(
                    f"a number of about {digits:,} digits (at most {MAX_STORED_INT_DIGITS:,})"
                )
            return 8 + value.bit_length() // 3
        if isinstance(value, float):
            if not math.isfinite(value):
                raise TooLarge(f"the number {value}, which the process data cannot keep")
            return 24
        if isinstance(value, str | bytes):
            if len(value) > MAX_STRING_LENGTH:
                what = "a text" if isinstance(value, str) else "bytes"
                raise TooLarge(
                    f"{what} of {len(value):,} characters (at most {MAX_STRING_LENGTH:,})"
                )
            return 8 + len(value) * (1 if isinstance(value, str) else 2)
        if isinstance(value, decimal.Decimal):
            if decimal_too_large(value):
                raise TooLarge(f"a decimal with an exponent beyond {MAX_DECIMAL_DIGITS:,}")
            return 16 + len(value.as_tuple().digits)
        if isinstance(value, _SMALL):
            return 40
        raise Unsupported(type(value).__name__)


def check(value: Any, limit: int) -> None:
    """Raise `NotKept` unless `value` may be left in the process data."""
    size, _ = _Measure(limit).size(value, 0)
    if size > limit:
        raise TooLarge("more data than the process data may hold")
