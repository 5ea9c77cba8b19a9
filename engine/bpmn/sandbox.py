"""The restricted Python that diagram scripts and expressions run in (DESIGN section 8).

This module runs inside a sandbox process (see `sandbox_client`), never in the web process or
a worker: it imports neither Django nor the engine, and the process it runs in has no
database settings, no secrets, a memory limit and a CPU-time limit, and is killed by the
engine when a script outlives its time limit. Inside, three layers:

1. Compilation with RestrictedPython's `compile_restricted` and `BatonPolicy`: no names or
   attributes starting with `_`, no `exec`/`eval`, no class definitions; attribute and item
   access, writes, iteration and unpacking go through guard functions; `+ * ** << %`, their
   augmented forms and f-strings are rewritten into calls that refuse to build huge values.
2. A small set of builtins and an import allow-list of safe stand-ins for `datetime`, `math`,
   `decimal`, `json`, `random`, `statistics` and `string`.
3. A CPU-time deadline checked by a trace function (stops runaway Python loops with a clear
   message), and a size limit on the data a script leaves behind.

The size guards give early, clear errors for the usual ways of building a huge value; the
memory limit and the kill are what actually bound a script that finds another way.
"""
import _string  # type: ignore[import-not-found]
import ast
import contextlib
import datetime
import decimal
import functools
import json
import math
import operator
import os
import random
import re
import resource
import statistics
import string
import struct
import sys
import time
import traceback
import types
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, NoReturn

from RestrictedPython import compile_restricted_eval, compile_restricted_exec
from RestrictedPython.Guards import (
    full_write_guard,
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
)
from RestrictedPython.PrintCollector import PrintCollector
from RestrictedPython.transformer import (
    INSPECT_ATTRIBUTES,
    IOPERATOR_TO_STR,
    RestrictingNodeTransformer,
    copy_locations,
)

from . import sandbox_wire

SCRIPT_FILENAME = "<diagram script>"

# What a script may build. Values are checked where they are made (operators, range, ...)
# and the data a script leaves behind is measured before it leaves the sandbox.
MAX_STRING_LENGTH = 10_000_000  # characters of one str (or bytes of one bytes)
MAX_SEQUENCE_LENGTH = 1_000_000  # items of one list or tuple, numbers in one range()
MAX_INT_BITS = 100_000  # about 30,000 decimal digits
MAX_MODULAR_POW_BITS = 8_192
MAX_FORMAT_WIDTH = 10_000  # width or precision in a format spec
MAX_DECIMAL_DIGITS = 10_000  # digits a Decimal may expand to when formatted or made an int
MAX_RESULT_BYTES = 50_000_000  # approximate JSON size of the data a script leaves
ALLOWED_MODULES = ("datetime", "decimal", "json", "math", "random", "statistics", "string")


# -- errors -------------------------------------------------------------------------------------

class ScriptError(Exception):
    """A diagram script broke a sandbox rule or limit."""


class ScriptNotAllowed(ScriptError):
    """The script uses something diagram scripts may not use."""


class ScriptLimitExceeded(ScriptError):
    """The script would build something too large, or use too much memory."""


class ScriptTimeLimitExceeded(ScriptLimitExceeded):
    """The script ran out of CPU time."""


class _Timeout(BaseException):
    """Raised into the script by the trace function; not an Exception, so `except Exception`
    in a script does not catch it."""

    def __init__(self, line: int | None) -> None:
        super().__init__(line)
        self.line = line


def _limit(what: str, size: int, limit: int, unit: str) -> NoReturn:
    raise ScriptLimitExceeded(
        f"The script would build {what} of {size:,} {unit}; diagram scripts may build at most "
        f"{limit:,}."
    )


# -- compilation --------------------------------------------------------------------------------

_BINOP_GUARDS = {
    ast.Add: "_baton_add_",
    ast.Mult: "_baton_mul_",
    ast.Pow: "_baton_pow_",
    ast.LShift: "_baton_lshift_",
    ast.Mod: "_baton_mod_",
}


_AUGMENTED_GUARDS = {ast.Add: "_baton_iadd_", ast.Mult: "_baton_imul_", ast.Sub: "_baton_isub_"}


def _name(identifier: str) -> ast.Name:
    return ast.Name(identifier, ast.Load())


def _call(function: str, args: list[ast.expr], like: ast.AST) -> ast.Call:
    node = ast.Call(func=_name(function), args=args, keywords=[])
    copy_locations(node, like)  # type: ignore[arg-type]
    return node


