"""What `obj.name`, `obj[key]` and `iter(obj)` mean in a diagram script.

Refused, whatever the object: names starting with "_", the attributes that lead to frames,
code and globals (RestrictedPython's list and more), every attribute of a module, a frame, a
code object, a traceback, a generator, a coroutine or an async generator, and any attribute
whose value is one of those. Methods that can build huge values (`join`, `ljust`, `replace`,
`to_bytes`, `from_bytes`, `hex`, `str.format`, ...) are handed out as size-checked stand-ins.
"""

import decimal
import statistics
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from RestrictedPython.transformer import INSPECT_ATTRIBUTES

from .allowed import RunRandom
from .errors import ScriptNotAllowed
from .formatting import SafeFormatter
from .limits import MAX_SEQUENCE_LENGTH, check_bits, check_decimal, check_length, refuse

FORBIDDEN_ATTRIBUTES = INSPECT_ATTRIBUTES | {
    "mro",
    "func_globals",
    "func_code",
    "func_closure",
    "func_defaults",
    "gi_frame",
    "gi_code",
    "gi_yieldfrom",
    "gi_running",
    "gi_suspended",
    "cr_frame",
    "cr_code",
    "cr_await",
    "cr_origin",
    "cr_running",
    "cr_suspended",
    "ag_frame",
    "ag_code",
    "ag_await",
    "ag_running",
    "tb_frame",
    "tb_next",
    "f_back",
    "f_builtins",
    "f_code",
    "f_globals",
    "f_locals",
    "f_trace",
}
# Objects whose attributes are the interpreter's internals; none of them is ever handed out.
INTERNAL_TYPES: tuple[type, ...] = (
    types.ModuleType,
    types.FrameType,
    types.CodeType,
    types.TracebackType,
    types.CellType,
    types.GeneratorType,
    types.CoroutineType,
    types.AsyncGeneratorType,
)
_MISSING = object()


def _refuse_attribute(name: str, why: str = "") -> ScriptNotAllowed:
    return ScriptNotAllowed(
        f"Access to the attribute {name!r}{why} is not allowed in diagram scripts."
    )


def guarded_getattr(obj: Any, name: Any, default: Any = _MISSING) -> Any:
    """`obj.name` for scripts (see the module's docstring)."""
    if type(name) is not str:
        raise TypeError("an attribute name must be a string")
    if name.startswith("_") or name in FORBIDDEN_ATTRIBUTES:
        raise _refuse_attribute(name)
    if isinstance(obj, INTERNAL_TYPES):
        raise _refuse_attribute(name, f" of a {type(obj).__name__}")
    special = _special_attribute(obj, name)
    if special is not _MISSING:
        return special
    value = getattr(obj, name) if default is _MISSING else getattr(obj, name, default)
    if isinstance(value, INTERNAL_TYPES):
        raise _refuse_attribute(name, f" (a {type(value).__name__})")
    return value


def guarded_hasattr(obj: Any, name: Any) -> bool:
    try:
        guarded_getattr(obj, name)
    except AttributeError:
        return False
    return True


def guarded_getitem(obj: Any, key: Any) -> Any:
    if isinstance(obj, INTERNAL_TYPES):
        raise ScriptNotAllowed(
            f"Items of a {type(obj).__name__} are not available in diagram scripts."
        )
    return obj[key]


def guarded_iter(obj: Any, *sentinel: Any) -> Iterator[Any]:
    if sentinel:
        raise ScriptNotAllowed("iter(callable, sentinel) is not allowed in diagram scripts.")
    return iter(obj)


def guarded_write(obj: Any) -> Any:
    """What a script may change in place (`obj[k] = v`, `obj.a = v`, `del obj[k]`): its own
    dicts and lists, nothing else (no module, class, function or other object)."""
    if isinstance(obj, dict | list):
        return obj
    what = (
        "a class"
        if isinstance(obj, type)
        else repr(obj)
        if _is_module(obj)
        else (f"a {type(obj).__name__}")
    )
    raise ScriptNotAllowed(
        f"Diagram scripts cannot change {what}; they can change only their own dicts and lists."
    )


def _is_module(obj: Any) -> bool:
    return type(obj).__name__ == "Namespace" or isinstance(obj, types.ModuleType)


