"""The modules a diagram script may import, as data: which names each offers, and the
size-checked stand-ins that replace some of them.

A script never gets a real module. `import math` hands out a `Namespace`: an immutable object
holding exactly the values listed here. `from json import decoder` and `import json.decoder`
resolve only inside this list, so they fail. Values are the real classes and functions of
the standard library (immutable C types, or Python functions whose internals are behind names
starting with "_"), except where a stand-in in `STAND_INS` bounds what they can build.
`random` draws from a generator that is new, and seeded from the operating system, for every
script run, so that no script sees the state another one left.

Changing this list is a security decision: `tests/engine/test_sandbox_reachability.py` walks
everything it offers and fails if a module, frame or code object, or one of the dangerous
builtins, becomes reachable.
"""

import datetime
import decimal
import json
import math
import random
import statistics
import string
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, NoReturn

from .errors import ScriptNotAllowed
from .limits import check_bits, check_decimal, check_length, log2_factorial
from .operators import guarded_mul

# module -> the names it offers to scripts
ALLOWED_NAMES: dict[str, tuple[str, ...]] = {
    "datetime": (
        "date",
        "datetime",
        "time",
        "timedelta",
        "timezone",
        "tzinfo",
        "MINYEAR",
        "MAXYEAR",
    ),
    "decimal": (
        "Decimal",
        "InvalidOperation",
        "DivisionByZero",
        "Overflow",
        "ROUND_05UP",
        "ROUND_CEILING",
        "ROUND_DOWN",
        "ROUND_FLOOR",
        "ROUND_HALF_DOWN",
        "ROUND_HALF_EVEN",
        "ROUND_HALF_UP",
        "ROUND_UP",
    ),
    "json": ("dumps", "loads", "JSONDecodeError"),
    "math": tuple(sorted(n for n in dir(math) if not n.startswith("_"))),
    "random": (
        "betavariate",
        "choice",
        "choices",
        "expovariate",
        "gammavariate",
        "gauss",
        "getrandbits",
        "lognormvariate",
        "normalvariate",
        "paretovariate",
        "randbytes",
        "randint",
        "random",
        "randrange",
        "sample",
        "seed",
        "shuffle",
        "triangular",
        "uniform",
        "vonmisesvariate",
        "weibullvariate",
    ),
    "statistics": (
        "mean",
        "fmean",
        "geometric_mean",
        "harmonic_mean",
        "median",
        "median_low",
        "median_high",
        "median_grouped",
        "mode",
        "multimode",
        "quantiles",
        "pstdev",
        "pvariance",
        "stdev",
        "variance",
        "correlation",
        "covariance",
        "linear_regression",
        "NormalDist",
        "StatisticsError",
    ),
    # SpiffArena's scripts use these two (`time.sleep`, `uuid.uuid4()`) without importing.
    "time": (
        "gmtime",
        "localtime",
        "mktime",
        "monotonic",
        "perf_counter",
        "sleep",
        "strftime",
        "time",
        "time_ns",
    ),
    "uuid": ("UUID", "uuid4", "uuid5", "NAMESPACE_DNS", "NAMESPACE_URL"),
    "string": (
        "ascii_letters",
        "ascii_lowercase",
        "ascii_uppercase",
        "digits",
        "hexdigits",
        "octdigits",
        "punctuation",
        "printable",
        "whitespace",
        "capwords",
        "Template",
    ),
}
_REAL_MODULES = {
    "datetime": datetime,
    "decimal": decimal,
    "json": json,
    "math": math,
    "random": random,
    "statistics": statistics,
    "string": string,
    "time": time,
    "uuid": uuid,
}