class BatonPolicy(RestrictingNodeTransformer):
    """RestrictedPython's policy, plus: size-guarded operators and f-strings, item augmented
    assignment (`d["n"] += 1`) through the guards, a check point in every `while` loop, and no
    class definitions."""

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        node = self.node_contents_visit(node)
        guard = _BINOP_GUARDS.get(type(node.op))
        if guard is None:
            return node
        return _call(guard, [node.left, node.right], node)

    def visit_AugAssign(self, node: ast.AugAssign) -> Any:
        target = node.target
        if isinstance(target, ast.Subscript) and not any(
            isinstance(n, ast.Slice) for n in ast.walk(target.slice)
        ):
            return self._augmented_item(node, target)
        guard = _AUGMENTED_GUARDS.get(type(node.op))
        if isinstance(target, ast.Name) and guard is not None:
            # n += 1  ->  n = _baton_iadd_(n, 1): the common case without a dispatch on "+="
            self.check_name(target, target.id)
            value = self.visit(node.value)
            assign = ast.Assign(
                targets=[ast.Name(target.id, ast.Store())],
                value=_call(guard, [_name(target.id), value], node),
            )
            copy_locations(assign, node)
            return assign
        return super().visit_AugAssign(node)

    def _augmented_item(self, node: ast.AugAssign, target: ast.Subscript) -> list[ast.stmt]:
        # d[k] += v  ->  _t0 = d; _t1 = k; _write_(_t0)[_t1] = _inplacevar_('+=', d[k], v)
        container = self.visit(target.value)
        key = self.visit(target.slice)
        value = self.visit(node.value)
        holder, index = self.gen_tmp_name(), self.gen_tmp_name()
        current = _call("_getitem_", [_name(holder), _name(index)], node)
        combined = _call(
            "_inplacevar_", [ast.Constant(IOPERATOR_TO_STR[type(node.op)]), current, value], node
        )
        store = ast.Subscript(
            value=_call("_write_", [_name(holder)], node), slice=_name(index), ctx=ast.Store()
        )
        statements: list[ast.stmt] = [
            ast.Assign(targets=[ast.Name(holder, ast.Store())], value=container),
            ast.Assign(targets=[ast.Name(index, ast.Store())], value=key),
            ast.Assign(targets=[store], value=combined),
        ]
        for statement in statements:
            copy_locations(statement, node)
        return statements

    def visit_While(self, node: ast.While) -> Any:
        node = self.node_contents_visit(node)
        # `while True: pass` compiles to a jump onto itself, which the trace function never
        # sees; a name lookup at the top of the body gives every iteration a line event.
        tick = ast.Expr(_name("_baton_loop_"))
        copy_locations(tick, node.body[0])
        node.body.insert(0, tick)
        return node

    def visit_JoinedStr(self, node: ast.JoinedStr) -> Any:
        parts: list[ast.expr] = []
        for value in node.values:
            if isinstance(value, ast.FormattedValue):
                spec = (
                    self.visit(value.format_spec) if value.format_spec is not None
                    else ast.Constant("")
                )
                parts.append(_call(
                    "_baton_format_",
                    [self.visit(value.value), ast.Constant(value.conversion), spec], value,
                ))
            else:
                parts.append(self.visit(value))
        return _call("_baton_fstring_", parts, node)

    def visit_ClassDef(self, node: ast.ClassDef) -> Any:
        self.error(node, "Class definitions are not allowed in diagram scripts.")
        return node


def syntax_problem(source: str, mode: str) -> tuple[str, int | None] | None:
    """(message, line) when `source` is not valid Python, else None. Rule violations are not
    reported here: they fail the task when it runs (and open an incident)."""
    compiled = _compile(source, mode)
    if isinstance(compiled, tuple) and compiled[0] == "SyntaxError":
        return compiled[1], compiled[2]
    if isinstance(compiled, tuple):
        # The restricted compiler stopped at a rule; Python's own compiler still has to
        # agree that the rest is valid (e.g. no `return` outside a function).
        try:
            compile(source, SCRIPT_FILENAME, mode, dont_inherit=True)
        except SyntaxError as exc:
            return exc.msg, exc.lineno
        except (ValueError, RecursionError):
            return None
    return None


@functools.lru_cache(maxsize=2048)
def _compile(source: str, mode: str) -> types.CodeType | tuple[str, str, int | None]:
    """The restricted code for `source`, or (error type, message, line) when it cannot run."""
    if mode == "eval":
        source = source.lstrip(" \t")  # as the builtin eval() does
    try:
        tree: ast.Module | ast.Expression = ast.parse(  # type: ignore[assignment]
            source, SCRIPT_FILENAME, mode
        )
    except SyntaxError as exc:
        return ("SyntaxError", exc.msg, exc.lineno)
    compiler = compile_restricted_eval if mode == "eval" else compile_restricted_exec
    try:
        result = compiler(tree, filename=SCRIPT_FILENAME, policy=BatonPolicy)
    except SyntaxError as exc:  # found by Python's compiler after parsing
        return ("SyntaxError", exc.msg, exc.lineno)
    except (ValueError, TypeError, RecursionError) as exc:
        return ("ScriptNotAllowed", f"The script cannot be compiled: {exc}", None)
    if result.errors or result.code is None:
        rules = "; ".join(result.errors) or "it cannot be compiled"
        line = _first_line(result.errors)
        return ("ScriptNotAllowed", f"The script breaks the rules for diagram scripts: {rules}",
                line)
    return result.code


def _first_line(errors: Iterable[str]) -> int | None:
    for error in errors:
        match = re.match(r"Line (\d+):", error)
        if match:
            return int(match.group(1))
    return None


