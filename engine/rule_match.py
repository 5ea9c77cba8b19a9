"""A rule written as a `Q` (engine.permissions), asked of a model instance already in memory:
the answer the database would give for that row, without the round trip or the ORM's work of
building the query. Only the lookups the rules use are understood (exact, isnull and in of
plain values, contains and overlap of array columns, on a field or a foreign key's id); any
other lookup, an expression or a query raises, so that a rule never gets an answer of its own
here (tests/engine/test_rule_match.py holds both answers equal)."""

from typing import Any

from django.contrib.postgres.fields import ArrayField
from django.db.models import Field, Model, Q


def _field(row: Model, name: str) -> Field:
    meta = row._meta
    found = meta.pk if name == "pk" else meta.get_field(name)
    if not isinstance(found, Field) or found.many_to_many or found.one_to_many:
        raise TypeError(f"{name!r} is not understood in memory.")
    return found


def _as_stored(field: Field, value: Any) -> Any:
    """A value as the column holds it: a row's key, a text as a UUID, ... (`to_python` of
    the column's field: of the target of a foreign key)."""
    if isinstance(value, Model):
        value = value.pk
    if hasattr(value, "resolve_expression") or isinstance(value, (list, tuple, set, dict)):
        raise TypeError(f"{value!r} is not understood in memory.")  # F(), a query, ...
    target = field.target_field if field.is_relation else field  # type: ignore[attr-defined]
    return None if value is None else target.to_python(value)


def _holds(row: Model, lookup: str, wanted: Any) -> bool:
    name, _, operator = lookup.partition("__")
    field = _field(row, name)
    value = getattr(row, field.attname)
    if operator in ("", "exact"):
        wanted = _as_stored(field, wanted)
        return value is None if wanted is None else value == wanted
    if operator == "isnull":
        return (value is None) == bool(wanted)
    if operator == "in":
        if hasattr(wanted, "resolve_expression"):  # a query
            raise TypeError(f"{lookup!r} of a query is not understood in memory.")
        return value is not None and value in {_as_stored(field, item) for item in wanted}
    if operator in ("contains", "overlap") and isinstance(field, ArrayField):
        if value is None:
            return False
        if operator == "contains":  # every wanted element is in the row's array
            return set(wanted) <= set(value)
        return not set(wanted).isdisjoint(value)  # one element in common
    raise TypeError(f"The lookup {lookup!r} is not understood in memory.")


def _child_holds(row: Model, child: Any) -> bool | None:
    """Whether `row` holds the child condition; None for an empty rule, which Django leaves
    out of the query."""
    if isinstance(child, Q):
        return matches(child, row) if child.children else None
    if isinstance(child, tuple):
        return _holds(row, *child)
    raise TypeError(f"{child!r} is not understood in memory.")  # an expression: Exists, ...


def matches(rule: Q, row: Model) -> bool:
    """Whether `row` is among the rows `rule` selects (an empty rule selects every row)."""
    answers = [
        answer for child in rule.children if (answer := _child_holds(row, child)) is not None
    ]
    if not answers:
        return True  # an empty rule matches every row, negated or not, as in the query
    if rule.connector == Q.AND:
        answer = all(answers)
    elif rule.connector == Q.OR:
        answer = any(answers)
    else:
        raise TypeError(f"The connector {rule.connector!r} is not understood in memory.")
    return not answer if rule.negated else answer
