"""How large the values a diagram script builds may be, and the checks that say so.

The checks give early, clear errors where a value is made (operators, methods, builtins);
the data a script leaves behind is measured against the same limits before it leaves the
sandbox (`kept`), and the sandbox process's memory and CPU limits bound whatever finds
another way.
"""

import decimal
import math
from typing import Any, NoReturn

from .errors import ScriptLimitExceeded

MAX_STRING_LENGTH = 10_000_000  # characters of one str (or bytes of one bytes)
MAX_SEQUENCE_LENGTH = 1_000_000  # items of one list, tuple, dict or set; numbers in a range()
MAX_INT_BITS = 100_000  # about 30,000 decimal digits
MAX_MODULAR_POW_BITS = 8_192
MAX_FORMAT_WIDTH = 10_000  # width or precision in a format spec
MAX_DECIMAL_DIGITS = 10_000  # digits a Decimal may expand to (exponent range of arithmetic)
MAX_NESTING_DEPTH = 100  # lists in dicts in lists ... in the data a script leaves
# Integers in the data a script leaves are stored as JSON numbers: at most as many digits as
# Python converts to text by default.
MAX_STORED_INT_DIGITS = 4300
MAX_STORED_INT_BITS = int(MAX_STORED_INT_DIGITS * math.log2(10))
MAX_RESULT_BYTES = 50_000_000  # approximate JSON size of the data a script leaves

# CPU seconds one script run may use: the default, and the most a process may ask for with
# its `scriptTimeLimit` property (the instance's row lock is held meanwhile).
DEFAULT_TIME_LIMIT_SECONDS = 2.0
MAX_TIME_LIMIT_SECONDS = 60.0
# CPU seconds a sandbox process may use in its whole life (`jail.limit_process`); a process
# with less than `cpu_backstop(MAX_TIME_LIMIT_SECONDS)` left is retired (`leases`).
LIFETIME_CPU_SECONDS = 3600


def cpu_backstop(seconds: float) -> float:
    """The CPU seconds after which the operating system stops a script whose time limit is
    `seconds`, should it defeat the trace function that stops it at `seconds`."""
    return 2 * seconds + 5


def refuse(what: str, size: int, limit: int, unit: str) -> NoReturn:
    raise ScriptLimitExceeded(
        f"The script would build {what} of {size:,} {unit}; diagram scripts may build at most "
        f"{limit:,}."
    )


_SEQUENCE_LIMITS: dict[type, tuple[int, str, str]] = {
    str: (MAX_STRING_LENGTH, "a text", "characters"),
    bytes: (MAX_STRING_LENGTH, "bytes", "bytes"),
    list: (MAX_SEQUENCE_LENGTH, "a list", "items"),
    tuple: (MAX_SEQUENCE_LENGTH, "a tuple", "items"),
}
SEQUENCES = (str, bytes, list, tuple)


def _sequence_limit(value: Any) -> tuple[int, str, str] | None:
    found = _SEQUENCE_LIMITS.get(type(value))
    if found is None and isinstance(value, SEQUENCES):
        found = next(v for k, v in _SEQUENCE_LIMITS.items() if isinstance(value, k))
    return found


def check_length(sample: Any, length: int) -> None:
    """Refuse making a value like `sample` (a str, bytes, list or tuple) of `length`."""
    found = _sequence_limit(sample)
    if found is not None and length > found[0]:
        refuse(found[1], length, found[0], found[2])


def check_bits(bits: float) -> None:
    if bits > MAX_INT_BITS:
        raise ScriptLimitExceeded(
            f"The script would build a number of about {int(bits):,} bits; diagram scripts may "
            f"build numbers of at most {MAX_INT_BITS:,} bits."
        )


def decimal_too_large(value: Any) -> bool:
    """Whether `value` is a Decimal that expands to too many digits (as an int, in 'f' format
    or when stored)."""
    return (
        isinstance(value, decimal.Decimal)
        and value.is_finite()
        and bool(value)
        and abs(value.adjusted()) > MAX_DECIMAL_DIGITS
    )


def check_decimal(value: Any) -> None:
    """Refuse a Decimal that would expand to too many digits."""
    if decimal_too_large(value):
        raise ScriptLimitExceeded(
            f"The decimal {value} would expand to more than {MAX_DECIMAL_DIGITS:,} digits."
        )


def log2_factorial(n: int) -> float:
    return math.lgamma(n + 1) / math.log(2) if n > 1 else 0.0


def decimal_context() -> decimal.Context:
    """The arithmetic context of scripts: Python's defaults, with exponents bounded so that no
    result of Decimal arithmetic expands beyond MAX_DECIMAL_DIGITS."""
    return decimal.Context(
        prec=28,
        rounding=decimal.ROUND_HALF_EVEN,
        Emax=MAX_DECIMAL_DIGITS,
        Emin=-MAX_DECIMAL_DIGITS,
        traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
    )
