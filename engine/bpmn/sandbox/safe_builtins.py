"""The builtins a diagram script sees, the names it gets without importing, and the guard
functions that RestrictedPython's (and Baton's) rewritten code calls.

Every script run gets its own copy of all of these (`run_globals`), so nothing a script does
to them is seen by the next one.
"""

import builtins
import datetime
import decimal
import math
import operator
import sys
import types
from collections.abc import Callable
from typing import Any, NoReturn

from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence
from RestrictedPython.PrintCollector import PrintCollector

from . import access, formatting, operators
from .allowed import MODULES, guarded_import
from .errors import ScriptNotAllowed
from .limits import MAX_SEQUENCE_LENGTH, check_bits, check_decimal, check_length, refuse
from .spiff_helpers import kkv_readers, spiff_names

_PLAIN = (
    "abs",
    "all",
    "any",
    "ascii",
    "bool",
    "callable",
    "chr",
    "complex",
    "dict",
    "divmod",
    "enumerate",
    "filter",
    "float",
    "frozenset",
    "hash",
    "int",
    "isinstance",
    "issubclass",
    "len",
    "list",
    "max",
    "min",
    "next",
    "ord",
    "repr",
    "reversed",
    "set",
    "slice",
    "sorted",
    "str",
    "sum",
    "tuple",
    "zip",
    "bytes",
    "ArithmeticError",
    "AssertionError",
    "AttributeError",
    "Exception",
    "ImportError",
    "IndexError",
    "KeyError",
    "LookupError",
    "NameError",
    "NotImplementedError",
    "OverflowError",
    "RecursionError",
    "RuntimeError",
    "StopIteration",
    "TypeError",
    "UnicodeError",
    "ValueError",
    "ZeroDivisionError",
)
_REFUSED = (
    "breakpoint",
    "bytearray",
    "classmethod",
    "compile",
    "delattr",
    "dir",
    "eval",
    "exec",
    "exit",
    "globals",
    "help",
    "id",
    "input",
    "locals",
    "memoryview",
    "object",
    "open",
    "property",
    "quit",
    "setattr",
    "staticmethod",
    "super",
    "type",
    "vars",
)


def _unavailable(name: str) -> Callable[..., NoReturn]:
    def refuse_call(*args: Any, **kwargs: Any) -> NoReturn:
        raise ScriptNotAllowed(f"{name}() is not available in diagram scripts.")

    refuse_call.__name__ = name
    return refuse_call


def guarded_range(*args: Any) -> range:
    numbers = range(*args)
    try:
        length = len(numbers)
    except OverflowError:
        length = sys.maxsize
    if length > MAX_SEQUENCE_LENGTH:
        refuse("a range", length, MAX_SEQUENCE_LENGTH, "numbers")
    return numbers


def guarded_round(number: Any, *args: Any) -> Any:
    if not args:
        check_decimal(number)
    return round(number, *args)


def _digits(function: Callable[[Any], str]) -> Callable[[Any], str]:
    """hex(), bin(), oct(): only of numbers within the size limit."""

    def call(number: Any) -> str:
        if isinstance(number, int):
            check_bits(number.bit_length())
        return function(number)

    call.__name__ = function.__name__
    return call


_BITS_PER_DIGIT = {0: 4.0, 2: 1.0, 8: 3.0, 10: math.log2(10), 16: 4.0}


def guarded_int(value: Any = 0, *args: Any, **kwargs: Any) -> int:
    """int(...): no number beyond the size limit from a Decimal or from digits in any base."""
    check_decimal(value)
    if isinstance(value, (str, bytes)) and len(value) > 64:
        base = args[0] if args else kwargs.get("base", 10)
        per_digit = _BITS_PER_DIGIT.get(base) or math.log2(
            base if isinstance(base, int) and base > 1 else 36
        )
        check_bits(len(value.strip()) * per_digit)
    return int(value, *args, **kwargs)


def guarded_bytes(source: Any = b"", *args: Any) -> bytes:
    if isinstance(source, int):
        check_length(b"", source)
    return bytes(source, *args)


# Called objects that are replaced by a size-checked version (`_baton_call_`); the names stay
# the real types, so that `isinstance(x, int)` works.
_CALL_GUARDS: dict[Any, Callable[..., Any]] = {int: guarded_int, bytes: guarded_bytes}