# -- guards: operators ------------------------------------------------------------------------

_SEQUENCE_LIMITS: dict[type, tuple[int, str, str]] = {
    str: (MAX_STRING_LENGTH, "a text", "characters"),
    bytes: (MAX_STRING_LENGTH, "bytes", "bytes"),
    list: (MAX_SEQUENCE_LENGTH, "a list", "items"),
    tuple: (MAX_SEQUENCE_LENGTH, "a tuple", "items"),
}
_SEQUENCES = (str, bytes, list, tuple)


def _sequence_limit(value: Any) -> tuple[int, str, str] | None:
    found = _SEQUENCE_LIMITS.get(type(value))
    if found is None and isinstance(value, _SEQUENCES):
        found = next(v for k, v in _SEQUENCE_LIMITS.items() if isinstance(value, k))
    return found


def _check_length(sample: Any, length: int) -> None:
    found = _sequence_limit(sample)
    if found is not None and length > found[0]:
        _limit(found[1], length, found[0], found[2])


def _check_bits(bits: float) -> None:
    if bits > MAX_INT_BITS:
        raise ScriptLimitExceeded(
            f"The script would build a number of about {int(bits):,} bits; diagram scripts may "
            f"build numbers of at most {MAX_INT_BITS:,} bits."
        )


def guarded_add(a: Any, b: Any) -> Any:
    if isinstance(a, _SEQUENCES) and isinstance(b, _SEQUENCES):
        _check_length(a, len(a) + len(b))
    return a + b


def guarded_mul(a: Any, b: Any) -> Any:
    if isinstance(a, int):
        if isinstance(b, int):
            if a.bit_length() + b.bit_length() > 64:
                _check_bits(a.bit_length() + b.bit_length())
        elif isinstance(b, _SEQUENCES):
            _check_length(b, len(b) * a)
    elif isinstance(b, int) and isinstance(a, _SEQUENCES):
        _check_length(a, len(a) * b)
    return a * b


def guarded_pow(a: Any, b: Any, modulo: Any = None) -> Any:
    if isinstance(a, int) and isinstance(b, int):
        if modulo is not None:
            if isinstance(modulo, int) and max(
                b.bit_length(), modulo.bit_length()
            ) > MAX_MODULAR_POW_BITS:
                _check_bits(max(b.bit_length(), modulo.bit_length()) * MAX_INT_BITS)
        elif b > 0 and abs(a) > 1:
            _check_bits(math.log2(abs(a)) * b)
    if modulo is None:
        return a ** b
    return pow(a, b, modulo)


def guarded_lshift(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int) and b > 0 and a:
        _check_bits(a.bit_length() + b)
    return a << b


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")


def _check_percent_format(template: str | bytes) -> None:
    text = template if isinstance(template, str) else template.decode("latin-1")
    widest = 0
    count = 0
    for width, precision in _PERCENT_SPEC.findall(text):
        if width == "*" or precision == "*":
            raise ScriptNotAllowed("'*' widths in %-formatting are not allowed in diagram scripts.")
        widest = max(widest, int(width or 0), int(precision or 0))
        count += 1
    if widest > MAX_FORMAT_WIDTH:
        _limit("a formatted field", widest, MAX_FORMAT_WIDTH, "characters")
    _check_length(text, len(text) + count * widest)


def guarded_mod(a: Any, b: Any) -> Any:
    if isinstance(a, (str, bytes)):
        _check_percent_format(a)
    return a % b


def guarded_iadd(a: Any, b: Any) -> Any:
    """`a += b`: a list grows in place (check first); other values as `+` does."""
    if isinstance(a, _SEQUENCES):
        if isinstance(a, list) and not hasattr(b, "__len__"):
            b = list(b)
        if isinstance(b, _SEQUENCES) or isinstance(a, list):
            _check_length(a, len(a) + len(b))
    a += b
    return a


def guarded_imul(a: Any, b: Any) -> Any:
    if isinstance(a, list) and isinstance(b, int):
        _check_length(a, len(a) * b)
        a *= b
        return a
    return guarded_mul(a, b)


_IN_PLACE: dict[str, Callable[[Any, Any], Any]] = {
    "+=": guarded_iadd,
    "*=": guarded_imul,
    "**=": guarded_pow,
    "<<=": guarded_lshift,
    "%=": guarded_mod,
    "-=": operator.isub,
    "/=": operator.itruediv,
    "//=": operator.ifloordiv,
    ">>=": operator.irshift,
    "|=": operator.ior,
    "^=": operator.ixor,
    "&=": operator.iand,
    "@=": operator.imatmul,
}


def guarded_inplacevar(op: str, target: Any, value: Any) -> Any:
    try:
        function = _IN_PLACE[op]
    except KeyError:
        raise ScriptNotAllowed(f"The operator {op} is not allowed in diagram scripts.") from None
    return function(target, value)


# -- guards: formatting -----------------------------------------------------------------------

