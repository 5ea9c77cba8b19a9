"""How values cross between the engine and a sandbox process: JSON with a few tags, in
length-prefixed frames.

No pickle in either direction: the engine must never unpickle what a sandbox process sends,
since the sandbox runs code that designers wrote. The tags keep the Python types that task data
holds (tuples, sets, dates, decimals, dicts with non-text keys...) as they were. Encoding
counts an approximate size and stops at a limit, so that a structure built by aliasing
(`[big] * 1000`) cannot be expanded into gigabytes of text; encoding what a script leaves
behind (`strict`) also holds every single value to the limits of `limits`.
"""
import base64
import datetime
import decimal
import json
import struct
import uuid
from typing import IO, Any

from .limits import (
    MAX_DECIMAL_DIGITS,
    MAX_INT_BITS,
    MAX_NESTING_DEPTH,
    MAX_SEQUENCE_LENGTH,
    MAX_STRING_LENGTH,
)

TAGS = frozenset({
    "$tuple", "$set", "$frozenset", "$dict", "$datetime", "$date", "$time", "$timedelta",
    "$decimal", "$uuid", "$bytes", "$int",
})
# Integers beyond Python's int/str conversion limit (4300 digits) travel as hexadecimal.
_BIG_INT_BITS = 10_000
_HEADER = struct.Struct(">Q")


class WireError(ValueError):
    """A value cannot cross: of a type the wire does not carry, or too large."""


class TooLarge(WireError):
    pass


class Unsupported(WireError):
    def __init__(self, type_name: str) -> None:
        super().__init__(f"a value of type {type_name}")
        self.type_name = type_name


class _Budget:
    __slots__ = ("left", "strict")

    def __init__(self, limit: int, strict: bool = False) -> None:
        self.left = limit
        self.strict = strict

    def spend(self, amount: int) -> None:
        self.left -= amount
        if self.left < 0:
            raise TooLarge("the data is too large (or refers to itself)")

    def items(self, count: int, what: str) -> None:
        self.spend(count)
        if self.strict and count > MAX_SEQUENCE_LENGTH:
            raise TooLarge(f"{what} of {count:,} items (at most {MAX_SEQUENCE_LENGTH:,})")

    def text(self, length: int, what: str) -> None:
        self.spend(length)
        if self.strict and length > MAX_STRING_LENGTH:
            raise TooLarge(f"{what} of {length:,} characters (at most {MAX_STRING_LENGTH:,})")


def to_wire(value: Any, budget: _Budget, depth: int = 0) -> Any:
    """`value` as plain JSON types, with tags for the types JSON lacks."""
    budget.spend(8)
    if depth > MAX_NESTING_DEPTH and budget.strict:
        raise TooLarge(f"data nested more than {MAX_NESTING_DEPTH} levels deep")
    kind = type(value)
    if value is None or kind is bool or kind is float:
        return value
    if kind is int:
        return _int_to_wire(value, budget)
    if kind is str:
        budget.text(len(value), "a text")
        return value
    depth += 1
    if kind is list:
        budget.items(len(value), "a list")
        return [to_wire(item, budget, depth) for item in value]
    if kind is dict:
        budget.items(len(value), "a dict")
        if all(type(k) is str and not k.startswith("$") for k in value):
            return {k: to_wire(v, budget, depth) for k, v in value.items()}
        return {"$dict": [[to_wire(k, budget, depth), to_wire(v, budget, depth)]
                          for k, v in value.items()]}
    if kind is tuple:
        budget.items(len(value), "a tuple")
        return {"$tuple": [to_wire(item, budget, depth) for item in value]}
    if kind is set or kind is frozenset:
        budget.items(len(value), "a set")
        tag = "$set" if kind is set else "$frozenset"
        return {tag: [to_wire(item, budget, depth) for item in value]}
    return _to_wire_other(value, budget, depth)