def guarded_call(function: Any) -> Any:
    """What `function(...)` calls: a size-checked stand-in for the few callables that build
    values from a count or from digits, the function itself otherwise."""
    try:
        return _CALL_GUARDS.get(function, function)
    except TypeError:  # an unhashable callable
        return function


def guarded_map(function: Any, *iterables: Any) -> map:
    """map(int, ...) checks sizes as int(...) does."""
    return map(guarded_call(function), *iterables)


_BUILTINS: dict[str, Any] = {
    **{name: getattr(builtins, name) for name in _PLAIN},
    **{name: _unavailable(name) for name in _REFUSED},
    "None": None,
    "True": True,
    "False": False,
    "__import__": guarded_import,
    "getattr": access.guarded_getattr,
    "hasattr": access.guarded_hasattr,
    "iter": access.guarded_iter,
    "range": guarded_range,
    "map": guarded_map,
    "pow": operators.guarded_pow,
    "round": guarded_round,
    "format": formatting.guarded_format,
    "hex": _digits(hex),
    "bin": _digits(bin),
    "oct": _digits(oct),
}

# The names RestrictedPython's rewritten code calls, and Baton's own rewrites (`policy`).
_GUARDS: dict[str, Any] = {
    "_getattr_": access.guarded_getattr,
    "_getitem_": access.guarded_getitem,
    "_getiter_": access.guarded_iter,
    "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
    "_unpack_sequence_": guarded_unpack_sequence,
    "_write_": access.guarded_write,
    "_inplacevar_": operators.guarded_inplacevar,
    "_apply_": access.guarded_apply,
    "_print_": PrintCollector,
    "_baton_add_": operators.guarded_add,
    "_baton_iadd_": operators.guarded_iadd,
    "_baton_imul_": operators.guarded_imul,
    "_baton_isub_": operator.isub,
    "_baton_mul_": operators.guarded_mul,
    "_baton_pow_": operators.guarded_pow,
    "_baton_lshift_": operators.guarded_lshift,
    "_baton_mod_": operators.guarded_mod,
    "_baton_format_": formatting.guarded_format_value,
    "_baton_fstring_": formatting.guarded_fstring,
    "_baton_call_": guarded_call,
    "_baton_loop_": None,
}


def script_names(helpers: dict[str, Any]) -> dict[str, Any]:
    """The names every script sees without importing anything (the documented helpers)."""
    user = helpers.get("user")
    instance = helpers.get("instance_id")

    def get_current_user() -> dict[str, Any] | None:
        return dict(user) if isinstance(user, dict) else None

    def instance_id() -> str | None:
        return instance if isinstance(instance, str) else None

    return {
        "get_current_user": get_current_user,
        "instance_id": instance_id,
        "baton_url": helpers.get("baton_url") or "",
        "datetime": datetime.datetime,
        "date": datetime.date,
        "timedelta": datetime.timedelta,
        "timezone": datetime.timezone,
        "Decimal": decimal.Decimal,
        "math": MODULES["math"],
        "time": MODULES["time"],
        "uuid": MODULES["uuid"],
        **spiff_names(helpers),
    }


def script_locals(namespace: dict[str, Any], hidden: set[str]) -> Callable[[], dict[str, Any]]:
    """SpiffArena's `locals()`: the script's own variables (what it would leave in the task
    data), not the helpers, guards or builtins of its namespace."""

    def locals() -> dict[str, Any]:
        return {
            name: value
            for name, value in namespace.items()
            if not name.startswith("_")
            and name not in hidden
            and not callable(value)
            and not isinstance(value, types.ModuleType)
        }

    return locals


def run_globals() -> dict[str, Any]:
    """Fresh builtins and guards for one script run."""
    return {"__builtins__": dict(_BUILTINS), **_GUARDS}


def offered_values() -> dict[str, Any]:
    """Everything a script can name without an attribute access: builtins, helpers, guards
    and the importable modules (what the reachability test starts its walk from)."""
    return {
        **_BUILTINS,
        **_GUARDS,
        **script_names({"user": {}, "instance_id": "x"}),
        **kkv_readers({"kkv": {"store": {"a": {"b": 1}}}}),
        "locals": script_locals({}, set()),
        **{f"import {name}": module for name, module in MODULES.items()},
    }