_FORMAT_SPEC = re.compile(r"^(?:.?[<>=^])?[-+ ]?z?#?0?(\d*)[,_]?(?:\.(\d+))?[A-Za-z%]?$", re.S)


def _check_format_spec(value: Any, spec: str) -> None:
    if not spec:
        return
    match = _FORMAT_SPEC.match(spec)
    if match:
        widest = max(int(match.group(1) or 0), int(match.group(2) or 0))
        if widest > MAX_FORMAT_WIDTH:
            _limit("a formatted field", widest, MAX_FORMAT_WIDTH, "characters")
    if isinstance(value, decimal.Decimal) and value.is_finite() and value:
        _check_decimal_size(value)


def _check_decimal_size(value: decimal.Decimal) -> None:
    if abs(value.adjusted()) > MAX_DECIMAL_DIGITS:
        raise ScriptLimitExceeded(
            f"The decimal {value} would expand to more than {MAX_DECIMAL_DIGITS:,} digits."
        )


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
    _check_format_spec(value, spec)
    return format(value, spec)


def guarded_fstring(*parts: str) -> str:
    _check_length("", sum(len(part) for part in parts))
    return "".join(parts)


def guarded_format(value: Any, spec: str = "") -> str:
    _check_format_spec(value, spec)
    return format(value, spec)


class _SafeFormatter(string.Formatter):
    """`str.format` with guarded attribute and item access in fields (`{0.__class__}` is
    refused) and a cap on field widths and the total length."""

    def __init__(self) -> None:
        self.length = 0

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> tuple[Any, Any]:
        first, rest = _string.formatter_field_name_split(field_name)
        obj = self.get_value(first, args, kwargs)
        for is_attribute, index in rest:
            obj = guarded_getattr(obj, index) if is_attribute else guarded_getitem(obj, index)
        return obj, first

    def format_field(self, value: Any, format_spec: str) -> Any:
        _check_format_spec(value, format_spec)
        text = format(value, format_spec)
        self.length += len(text)
        _check_length("", self.length)
        return text


def _str_format(template: str) -> Callable[..., str]:
    def format(*args: Any, **kwargs: Any) -> str:
        return _SafeFormatter().vformat(template, args, kwargs)
    return format


def _str_format_map(template: str) -> Callable[[Any], str]:
    def format_map(mapping: Any) -> str:
        return _SafeFormatter().vformat(template, (), mapping)
    return format_map


def _unbound_str_format(template: str, *args: Any, **kwargs: Any) -> str:
    return _str_format(template)(*args, **kwargs)


def _unbound_str_format_map(template: str, mapping: Any) -> str:
    return _str_format_map(template)(mapping)


def _guarded_join(separator: Any) -> Callable[[Iterable[Any]], Any]:
    def join(iterable: Iterable[Any]) -> Any:
        items = list(iterable)
        total = len(separator) * max(len(items) - 1, 0)
        total += sum(len(item) for item in items if isinstance(item, (str, bytes)))
        _check_length(separator, total)
        return separator.join(items)
    return join


def _unbound_join(separator: Any, iterable: Iterable[Any]) -> Any:
    return _guarded_join(separator)(iterable)


def _guarded_width(text: Any, method: str) -> Callable[..., Any]:
    bound = getattr(text, method)

    def pad(width: Any, *args: Any) -> Any:
        if isinstance(width, int):
            _check_length(text, width)
        return bound(width, *args)
    return pad


def _guarded_expandtabs(text: Any) -> Callable[..., Any]:
    def expandtabs(tabsize: int = 8) -> Any:
        tab = "\t" if isinstance(text, str) else b"\t"
        _check_length(text, len(text) + text.count(tab) * max(tabsize, 0))
        return text.expandtabs(tabsize)
    return expandtabs


def _guarded_replace(text: Any) -> Callable[..., Any]:
    def replace(old: Any, new: Any, count: int = -1) -> Any:
        if len(new) > len(old):
            found = text.count(old) if old else len(text) + 1
            if count >= 0:
                found = min(found, count)
            _check_length(text, len(text) + found * (len(new) - len(old)))
        return text.replace(old, new, count)
    return replace


def _guarded_extend(target: list[Any]) -> Callable[[Iterable[Any]], None]:
    def extend(iterable: Iterable[Any]) -> None:
        items = iterable if isinstance(iterable, (list, tuple)) else list(iterable)
        _check_length(target, len(target) + len(items))
        target.extend(items)
    return extend


def _guarded_to_bytes(number: int) -> Callable[..., bytes]:
    def to_bytes(length: int = 1, byteorder: Any = "big", **kwargs: Any) -> bytes:
        _check_length(b"", length)
        return number.to_bytes(length, byteorder, **kwargs)
    return to_bytes


_TEXT_METHODS: dict[str, Callable[[Any], Any]] = {
    "join": _guarded_join,
    "ljust": lambda text: _guarded_width(text, "ljust"),
    "rjust": lambda text: _guarded_width(text, "rjust"),
    "center": lambda text: _guarded_width(text, "center"),
    "zfill": lambda text: _guarded_width(text, "zfill"),
    "expandtabs": _guarded_expandtabs,
    "replace": _guarded_replace,
}


