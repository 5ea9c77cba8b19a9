"""JSON numbers as the forms read and write them: Decimals while checking, int or float in
the submitted variables."""

from decimal import Decimal, InvalidOperation
from typing import Any


def decimal_of(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def number_text(value: Decimal) -> str:
    return str(json_number(value))


def json_number(value: Decimal) -> int | float:
    if value == value.to_integral_value():
        return int(value)
    return float(value)


def count_of(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
