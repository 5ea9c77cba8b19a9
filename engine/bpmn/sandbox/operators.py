"""Size-guarded operators: what `+ * ** << %` and their augmented forms compile to
(`policy.BatonPolicy`). Each refuses a result beyond the limits before building it."""

import math
import operator
from collections.abc import Callable
from typing import Any

from .errors import ScriptNotAllowed
from .formatting import check_percent_format
from .limits import MAX_INT_BITS, MAX_MODULAR_POW_BITS, SEQUENCES, check_bits, check_length


def guarded_add(a: Any, b: Any) -> Any:
    if isinstance(a, SEQUENCES) and isinstance(b, SEQUENCES):
        check_length(a, len(a) + len(b))
    return a + b


def guarded_mul(a: Any, b: Any) -> Any:
    if isinstance(a, int):
        if isinstance(b, int):
            if a.bit_length() + b.bit_length() > 64:
                check_bits(a.bit_length() + b.bit_length())
        elif isinstance(b, SEQUENCES):
            check_length(b, len(b) * a)
    elif isinstance(b, int) and isinstance(a, SEQUENCES):
        check_length(a, len(a) * b)
    return a * b


def guarded_pow(a: Any, b: Any, modulo: Any = None) -> Any:
    if isinstance(a, int) and isinstance(b, int):
        if modulo is not None:
            if (
                isinstance(modulo, int)
                and max(b.bit_length(), modulo.bit_length()) > MAX_MODULAR_POW_BITS
            ):
                check_bits(max(b.bit_length(), modulo.bit_length()) * MAX_INT_BITS)
        elif b > 0 and abs(a) > 1:
            check_bits(math.log2(abs(a)) * b)
    if modulo is None:
        return a**b
    return pow(a, b, modulo)


def guarded_lshift(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int) and b > 0 and a:
        check_bits(a.bit_length() + b)
    return a << b


def guarded_mod(a: Any, b: Any) -> Any:
    if isinstance(a, (str, bytes)):
        check_percent_format(a, b)
    return a % b


def guarded_iadd(a: Any, b: Any) -> Any:
    """`a += b`: a list grows in place (check first); other values as `+` does."""
    if isinstance(a, SEQUENCES):
        if isinstance(a, list) and not hasattr(b, "__len__"):
            b = list(b)
        if isinstance(b, SEQUENCES) or isinstance(a, list):
            check_length(a, len(a) + len(b))
    a += b
    return a


def guarded_imul(a: Any, b: Any) -> Any:
    if isinstance(a, list) and isinstance(b, int):
        check_length(a, len(a) * b)
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
