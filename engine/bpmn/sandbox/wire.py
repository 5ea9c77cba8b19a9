"""How values cross between the engine and a sandbox process: JSON with a few tags, in
length-prefixed frames.

No pickle in either direction: the engine must never unpickle what a sandbox process sends,
since the sandbox runs code that designers wrote. The tags keep the Python types that task data
holds (tuples, sets, dates, decimals, dicts with non-text keys...) as they were. Encoding
counts an approximate size and stops at a limit, so that a structure built by aliasing
(`[big] * 1000`) cannot be expanded into gigabytes of text; encoding what a script leaves
behind (`strict`) first checks it against the limits (`kept`).
"""

import base64
import datetime
import decimal
import json
import struct
import uuid
from typing import IO, Any

from . import kept
from .limits import MAX_STORED_INT_BITS

TAGS = frozenset(
    {
        "$tuple",
        "$set",
        "$frozenset",
        "$dict",
        "$datetime",
        "$date",
        "$time",
        "$timedelta",
        "$decimal",
        "$uuid",
        "$bytes",
        "$int",
    }
)
# Integers beyond what a script may leave (limits.MAX_STORED_INT_DIGITS, Python's int/str
# conversion limit) travel as hexadecimal.
_BIG_INT_BITS = MAX_STORED_INT_BITS
_HEADER = struct.Struct(">Q")


WireError = kept.NotKept  # a value that cannot cross: of a type not carried, or too large
TooLarge = kept.TooLarge
Unsupported = kept.Unsupported


class _Budget:
    __slots__ = ("left",)

    def __init__(self, limit: int) -> None:
        self.left = limit

    def spend(self, amount: int) -> None:
        self.left -= amount
        if self.left < 0:
            raise TooLarge("the data is too large (or refers to itself)")


def to_wire(value: Any, budget: _Budget) -> Any:
    """`value` as plain JSON types, with tags for the types JSON lacks."""
    budget.spend(8)
    kind = type(value)
    if value is None or kind is bool or kind is float:
        return value
    if kind is int:
        return _int_to_wire(value, budget)
    if kind is str:
        budget.spend(len(value))
        return value
    if kind is list:
        budget.spend(len(value))
        return [to_wire(item, budget) for item in value]
    if kind is dict:
        budget.spend(len(value))
        if all(type(k) is str and not k.startswith("$") for k in value):
            return {k: to_wire(v, budget) for k, v in value.items()}
        return {"$dict": [[to_wire(k, budget), to_wire(v, budget)] for k, v in value.items()]}
    if kind is tuple:
        budget.spend(len(value))
        return {"$tuple": [to_wire(item, budget) for item in value]}
    if kind is set or kind is frozenset:
        budget.spend(len(value))
        tag = "$set" if kind is set else "$frozenset"
        return {tag: [to_wire(item, budget) for item in value]}
    return _to_wire_other(value, budget)


def _int_to_wire(value: int, budget: _Budget) -> Any:
    bits = value.bit_length()
    if bits > _BIG_INT_BITS:
        budget.spend(bits // 4)
        return {"$int": format(value, "x")}
    return value


def _to_wire_other(value: Any, budget: _Budget) -> Any:  # noqa: C901 -- one decision table, clearer whole than split
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return to_wire(int(value), budget)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return to_wire(str(value), budget)
    if isinstance(value, datetime.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, datetime.date):
        return {"$date": value.isoformat()}
    if isinstance(value, datetime.time):
        return {"$time": value.isoformat()}
    if isinstance(value, datetime.timedelta):
        return {"$timedelta": [value.days, value.seconds, value.microseconds]}
    if isinstance(value, decimal.Decimal):
        text = str(value)
        budget.spend(len(text))
        return {"$decimal": text}
    if isinstance(value, uuid.UUID):
        return {"$uuid": str(value)}
    if isinstance(value, bytes):
        budget.spend(len(value) * 2)
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        return to_wire(dict(value), budget)
    if isinstance(value, list):
        return to_wire(list(value), budget)
    if isinstance(value, tuple):
        return to_wire(tuple(value), budget)
    raise Unsupported(type(value).__name__)


def _from_tag(obj: dict[str, Any]) -> Any:  # noqa: C901 -- one decision table, clearer whole than split
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
    """JSON bytes for `value`; raises `WireError`. `strict`: what a script leaves behind,
    checked against the limits first (`kept.check`)."""
    try:
        if strict:
            kept.check(value, limit)
        wire = to_wire(value, _Budget(limit))
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


HEADER_SIZE = _HEADER.size


def frame_length(header: bytes) -> int:
    """The payload length a frame's header announces."""
    (length,) = _HEADER.unpack(header)
    return int(length)


def read_frame(stream: IO[bytes]) -> bytes | None:
    """The next frame's payload from a blocking stream; None at its end."""
    header = _read_exactly(stream, HEADER_SIZE)
    if header is None:
        return None
    return _read_exactly(stream, frame_length(header))


def _read_exactly(stream: IO[bytes], length: int) -> bytes | None:
    chunks = []
    while length:
        chunk = stream.read(length)
        if not chunk:
            return None
        chunks.append(chunk)
        length -= len(chunk)
    return b"".join(chunks)
