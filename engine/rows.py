"""Model rows read and written by hand-written statements, for the few that every operation
runs (the instance's locking read, the user with their groups, the definition of a start, the
task of a completion; the instance's, its tasks', jobs' and audit events' inserts and updates).
Django's ORM builds and compiles a query anew each time: about 1.4 ms of CPU for the instance's
locking read, against 0.4 ms for running the statement itself. The statements are written once
from the models' own table and column names; rows read become model instances as the ORM would
make them (the same converters), and values written are prepared by their fields as the ORM
prepares them."""

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

from django.db import connection
from django.db.models import Model
from django.db.transaction import TransactionManagementError


def quote(name: str) -> str:
    return str(connection.ops.quote_name(name))


def table(model: type[Model]) -> str:
    return quote(str(model._meta.db_table))


def column(model: type[Model], field: str, alias: str) -> str:
    """`alias.column` of the model's field `field` ("pk" for its primary key)."""
    found = model._meta.pk if field == "pk" else model._meta.get_field(field)
    return f"{alias}.{quote(str(found.column))}"  # type: ignore[union-attr]


def require_transaction() -> None:
    """A locking read outside a transaction would lock nothing (the lock ends with the
    statement): refused, as Django's `select_for_update` refuses it."""
    if connection.get_autocommit():
        raise TransactionManagementError("A locking read needs a transaction (atomic).")


Converter = Callable[[Any, Any, Any], Any]