# -- guards: access -----------------------------------------------------------------------------

# Attributes that lead from an object to the interpreter's internals without a leading "_".
_FORBIDDEN_ATTRIBUTES = INSPECT_ATTRIBUTES | {"mro", "func_globals", "func_code"}
_MISSING = object()


def _special_attribute(obj: Any, name: str) -> Any:
    if isinstance(obj, str):
        if name == "format":
            return _str_format(obj)
        if name == "format_map":
            return _str_format_map(obj)
    if isinstance(obj, (str, bytes)) and name in _TEXT_METHODS:
        return _TEXT_METHODS[name](obj)
    if obj is str or obj is bytes:
        if name == "format" and obj is str:
            return _unbound_str_format
        if name == "format_map" and obj is str:
            return _unbound_str_format_map
        if name == "join":
            return _unbound_join
    if isinstance(obj, list) and name == "extend":
        return _guarded_extend(obj)
    if isinstance(obj, int) and not isinstance(obj, bool) and name == "to_bytes":
        return _guarded_to_bytes(obj)
    if isinstance(obj, decimal.Decimal) and name == "as_integer_ratio" and obj.is_finite():
        _check_decimal_size(obj)
    return _MISSING


def guarded_getattr(obj: Any, name: Any, default: Any = _MISSING) -> Any:
    """`obj.name` for scripts: no names starting with "_", nothing that reaches frames, code or
    globals, and size-checked stand-ins for methods that can build huge values."""
    if type(name) is not str:
        raise TypeError("an attribute name must be a string")
    if name.startswith("_") or name in _FORBIDDEN_ATTRIBUTES:
        raise ScriptNotAllowed(
            f"Access to the attribute {name!r} is not allowed in diagram scripts."
        )
    special = _special_attribute(obj, name)
    if special is not _MISSING:
        return special
    if default is _MISSING:
        return getattr(obj, name)
    return getattr(obj, name, default)


def guarded_hasattr(obj: Any, name: Any) -> bool:
    try:
        guarded_getattr(obj, name)
    except AttributeError:
        return False
    return True


def guarded_getitem(obj: Any, key: Any) -> Any:
    return obj[key]


def guarded_iter(obj: Any, *sentinel: Any) -> Iterator[Any]:
    if sentinel:
        raise ScriptNotAllowed("iter(callable, sentinel) is not allowed in diagram scripts.")
    return iter(obj)