def _int_to_wire(value: int, budget: _Budget) -> Any:
    bits = value.bit_length()
    if budget.strict and bits > MAX_INT_BITS:
        raise TooLarge(f"a number of {bits:,} bits (at most {MAX_INT_BITS:,})")
    if bits > _BIG_INT_BITS:
        budget.spend(bits // 4)
        return {"$int": format(value, "x")}
    return value


def _to_wire_other(value: Any, budget: _Budget, depth: int) -> Any:
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return to_wire(int(value), budget, depth)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return to_wire(str(value), budget, depth)
    if isinstance(value, datetime.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, datetime.date):
        return {"$date": value.isoformat()}
    if isinstance(value, datetime.time):
        return {"$time": value.isoformat()}
    if isinstance(value, datetime.timedelta):
        return {"$timedelta": [value.days, value.seconds, value.microseconds]}
    if isinstance(value, decimal.Decimal):
        if budget.strict and value.is_finite() and value and abs(
            value.adjusted()
        ) > MAX_DECIMAL_DIGITS:
            raise TooLarge(f"a decimal with an exponent beyond {MAX_DECIMAL_DIGITS:,}")
        text = str(value)
        budget.text(len(text), "a decimal")
        return {"$decimal": text}
    if isinstance(value, uuid.UUID):
        return {"$uuid": str(value)}
    if isinstance(value, bytes):
        budget.text(len(value), "bytes")
        budget.spend(len(value))
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        return to_wire(dict(value), budget, depth)
    if isinstance(value, list):
        return to_wire(list(value), budget, depth)
    if isinstance(value, tuple):
        return to_wire(tuple(value), budget, depth)
    raise Unsupported(type(value).__name__)


def _from_tag(obj: dict[str, Any]) -> Any:
    if len(obj) != 1:
        return obj
    tag, data = next(iter(obj.items()))
    if tag not in TAGS:
        return obj
    if tag == "$tuple":
        return tuple(data)
    if tag == "$set":
        return set(data)
    if tag == "$frozenset":
        return frozenset(data)
    if tag == "$dict":
        return {key: value for key, value in data}
    if tag == "$datetime":
        return datetime.datetime.fromisoformat(data)
    if tag == "$date":
        return datetime.date.fromisoformat(data)
    if tag == "$time":
        return datetime.time.fromisoformat(data)
    if tag == "$timedelta":
        days, seconds, microseconds = data
        return datetime.timedelta(days=days, seconds=seconds, microseconds=microseconds)
    if tag == "$decimal":
        return decimal.Decimal(data)
    if tag == "$uuid":
        return uuid.UUID(data)
    if tag == "$bytes":
        return base64.b64decode(data)
    return int(data, 16)  # "$int"


def encode(value: Any, limit: int, *, strict: bool = False) -> bytes:
    """JSON bytes for `value`; raises `WireError`. `strict`: hold every value to the limits
    of what a script may leave behind."""
    try:
        wire = to_wire(value, _Budget(limit, strict))
    except RecursionError:
        raise TooLarge("the data is nested too deeply (or refers to itself)") from None
    return json.dumps(wire, separators=(",", ":")).encode("utf-8")


def decode(data: bytes) -> Any:
    return json.loads(data.decode("utf-8"), object_hook=_from_tag)


def budget(limit: int) -> _Budget:
    return _Budget(limit)


def dumps_wire(wire: Any) -> bytes:
    """JSON bytes for a value already in wire form."""
    return json.dumps(wire, separators=(",", ":")).encode("utf-8")


def wire_items(mapping: dict[Any, Any], limit: int) -> tuple[Any, list[Any]]:
    """`mapping` in wire form, leaving out the entries whose value cannot cross; returns the
    wire form and the keys left out. Raises `TooLarge`."""
    spent = _Budget(limit)
    wired: dict[Any, Any] = {}
    skipped: list[Any] = []
    for key, value in mapping.items():
        try:
            wired[key] = to_wire(value, spent)
            to_wire(key, spent)
        except (Unsupported, RecursionError):
            skipped.append(key)
    if all(type(k) is str and not k.startswith("$") for k in wired):
        return wired, skipped
    return {"$dict": [[to_wire(k, spent), v] for k, v in wired.items()]}, skipped


# -- frames ------------------------------------------------------------------------------------

def frame(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload)) + payload


def read_frame(stream: IO[bytes]) -> bytes | None:
    """The next frame's payload from a blocking stream; None at its end."""
    header = _read_exactly(stream, _HEADER.size)
    if header is None:
        return None
    (length,) = _HEADER.unpack(header)
    return _read_exactly(stream, length)


def _read_exactly(stream: IO[bytes], length: int) -> bytes | None:
    chunks = []
    while length:
        chunk = stream.read(length)
        if not chunk:
            return None
        chunks.append(chunk)
        length -= len(chunk)
    return b"".join(chunks)