class Namespace:
    """An immutable stand-in for a module: attribute access to a fixed mapping, nothing
    else (no `__name__`, `__dict__`, `__loader__` or `__spec__` to walk from)."""

    __slots__ = ("_label", "_values")

    def __init__(self, label: str, values: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_label", label)
        object.__setattr__(self, "_values", MappingProxyType(dict(values)))

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(
                f"module {self._label!r} has no attribute {name!r} in diagram scripts"
            ) from None

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise ScriptNotAllowed(f"The module {self._label!r} cannot be changed by a script.")

    def __delattr__(self, name: str) -> NoReturn:
        raise ScriptNotAllowed(f"The module {self._label!r} cannot be changed by a script.")

    def __dir__(self) -> Iterable[str]:
        return sorted(self._values)

    def __repr__(self) -> str:
        return f"<module {self._label!r}>"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a module cannot be copied")


# -- stand-ins --------------------------------------------------------------------------------


def _to_integer(function: Callable[[Any], int]) -> Callable[[Any], int]:
    def call(value: Any) -> int:
        check_decimal(value)
        return function(value)

    call.__name__ = function.__name__
    return call


def _factorial(n: Any) -> int:
    if isinstance(n, int) and n > 1:
        check_bits(n * math.log2(n) if n > 10**7 else log2_factorial(n))
    return math.factorial(n)


def _comb(n: Any, k: Any) -> int:
    if isinstance(n, int) and isinstance(k, int) and 0 <= k <= n:
        if n > 10**9:
            check_bits(k * math.log2(n))
        else:
            check_bits(log2_factorial(n) - log2_factorial(k) - log2_factorial(n - k))
    return math.comb(n, k)


def _perm(n: Any, k: Any = None) -> int:
    if isinstance(n, int) and (k is None or isinstance(k, int)):
        k = n if k is None else k
        if 0 <= k <= n:
            if n > 10**9:
                check_bits(k * math.log2(n))
            else:
                check_bits(log2_factorial(n) - log2_factorial(n - k))
    return math.perm(n, k)


def _prod(iterable: Iterable[Any], *, start: Any = 1) -> Any:
    result = start
    for item in iterable:
        result = guarded_mul(result, item)
    return result


def _lcm(*integers: int) -> int:
    check_bits(sum(abs(i).bit_length() for i in integers if isinstance(i, int)))
    return math.lcm(*integers)


def _json_dumps(
    obj: Any,
    *,
    skipkeys: bool = False,
    ensure_ascii: bool = True,
    allow_nan: bool = True,
    indent: Any = None,
    separators: Any = None,
    default: Any = None,
    sort_keys: bool = False,
) -> str:
    if (isinstance(indent, int) and indent > 16) or (isinstance(indent, str) and len(indent) > 16):
        raise ScriptNotAllowed("json.dumps indent may be at most 16 in diagram scripts.")
    text = json.dumps(
        obj,
        skipkeys=skipkeys,
        ensure_ascii=ensure_ascii,
        allow_nan=allow_nan,
        indent=indent,
        separators=separators,
        default=default,
        sort_keys=sort_keys,
    )
    check_length(text, len(text))
    return text


def _json_loads(text: Any) -> Any:
    return json.loads(text)


class RunRandom:
    """The generator behind the `random` stand-in: a fresh one, seeded from the operating
    system, for every script run (`renew` forgets the last one; the next is made when a
    script first draws, so that runs that draw nothing pay nothing)."""

    _generator: random.Random | None = None

    @classmethod
    def renew(cls) -> None:
        cls._generator = None

    @classmethod
    def generator(cls) -> random.Random:
        if cls._generator is None:
            cls._generator = random.Random()
        return cls._generator


def _sleep(seconds: Any) -> None:
    """`time.sleep` does not wait: a script never holds its instance (SpiffArena's examples
    sleep only to be watched); the argument is still checked."""
    if not isinstance(seconds, int | float) or seconds < 0:
        raise ValueError("sleep length must be a non-negative number")


def _strftime(format: Any, *args: Any) -> str:
    check_length("", len(format) * 8 if isinstance(format, str) else 0)
    return time.strftime(format, *args)


def _per_run(name: str) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(RunRandom.generator(), name)(*args, **kwargs)

    call.__name__ = name
    return call


def _random_choices(
    population: Any, weights: Any = None, *, cum_weights: Any = None, k: int = 1
) -> list[Any]:
    check_length([], k)
    return RunRandom.generator().choices(population, weights, cum_weights=cum_weights, k=k)


def _random_getrandbits(k: int) -> int:
    check_bits(k)
    return RunRandom.generator().getrandbits(k)


def _random_randbytes(n: int) -> bytes:
    check_length(b"", n)
    return RunRandom.generator().randbytes(n)


def _random_sample(population: Any, k: int, *, counts: Any = None) -> list[Any]:
    check_length([], k)
    return RunRandom.generator().sample(population, k, counts=counts)


# (module, name) -> what scripts get instead of the real value.
STAND_INS: dict[tuple[str, str], Any] = {
    ("math", "factorial"): _factorial,
    ("math", "comb"): _comb,
    ("math", "perm"): _perm,
    ("math", "prod"): _prod,
    ("math", "lcm"): _lcm,
    ("math", "floor"): _to_integer(math.floor),
    ("math", "ceil"): _to_integer(math.ceil),
    ("math", "trunc"): _to_integer(math.trunc),
    ("json", "dumps"): _json_dumps,
    ("json", "loads"): _json_loads,
    **{("random", name): _per_run(name) for name in ALLOWED_NAMES["random"]},
    ("random", "choices"): _random_choices,
    ("random", "getrandbits"): _random_getrandbits,
    ("random", "randbytes"): _random_randbytes,
    ("random", "sample"): _random_sample,
    ("time", "sleep"): _sleep,
    ("time", "strftime"): _strftime,
}


def _build(module: str) -> Namespace:
    real = _REAL_MODULES[module]
    return Namespace(
        module,
        {
            name: STAND_INS[(module, name)] if (module, name) in STAND_INS else getattr(real, name)
            for name in ALLOWED_NAMES[module]
        },
    )


MODULES: Mapping[str, Namespace] = MappingProxyType({name: _build(name) for name in ALLOWED_NAMES})


def guarded_import(
    name: Any, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0
) -> Namespace:
    """`import X` / `from X import Y` for scripts: X from the allow-list, Y one of its names."""
    module = MODULES.get(name) if level == 0 and isinstance(name, str) else None
    if module is None:
        raise ScriptNotAllowed(
            f"Importing {name!r} is not allowed in diagram scripts; the modules a script may "
            f"import are {', '.join(sorted(MODULES))}."
        )
    for wanted in fromlist or ():
        if wanted not in ALLOWED_NAMES[name]:
            raise ScriptNotAllowed(
                f"{name}.{wanted} is not available in diagram scripts; {name} offers "
                f"{', '.join(ALLOWED_NAMES[name])}."
            )
    return module