def guarded_apply(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return function(*args, **kwargs)


def guarded_range(*args: Any) -> range:
    numbers = range(*args)
    try:
        length = len(numbers)
    except OverflowError:
        length = sys.maxsize
    if length > MAX_SEQUENCE_LENGTH:
        _limit("a range", length, MAX_SEQUENCE_LENGTH, "numbers")
    return numbers


def guarded_round(number: Any, *args: Any) -> Any:
    if isinstance(number, decimal.Decimal) and not args and number.is_finite():
        _check_decimal_size(number)
    return round(number, *args)


# -- modules a script may import ----------------------------------------------------------------

def _module(name: str, attributes: dict[str, Any]) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    return module


def _to_integer(function: Callable[[Any], int]) -> Callable[[Any], int]:
    @functools.wraps(function)
    def call(value: Any) -> int:
        if isinstance(value, decimal.Decimal) and value.is_finite():
            _check_decimal_size(value)
        return function(value)
    return call


def _log2_factorial(n: int) -> float:
    return math.lgamma(n + 1) / math.log(2) if n > 1 else 0.0


def _factorial(n: Any) -> int:
    if isinstance(n, int) and n > 1:
        _check_bits(n * math.log2(n) if n > 10**7 else _log2_factorial(n))
    return math.factorial(n)


def _comb(n: Any, k: Any) -> int:
    if isinstance(n, int) and isinstance(k, int) and 0 <= k <= n:
        if n > 10**9:
            _check_bits(k * math.log2(n))
        else:
            _check_bits(_log2_factorial(n) - _log2_factorial(k) - _log2_factorial(n - k))
    return math.comb(n, k)


def _perm(n: Any, k: Any = None) -> int:
    if isinstance(n, int) and (k is None or isinstance(k, int)):
        k = n if k is None else k
        if 0 <= k <= n:
            if n > 10**9:
                _check_bits(k * math.log2(n))
            else:
                _check_bits(_log2_factorial(n) - _log2_factorial(n - k))
    return math.perm(n, k)


def _prod(iterable: Iterable[Any], *, start: Any = 1) -> Any:
    result = start
    for item in iterable:
        result = guarded_mul(result, item)
    return result


def _lcm(*integers: int) -> int:
    bits = sum(abs(i).bit_length() for i in integers if isinstance(i, int))
    _check_bits(bits)
    return math.lcm(*integers)


def _math_module() -> types.ModuleType:
    names = {n: getattr(math, n) for n in dir(math) if not n.startswith("_")}
    names.update({
        "factorial": _factorial, "comb": _comb, "perm": _perm, "prod": _prod, "lcm": _lcm,
        "floor": _to_integer(math.floor), "ceil": _to_integer(math.ceil),
        "trunc": _to_integer(math.trunc),
    })
    return _module("math", names)


def _json_dumps(obj: Any, *, skipkeys: bool = False, ensure_ascii: bool = True,
                allow_nan: bool = True, indent: Any = None, separators: Any = None,
                default: Any = None, sort_keys: bool = False) -> str:
    if (isinstance(indent, int) and indent > 16) or (isinstance(indent, str) and len(indent) > 16):
        raise ScriptLimitExceeded("json.dumps indent may be at most 16 in diagram scripts.")
    text = json.dumps(
        obj, skipkeys=skipkeys, ensure_ascii=ensure_ascii, allow_nan=allow_nan, indent=indent,
        separators=separators, default=default, sort_keys=sort_keys,
    )
    _check_length(text, len(text))
    return text


def _json_loads(text: Any) -> Any:
    return json.loads(text)


# Scripts share one generator per sandbox process, apart from the host's global one.
_RANDOM = random.Random()


def _random_choices(population: Any, weights: Any = None, *, cum_weights: Any = None,
                    k: int = 1) -> list[Any]:
    _check_length([], k)
    return _RANDOM.choices(population, weights, cum_weights=cum_weights, k=k)


def _random_getrandbits(k: int) -> int:
    _check_bits(k)
    return _RANDOM.getrandbits(k)


def _random_randbytes(n: int) -> bytes:
    _check_length(b"", n)
    return _RANDOM.randbytes(n)


def _random_module() -> types.ModuleType:
    names = {
        n: getattr(_RANDOM, n) for n in (
            "betavariate", "choice", "expovariate", "gammavariate", "gauss", "lognormvariate",
            "normalvariate", "paretovariate", "randint", "random", "randrange", "sample",
            "seed", "shuffle", "triangular", "uniform", "vonmisesvariate", "weibullvariate",
        )
    }
    names.update({
        "choices": _random_choices, "getrandbits": _random_getrandbits,
        "randbytes": _random_randbytes,
    })
    return _module("random", names)


def _safe_modules() -> dict[str, types.ModuleType]:
    return {
        "datetime": _module("datetime", {
            "date": datetime.date, "datetime": datetime.datetime, "time": datetime.time,
            "timedelta": datetime.timedelta, "timezone": datetime.timezone,
            "tzinfo": datetime.tzinfo, "MINYEAR": datetime.MINYEAR,
            "MAXYEAR": datetime.MAXYEAR,
        }),
        "decimal": _module("decimal", {
            "Decimal": decimal.Decimal, "InvalidOperation": decimal.InvalidOperation,
            "DivisionByZero": decimal.DivisionByZero, "Overflow": decimal.Overflow,
            **{n: getattr(decimal, n) for n in dir(decimal) if n.startswith("ROUND_")},
        }),
        "json": _module("json", {
            "dumps": _json_dumps, "loads": _json_loads, "JSONDecodeError": json.JSONDecodeError,
        }),
        "math": _math_module(),
        "random": _random_module(),
        "statistics": _module("statistics", {
            n: getattr(statistics, n) for n in (
                "mean", "fmean", "geometric_mean", "harmonic_mean", "median", "median_low",
                "median_high", "median_grouped", "mode", "multimode", "quantiles", "pstdev",
                "pvariance", "stdev", "variance", "correlation", "covariance",
                "linear_regression", "NormalDist", "StatisticsError",
            )
        }),
        "string": _module("string", {
            n: getattr(string, n) for n in (
                "ascii_letters", "ascii_lowercase", "ascii_uppercase", "digits", "hexdigits",
                "octdigits", "punctuation", "printable", "whitespace", "capwords", "Template",
            )
        }),
    }


SAFE_MODULES = _safe_modules()


def guarded_import(name: str, globals: Any = None, locals: Any = None,
                   fromlist: Any = (), level: int = 0) -> types.ModuleType:
    if level == 0 and name in SAFE_MODULES:
        return SAFE_MODULES[name]
    raise ScriptNotAllowed(
        f"Importing {name!r} is not allowed in diagram scripts; the modules a script may "
        f"import are {', '.join(ALLOWED_MODULES)}."
    )


# -- builtins -----------------------------------------------------------------------------------

def _unavailable(name: str) -> Callable[..., NoReturn]:
    def refuse(*args: Any, **kwargs: Any) -> NoReturn:
        raise ScriptNotAllowed(f"{name}() is not available in diagram scripts.")
    refuse.__name__ = name
    return refuse


_PLAIN_BUILTINS = (
    "abs", "all", "any", "ascii", "bin", "bool", "bytes", "callable", "chr", "complex", "dict",
    "divmod", "enumerate", "filter", "float", "frozenset", "hash", "hex", "id", "int",
    "isinstance", "issubclass", "len", "list", "map", "max", "min", "next", "oct", "ord",
    "repr", "reversed", "set", "slice", "sorted", "str", "sum", "tuple", "zip",
    "ArithmeticError", "AssertionError", "AttributeError", "Exception", "ImportError",
    "IndexError", "KeyError", "LookupError", "NameError", "NotImplementedError",
    "OverflowError", "RecursionError", "RuntimeError", "StopIteration", "TypeError",
    "UnicodeError", "ValueError", "ZeroDivisionError",
)
_REFUSED_BUILTINS = (
    "breakpoint", "bytearray", "classmethod", "compile", "delattr", "dir", "eval", "exec",
    "exit", "globals", "help", "input", "locals", "memoryview", "object", "open", "property",
    "quit", "setattr", "staticmethod", "super", "type", "vars",
)


def _builtins() -> dict[str, Any]:
    import builtins

    names: dict[str, Any] = {name: getattr(builtins, name) for name in _PLAIN_BUILTINS}
    names.update({name: _unavailable(name) for name in _REFUSED_BUILTINS})
    names.update({
        "None": None, "True": True, "False": False,
        "__import__": guarded_import,
        "getattr": guarded_getattr,
        "hasattr": guarded_hasattr,
        "iter": guarded_iter,
        "range": guarded_range,
        "pow": guarded_pow,
        "round": guarded_round,
        "format": guarded_format,
    })
    return names


SAFE_BUILTINS = _builtins()

# The names RestrictedPython's rewritten code calls, and Baton's own rewrites.
GUARDS: dict[str, Any] = {
    "__builtins__": SAFE_BUILTINS,
    "_getattr_": guarded_getattr,
    "_getitem_": guarded_getitem,
    "_getiter_": guarded_iter,
    "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
    "_unpack_sequence_": guarded_unpack_sequence,
    "_write_": full_write_guard,
    "_inplacevar_": guarded_inplacevar,
    "_apply_": guarded_apply,
    "_print_": PrintCollector,
    "_baton_add_": guarded_add,
    "_baton_iadd_": guarded_iadd,
    "_baton_imul_": guarded_imul,
    "_baton_isub_": operator.isub,
    "_baton_mul_": guarded_mul,
    "_baton_pow_": guarded_pow,
    "_baton_lshift_": guarded_lshift,
    "_baton_mod_": guarded_mod,
    "_baton_format_": guarded_format_value,
    "_baton_fstring_": guarded_fstring,
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
        "math": SAFE_MODULES["math"],
    }


# -- the time limit ------------------------------------------------------------------------------

# Pure-Python library code a script may call into is stopped as well; guards are not traced.
_TRACED_FILES = frozenset({SCRIPT_FILENAME} | {
    getattr(module, "__file__", "") or "" for module in (statistics, random, string, json)
} | {getattr(sys.modules.get(n), "__file__", "") or "" for n in ("json.encoder", "json.decoder",
                                                                  "fractions", "numbers")})


def run_limited(function: Callable[[], Any], seconds: float) -> Any:
    """Call `function` (which runs script code) with a CPU-time deadline.

    A trace function counts the lines the script executes and, every 64 of them, compares
    this thread's CPU time with the deadline. A script stuck inside one long C call cannot
    be stopped this way; the engine kills the whole sandbox process for that.
    """
    deadline = time.thread_time() + seconds
    counter = 0

    def trace_lines(frame: types.FrameType, event: str, arg: Any) -> Any:
        nonlocal counter
        counter += 1
        if not counter & 63 and time.thread_time() > deadline:
            raise _Timeout(frame.f_lineno if frame.f_code.co_filename == SCRIPT_FILENAME else None)
        return trace_lines

    def trace_calls(frame: types.FrameType, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename in _TRACED_FILES:
            return trace_lines(frame, event, arg)
        return None

    previous = sys.gettrace()
    sys.settrace(trace_calls)
    try:
        return function()
    except _Timeout as stop:
        error = ScriptTimeLimitExceeded(
            f"The script ran longer than its time limit of {seconds:g} s and was stopped"
            + (f" at line {stop.line}." if stop.line else ".")
        )
        error.line = stop.line  # type: ignore[attr-defined]
        raise error from None
    finally:
        sys.settrace(previous)


# -- running one request -------------------------------------------------------------------------

def _script_line(tb: types.TracebackType | None) -> int | None:
    line = None
    for frame, lineno in traceback.walk_tb(tb):
        if frame.f_code.co_filename == SCRIPT_FILENAME:
            line = lineno
    return line


def _keep(name: str, value: Any, reserved: set[str]) -> bool:
    """What TaskDataEnvironment keeps in task data after a script: not the helpers, not the
    external names, no functions; here also no modules and no sandbox machinery."""
    if name.startswith("_") or name in reserved:
        return False
    return not (callable(value) or isinstance(value, types.ModuleType))


def run_request(request: dict[str, Any]) -> dict[str, Any]:
    """Run one script ("exec") or expression ("eval"); the answer carries the new task data
    or the expression's value."""
    mode = request["mode"]
    compiled = _compile(request["source"], mode)
    if isinstance(compiled, tuple):
        kind, message, line = compiled
        if kind == "SyntaxError":
            message = f"invalid Python: {message}"
        return {"ok": False, "type": kind, "message": message, "args": [message], "line": line}
    context: dict[str, Any] = request.get("context") or {}
    external: dict[str, Any] = request.get("external") or {}
    names = script_names(request.get("helpers") or {})
    seconds = float(request.get("time_limit") or 2.0)
    namespace: dict[str, Any]
    if mode == "eval":
        namespace = {**names, **external, **context, **GUARDS}
        value = run_limited(lambda: eval(compiled, namespace), seconds)  # noqa: S307
        return {"ok": True, "value": value}
    namespace = {**context, **names, **external, **GUARDS}
    run_limited(lambda: exec(compiled, namespace), seconds)  # noqa: S102
    reserved = set(names) | set(external)
    return {"ok": True, "context": {k: v for k, v in namespace.items() if _keep(k, v, reserved)}}


def _error(exc: BaseException, *, line: int | None = None) -> dict[str, Any]:
    args = [a for a in exc.args if isinstance(a, (str, int, float))]
    return {
        "ok": False, "type": type(exc).__name__, "message": str(exc),
        "args": args if len(args) == len(exc.args) else [str(exc)],
        "line": line if line is not None else (
            getattr(exc, "line", None) or _script_line(exc.__traceback__)
        ),
    }


def answer(request: dict[str, Any]) -> tuple[bytes, bool]:
    """The encoded answer to one request, and whether this process should exit after it."""
    try:
        response = run_request(request)
    except MemoryError:
        return sandbox_wire.encode({
            "ok": False, "type": "ScriptLimitExceeded", "restart": True,
            "message": "The script ran out of memory; diagram scripts may use at most "
            f"{_memory_limit_mb()} MB.",
        }, MAX_RESULT_BYTES), True
    except RecursionError as exc:
        response = _error(exc)
    except Exception as exc:
        response = _error(exc)
    try:
        return sandbox_wire.encode(response, MAX_RESULT_BYTES), False
    except sandbox_wire.Unsupported as exc:
        where = "returned" if "value" in response else "left in the process data"
        offender = _unsupported_name(response)
        return sandbox_wire.encode({
            "ok": False, "type": "ScriptError",
            "message": f"The script {where} {exc} ({offender}), which cannot be kept in the "
            "process data; use numbers, text, lists, dicts, dates or decimals.",
        }, MAX_RESULT_BYTES), False
    except sandbox_wire.TooLarge as exc:
        return sandbox_wire.encode({
            "ok": False, "type": "ScriptLimitExceeded",
            "message": f"The script built too much data: {exc}; the limit is about "
            f"{MAX_RESULT_BYTES // 1_000_000} MB.",
        }, MAX_RESULT_BYTES), False


def _unsupported_name(response: dict[str, Any]) -> str:
    if "value" in response:
        return "the expression's value"
    for name, value in (response.get("context") or {}).items():
        try:
            sandbox_wire.encode(value, MAX_RESULT_BYTES)
        except sandbox_wire.Unsupported:
            return f"variable {name!r}"
        except sandbox_wire.WireError:
            continue
    return "a variable"


# -- the sandbox process ---------------------------------------------------------------------------

_MEMORY_LIMIT_MB = 512


def _memory_limit_mb() -> int:
    return _MEMORY_LIMIT_MB


def _set_limit(which: int, soft: int) -> None:
    with contextlib.suppress(ValueError, OSError):
        _, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(which, (soft, hard))


def _cpu_seconds_used() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def read_message(stream: IO[bytes]) -> bytes | None:
    header = _read_exactly(stream, 8)
    if header is None:
        return None
    (length,) = struct.unpack(">Q", header)
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


def frame_message(payload: bytes) -> bytes:
    return struct.pack(">Q", len(payload)) + payload


def main(argv: list[str]) -> None:
    """Serve requests on stdin/stdout until stdin closes (the engine went away)."""
    global _MEMORY_LIMIT_MB
    _MEMORY_LIMIT_MB = int(argv[0]) if argv else _MEMORY_LIMIT_MB
    requests = os.fdopen(0, "rb", buffering=0)
    answers = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # anything printed by accident must not corrupt the answers
    _set_limit(resource.RLIMIT_CORE, 0)
    _set_limit(resource.RLIMIT_NPROC, 0)  # no child processes
    _set_limit(resource.RLIMIT_AS, _MEMORY_LIMIT_MB * 1024 * 1024)
    answers.write(frame_message(b'"ready"'))
    while True:
        message = read_message(requests)
        if message is None:
            return
        request = sandbox_wire.decode(message)
        # A backstop for a script that defeats the trace function while the engine is gone.
        seconds = float(request.get("time_limit") or 2.0)
        _set_limit(resource.RLIMIT_CPU, int(_cpu_seconds_used() + 2 * seconds + 5))
        payload, stop = answer(request)
        answers.write(frame_message(payload))
        if stop:
            return


if __name__ == "__main__":  # pragma: no cover - started by sandbox_client
    main(sys.argv[1:])
