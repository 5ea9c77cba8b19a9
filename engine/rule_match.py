"""A rule written as a `Q` (engine.permissions), asked of a model instance already in memory:
the answer the database would give for that row, without the round trip or the ORM's work of
building the query. Only the lookups the rules use are understood (exact, isnull, in,
contains and overlap of arrays, on a field or a foreign key's id); any other raises, so that
a rule never gets an answer of its own here (tests/engine/test_rule_match.py holds both
answers equal)."""

from typing import Any

from django.db.models import Model, Q


def _value(row: Model, name: str) -> Any:
    meta = row._meta
    field = meta.pk if name == "pk" else meta.get_field(name)
    return getattr(row, field.attname)  # type: ignore[union-attr]


def _as_key(value: Any) -> Any:
    return value.pk if isinstance(value, Model) else value


def _holds(row: Model, lookup: str, wanted: Any) -> bool:
    name, _, operator = lookup.partition("__")
    value = _value(row, name)
    if operator in ("", "exact"):
        wanted = _as_key(wanted)
        return value is None if wanted is None else value == wanted
    if operator == "isnull":
        return (value is None) == bool(wanted)
    if operator == "in":
        return value is not None and value in {_as_key(item) for item in wanted}
    if operator == "contains":  # arrays: every wanted element is in the row's array
        return value is not None and set(wanted) <= set(value)
    if operator == "overlap":  # arrays: one element in common
        return value is not None and not set(wanted).isdisjoint(value)
    raise TypeError(f"The lookup {lookup!r} is not understood in memory.")


def _child_holds(row: Model, child: Any) -> bool:
    if isinstance(child, Q):
        return matches(child, row)
    if isinstance(child, tuple):
        return _holds(row, *child)
    raise TypeError(f"{child!r} is not understood in memory.")  # an expression: Exists, ...


def matches(rule: Q, row: Model) -> bool:
    """Whether `row` is among the rows `rule` selects (an empty rule selects every row)."""
    answers = (_child_holds(row, child) for child in rule.children)
    if not rule.children:
        answer = True
    elif rule.connector == Q.AND:
        answer = all(answers)
    elif rule.connector == Q.OR:
        answer = any(answers)
    else:
        raise TypeError(f"The connector {rule.connector!r} is not understood in memory.")
    return not answer if rule.negated else answer
