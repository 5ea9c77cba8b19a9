"""Keyset ("cursor") pagination of an ordered queryset: a page starts after (or ends before)
the sort key of a row the reader saw, instead of skipping N rows. A deep page costs what the
first one does, and a task added or removed meanwhile neither repeats nor skips another.

A cursor is the sort key of the row it continues from, plus the page number it leads to (for
"page 3 of 9"), as URL-safe text. It is not secret and needs no signature: it only narrows a
list the reader may already see."""

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Count, Field, Model, Q, QuerySet, Window


class BadCursor(ValueError):
    """A cursor that is not one of this list (edited, truncated, or of another sort order)."""


@dataclass(frozen=True)
class Cursor:
    """Where a page starts: after the row with `key` (or, `backwards`, before it)."""

    key: tuple[Any, ...]
    backwards: bool
    number: int  # the number of the page it leads to, from 1

    def encode(self) -> str:
        values = [
            value if value is None or isinstance(value, int | str) else str(value)
            for value in self.key
        ]
        text = json.dumps({"k": values, "b": self.backwards, "n": self.number})
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str, model: type[Model], order: Sequence[str]) -> "Cursor":
        """The cursor `text` names for a list of `model` sorted by `order` (BadCursor if none)."""
        try:
            raw = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            values, backwards, number = raw["k"], raw["b"], raw["n"]
        except (ValueError, TypeError, KeyError, binascii.Error) as error:
            raise BadCursor("not a cursor") from error
        if not (
            isinstance(values, list)
            and len(values) == len(order)
            and isinstance(backwards, bool)
            and isinstance(number, int)
            and not isinstance(number, bool)
            and number >= 1
        ):
            raise BadCursor("not a cursor of this list")
        key = []
        for name, value in zip(_names(order), values, strict=True):
            if value is not None and not isinstance(value, int | str):
                raise BadCursor("not a cursor of this list")
            try:
                key.append(None if value is None else _field(model, name).to_python(value))
            except ValidationError as error:
                raise BadCursor("not a cursor of this list") from error
        return cls(tuple(key), backwards, number)


@dataclass(frozen=True)
class KeysetPage:
    """One page of rows and the cursors of its neighbours: `next` None on the last page;
    `previous` None on the first page and on the second (whose previous page is the first,
    reached without a cursor: `has_previous`)."""

    rows: list[Any]
    number: int
    next: Cursor | None
    previous: Cursor | None
    has_previous: bool
    # How many rows the whole list holds, when the first page was asked to count them.
    total: int | None = None


def _field(model: type[Model], name: str) -> "Field[Any, Any]":
    field = model._meta.get_field(name)
    if not isinstance(field, Field):
        raise BadCursor(f"{name} is no column")
    return field


def _names(order: Sequence[str]) -> list[str]:
    return [field.removeprefix("-") for field in order]


def _reversed(order: Sequence[str]) -> list[str]:
    return [field[1:] if field.startswith("-") else f"-{field}" for field in order]


def _beyond(model: type[Model], order: Sequence[str], key: Sequence[Any]) -> Q:
    """Rows that sort after `key` in `order`, as Postgres sorts: NULLs last ascending, first
    descending. (a, b, c) after (x, y, z) is a > x, or a = x and b > y, or ..."""
    beyond = Q(pk__in=[])
    same = Q()
    for field, value in zip(order, key, strict=True):
        name, descending = field.removeprefix("-"), field.startswith("-")
        nullable = _field(model, name).null
        if value is None:
            later = Q(**{f"{name}__isnull": False}) if descending else None
        elif descending:
            later = Q(**{f"{name}__lt": value})
        else:
            later = Q(**{f"{name}__gt": value})
            if nullable:
                later |= Q(**{f"{name}__isnull": True})
        if later is not None:
            beyond |= same & later
        same &= Q(**{f"{name}__isnull": True}) if value is None else Q(**{name: value})
    return beyond


def keyset_page(
    rows: QuerySet[Any], size: int, cursor: Cursor | None = None, *, count: bool = False
) -> KeysetPage:
    """The page of `rows` (ordered by a unique key: its last field should be the primary key)
    that `cursor` points to, or the first. One query of at most `size + 1` rows. With
    `count`, the first page also counts the whole list in that query (`total`): a list whose
    rows are costly to find (a search) is then scanned once, not once for the page and again
    for its count."""
    order = [str(field) for field in rows.query.order_by]
    model = rows.model
    number = cursor.number if cursor else 1
    total = None
    if cursor is None:
        if count:
            rows = rows.annotate(listed_in_all=Window(Count("pk")))
        found = list(rows[: size + 1])
        more_after, more_before = len(found) > size, False
        if count:
            total = found[0].listed_in_all if found else 0
    elif cursor.backwards:
        backwards = _reversed(order)
        before = rows.filter(_beyond(model, backwards, cursor.key)).order_by(*backwards)
        found = list(before[: size + 1])
        more_after, more_before = True, len(found) > size
        found = found[:size][::-1]
    else:
        found = list(rows.filter(_beyond(model, order, cursor.key))[: size + 1])
        more_after, more_before = len(found) > size, True
    shown = found[:size]

    def key_of(row: Any) -> tuple[Any, ...]:
        return tuple(getattr(row, name) for name in _names(order))

    following = Cursor(key_of(shown[-1]), False, number + 1) if more_after and shown else None
    # An emptied page (its tasks were done meanwhile) still leads back, to the first page.
    more_before = more_before and number > 1
    back = more_before and number > 2 and bool(shown)
    preceding = Cursor(key_of(shown[0]), True, number - 1) if back else None
    return KeysetPage(shown, number, following, preceding, has_previous=more_before, total=total)