class Columns:
    """A model's columns (less the fields `leave_out`, left deferred) under a table alias:
    `sql` to select them, `build` to make the model instance of their values."""

    def __init__(self, model: type[Model], alias: str, *, leave_out: Sequence[str] = ()) -> None:
        self.model = model
        fields = [field for field in model._meta.concrete_fields if field.name not in leave_out]
        self.sql = ", ".join(f"{alias}.{quote(str(field.column))}" for field in fields)
        self.count = len(fields)
        self._names = [str(field.attname) for field in fields]
        # The converters the ORM's compiler applies to each column (the backend's, then the
        # field's: JSON arrives as text, see Django's postgresql backend).
        self._converters: list[tuple[int, Any, list[Converter]]] = []
        for index, field in enumerate(fields):
            col = field.get_col(alias)
            found = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
            if found:
                self._converters.append((index, col, found))

    def build(self, values: Sequence[Any]) -> Any:
        row = list(values)
        for index, col, converters in self._converters:
            for convert in converters:
                row[index] = convert(row[index], col, connection)
        return self.model.from_db(connection.alias, self._names, row)

    def read(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """The model instances of the rows `sql` selects (only these columns)."""
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return [self.build(row) for row in cursor.fetchall()]


def ordering(model: type[Model], alias: str) -> str:
    """The model's default order (`Meta.ordering`) as an ORDER BY list under `alias`."""
    return ", ".join(
        f"{column(model, name.lstrip('-'), alias)}{' DESC' if name.startswith('-') else ''}"
        for name in model._meta.ordering or ()
        if isinstance(name, str)
    )


def split(row: Sequence[Any], *parts: Columns) -> list[Any]:
    """The model instances of a row that selected `parts`' columns one after the other."""
    built, start = [], 0
    for part in parts:
        built.append(part.build(row[start : start + part.count]))
        start += part.count
    return built


def _unnestable(field: Any) -> bool:
    """Whether a column's values can travel as one array (what Django's own UNNEST insert
    asks: no placeholder of its own, which an array column has, and a standard type)."""
    target = field.target_field if field.is_relation else field
    return not hasattr(field, "get_placeholder") and (
        target.get_internal_type() in connection.data_types
    )


def _placeholder(field: Any) -> str:
    """Where a field's value goes in a statement, as the ORM writes it: an array's with its
    cast (`%s::varchar(150)[]`: a longer element is cut to the column's length, as the ORM
    stores it, rather than refused)."""
    if hasattr(field, "get_placeholder"):
        return str(field.get_placeholder(None, None, connection))
    return "%s"


def _writable(model: type[Model]) -> list[Any]:
    """The model's columns a statement here writes: refused for a model with a column the
    database computes or defaults (generated, db_default), which these statements do not
    handle as the ORM does."""
    fields = list(model._meta.concrete_fields)
    for field in fields:
        if getattr(field, "generated", False) or field.has_db_default():
            raise TypeError(f"{model.__name__}.{field.name} is filled by the database.")
    return fields


def _prepared(field: Any, row: Model, add: bool) -> Any:
    """A field's value as the ORM writes it (`pre_save` sets an `auto_now` time on the row)."""
    return field.get_db_prep_save(field.pre_save(row, add), connection)


class Insert:
    """INSERT of rows of a model, written once from its metadata, each value prepared by its
    field as the ORM prepares it. Many rows go as one array per column, unnested, as Django's
    `bulk_create` writes them on Postgres; a model with a column that cannot (an array) takes
    a VALUES list. Columns the database fills (an auto-increment key) are left to it. The
    statement ends where a `RETURNING` clause may follow."""

    def __init__(self, model: type[Model]) -> None:
        # The auto-increment key is the database's to give (the models here set no other).
        auto = model._meta.auto_field
        self.fields = [field for field in _writable(model) if field is not auto]
        names = ", ".join(quote(str(field.column)) for field in self.fields)
        self._into = f"INSERT INTO {table(model)} ({names})"
        self.unnests = all(_unnestable(field) for field in self.fields)
        # The type without its length (varchar[], not varchar(32)[]): nothing is cut short.
        arrays = ", ".join(
            f"(%s)::{field.db_type(connection).split('(')[0]}[]" for field in self.fields
        )
        # Only names from the models' metadata are put together here; values are parameters.
        self._unnest = f"{self._into} SELECT * FROM UNNEST({arrays})"  # noqa: S608
        self._row = "(" + ", ".join(_placeholder(field) for field in self.fields) + ")"

    def sql(self, count: int) -> str:
        """The statement for `count` rows."""
        if self.unnests:
            return self._unnest
        return f"{self._into} VALUES {', '.join([self._row] * count)}"

    def params(self, rows: Sequence[Model]) -> list[Any]:
        values = [[_prepared(field, row, True) for field in self.fields] for row in rows]
        if self.unnests:  # one list per column
            return [list(column) for column in zip(*values, strict=True)]
        return [value for row in values for value in row]

    def written(self, rows: Sequence[Model], keys: Sequence[Any]) -> None:
        """The rows as the ORM leaves them once saved, with the keys the database gave them
        (`RETURNING` the primary key, in the rows' order) where it gave them."""
        for row, key in zip(rows, keys, strict=True):
            row.pk = key
            row._state.adding, row._state.db = False, connection.alias  # noqa: SLF001


@cache
def insert_of(model: type[Model]) -> Insert:
    """The model's `Insert`, made once."""
    return Insert(model)


@cache
def _update_of(model: type[Model]) -> tuple[list[Any], str]:
    fields = [field for field in _writable(model) if not field.primary_key]
    assignments = ", ".join(
        f"{quote(str(field.column))} = {_placeholder(field)}" for field in fields
    )
    key = quote(str(model._meta.pk.column))
    return fields, f"UPDATE {table(model)} SET {assignments} WHERE {key} = %s"  # noqa: S608


def insert_rows(rows: Sequence[Model]) -> None:
    """Insert rows of one model (that bring their own keys, or get theirs back), as
    `bulk_create` would: for the rows every operation writes (engine.rows above)."""
    if not rows:
        return
    insert = insert_of(type(rows[0]))
    key = quote(str(rows[0]._meta.pk.column))
    with connection.cursor() as cursor:
        cursor.execute(f"{insert.sql(len(rows))} RETURNING {key}", insert.params(rows))
        insert.written(rows, [found for (found,) in cursor.fetchall()])


def save_row(row: Model) -> None:
    """`row.save()` without the ORM's work of building the statement: an update of every
    column of a row read or written before (`auto_now` times set as the ORM sets them), and,
    as the ORM does, an insert when it is new or the update found no row (its insert was
    rolled back to a savepoint)."""
    if row.get_deferred_fields():  # the ORM would write only the loaded ones
        raise ValueError(f"{type(row).__name__} {row.pk} was read in part: save() it.")
    if not row._state.adding:  # noqa: SLF001
        fields, sql = _update_of(type(row))
        with connection.cursor() as cursor:
            cursor.execute(sql, [*(_prepared(field, row, False) for field in fields), row.pk])
            if cursor.rowcount == 1:
                return
    insert_rows([row])