def guarded_apply(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return function(*args, **kwargs)


# -- size-checked stand-ins for methods -------------------------------------------------------


def _str_format(template: str) -> Callable[..., str]:
    def format(*args: Any, **kwargs: Any) -> str:
        return SafeFormatter(guarded_getattr, guarded_getitem).vformat(template, args, kwargs)

    return format


def _str_format_map(template: str) -> Callable[[Any], str]:
    def format_map(mapping: Any) -> str:
        return SafeFormatter(guarded_getattr, guarded_getitem).vformat(template, (), mapping)

    return format_map


def _join(separator: Any) -> Callable[[Iterable[Any]], Any]:
    def join(iterable: Iterable[Any]) -> Any:
        items = list(iterable)
        total = len(separator) * max(len(items) - 1, 0)
        total += sum(len(item) for item in items if isinstance(item, (str, bytes)))
        check_length(separator, total)
        return separator.join(items)

    return join


def _padding(method: str) -> Callable[[Any], Callable[..., Any]]:
    def bind(text: Any) -> Callable[..., Any]:
        bound = getattr(text, method)

        def pad(width: Any, *args: Any) -> Any:
            if isinstance(width, int):
                check_length(text, width)
            return bound(width, *args)

        return pad

    return bind


def _expandtabs(text: Any) -> Callable[..., Any]:
    def expandtabs(tabsize: int = 8) -> Any:
        tab = "\t" if isinstance(text, str) else b"\t"
        check_length(text, len(text) + text.count(tab) * max(tabsize, 0))
        return text.expandtabs(tabsize)

    return expandtabs


def _replace(text: Any) -> Callable[..., Any]:
    def replace(old: Any, new: Any, count: int = -1) -> Any:
        if len(new) > len(old):
            found = text.count(old) if old else len(text) + 1
            if count >= 0:
                found = min(found, count)
            check_length(text, len(text) + found * (len(new) - len(old)))
        return text.replace(old, new, count)

    return replace


def _translate(text: Any) -> Callable[..., Any]:
    def translate(table: Any, *args: Any) -> Any:
        if isinstance(table, dict) and table:
            longest = max((len(v) for v in table.values() if isinstance(v, str)), default=1)
            check_length(text, len(text) * longest)
        return text.translate(table, *args)

    return translate


def _hex(data: Any) -> Callable[..., str]:
    def hex(*args: Any) -> str:
        check_length("", len(data) * 3)
        return str(data.hex(*args))

    return hex


def _extend(target: list[Any]) -> Callable[[Iterable[Any]], None]:
    def extend(iterable: Iterable[Any]) -> None:
        items = iterable if isinstance(iterable, (list, tuple)) else list(iterable)
        check_length(target, len(target) + len(items))
        target.extend(items)

    return extend


def _to_bytes(number: int) -> Callable[..., bytes]:
    def to_bytes(length: int = 1, byteorder: Any = "big", **kwargs: Any) -> bytes:
        check_length(b"", length)
        return number.to_bytes(length, byteorder, **kwargs)

    return to_bytes


def int_from_bytes(data: Any, byteorder: Any = "big", **kwargs: Any) -> int:
    if isinstance(data, (bytes, list, tuple)):
        check_bits(len(data) * 8)
    return int.from_bytes(data, byteorder, **kwargs)


def _samples(distribution: statistics.NormalDist) -> Callable[..., list[float]]:
    def samples(n: int, *, seed: Any = None) -> list[float]:
        if isinstance(n, int) and n > MAX_SEQUENCE_LENGTH:
            refuse("a list", n, MAX_SEQUENCE_LENGTH, "items")
        if seed is None:  # not the process-wide generator: this run's own
            seed = RunRandom.generator().getrandbits(64)
        return distribution.samples(n, seed=seed)

    return samples


# name -> factory taking the object the method is bound to.
_TEXT_METHODS: dict[str, Callable[[Any], Any]] = {
    "join": _join,
    "ljust": _padding("ljust"),
    "rjust": _padding("rjust"),
    "center": _padding("center"),
    "zfill": _padding("zfill"),
    "expandtabs": _expandtabs,
    "replace": _replace,
    "translate": _translate,
}
_STR_METHODS: dict[str, Callable[[Any], Any]] = {
    **_TEXT_METHODS,
    "format": _str_format,
    "format_map": _str_format_map,
}
_BYTES_METHODS: dict[str, Callable[[Any], Any]] = {**_TEXT_METHODS, "hex": _hex}
# (type, name) -> factory, for the methods of the types scripts use most.
_METHODS: dict[type, dict[str, Callable[[Any], Any]]] = {
    str: _STR_METHODS,
    bytes: _BYTES_METHODS,
    list: {"extend": _extend},
    int: {"to_bytes": _to_bytes},
    statistics.NormalDist: {"samples": _samples},
}


def _methods_of(kind: type) -> dict[str, Callable[[Any], Any]] | None:
    for base, methods in _METHODS.items():
        if issubclass(kind, base):
            return methods
    return None


def _unbound(kind: type, name: str, factory: Callable[[Any], Any]) -> Callable[..., Any]:
    """`str.join` and the like: the same check, with the bound object as first argument."""

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(self, kind):
            raise TypeError(f"{kind.__name__}.{name} needs a {kind.__name__}")
        return factory(self)(*args, **kwargs)

    method.__name__ = name
    return method


def _special_attribute(obj: Any, name: str) -> Any:
    if isinstance(obj, type):
        if issubclass(obj, int) and name == "from_bytes":
            return int_from_bytes
        methods = _methods_of(obj)
        if methods is not None and name in methods:
            return _unbound(obj, name, methods[name])
        return _MISSING
    methods = _methods_of(type(obj))
    if methods is not None and name in methods:
        return methods[name](obj)
    if isinstance(obj, decimal.Decimal) and name in ("as_integer_ratio", "to_integral_exact"):
        check_decimal(obj)
    return _MISSING
