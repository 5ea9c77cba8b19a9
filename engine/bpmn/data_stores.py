"""SpiffArena's data stores: data kept beyond one instance, read and written by the tasks that
have a data association with a `bpmn:dataStoreReference` to them.

A diagram declares a store as `<bpmn:dataStore id="contacts" name="JSONDataStore"/>` (the
name picks the kind, as the library's `DATA_STORE_CLASSES` does; a `spiffworkflow:type`
attribute of "json", "kkv" or "typeahead" -- or the class name -- is read first). The id
names the store: every diagram that declares a store of that kind and id shares its data.

- `JSONDataStore`: one JSON value. A data input puts it into the task data under the store's
  id (`{}` until first written); a data output writes the variable of that name and removes
  it from the task data.
- `KKVDataStore`: key -> key -> value. A data input makes the store's id a function of the
  script: `store("top", "second")` is the value (None when absent), `store("top")` the dict
  of the top key. A data output writes `{"top": {"second": value}}`; a value None deletes
  that entry, a top key None deletes all its entries.
- `TypeaheadDataStore`: write only (as in SpiffArena): a data output
  `{"category": [{"search_term": ..., "result": {...}}, ...]}` replaces each category's
  entries, which the typeahead lookup searches by prefix.

The library calls `get` when the task becomes ready and `set` when it completes. What stores
the data is not this package's business: the operation's services give an accessor
(`DataStoreAccess`) through `data_store_access`, so reads and writes happen in the
operation's transaction.
"""

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any, Protocol

from SpiffWorkflow.bpmn.exceptions import WorkflowDataException
from SpiffWorkflow.bpmn.serializer.helpers.spec import BpmnDataSpecificationConverter
from SpiffWorkflow.bpmn.specs.data_spec import BpmnDataStoreSpecification
from SpiffWorkflow.task import Task

JSON = "json"
KKV = "kkv"
TYPEAHEAD = "typeahead"


class DataStoreAccess(Protocol):
    """Where the data of the stores lives (engine.services gives the Postgres one)."""

    def read_json(self, store: str) -> Any: ...

    def write_json(self, store: str, value: Any) -> None: ...

    def read_kkv(self, store: str) -> dict[str, dict[str, Any]]: ...

    def write_kkv(self, store: str, changes: dict[str, dict[str, Any] | None]) -> None: ...

    def write_typeahead(self, category: str, items: list[tuple[str, Any]]) -> None: ...


_access: contextvars.ContextVar[DataStoreAccess | None] = contextvars.ContextVar(
    "baton_data_store_access", default=None
)


@contextlib.contextmanager
def data_store_access(access: DataStoreAccess | None) -> Iterator[None]:
    """The stores the workflow code run inside the block reads and writes."""
    token = _access.set(access)
    try:
        yield
    finally:
        _access.reset(token)


class _BatonDataStore(BpmnDataStoreSpecification):
    kind = ""
    label = ""

    def __init__(
        self,
        bpmn_id: str,
        bpmn_name: str | None = None,
        capacity: Any = None,
        is_unlimited: Any = None,
    ) -> None:
        super().__init__(bpmn_id, bpmn_name, capacity, is_unlimited)

    def _access(self, task: Task, *, output: bool) -> DataStoreAccess:
        access = _access.get()
        if access is None:
            self._fail(task, "is not reachable here (no operation of an instance)", output)
        assert access is not None
        return access

    def _fail(self, task: Task, problem: str, output: bool) -> None:
        message = f"The {self.label} data store {self.bpmn_id!r} {problem}."
        if output:
            raise WorkflowDataException(message, task, data_output=self)
        raise WorkflowDataException(message, task, data_input=self)

    def _written(self, task: Task) -> Any:
        if self.bpmn_id not in task.data:
            self._fail(
                task,
                f"cannot be written: the task has no variable {self.bpmn_id!r} to write",
                True,
            )
        return task.data[self.bpmn_id]


class JSONDataStore(_BatonDataStore):
    kind = JSON
    label = "JSON"

    def get(self, my_task: Task) -> None:
        my_task.data[self.bpmn_id] = self._access(my_task, output=False).read_json(self.bpmn_id)

    def set(self, my_task: Task) -> None:
        value = self._written(my_task)
        self._access(my_task, output=True).write_json(self.bpmn_id, value)
        del my_task.data[self.bpmn_id]


class KKVReader:
    """What a KKV store's id names in the task data after a data input: the store's entries,
    read as `store("top", "second")` or `store("top")`. A function, so it is never stored
    with the task data (nor kept after the task); the sandbox gets its entries and builds
    the same function there (engine.bpmn.scripting)."""

    def __init__(self, entries: dict[str, dict[str, Any]]) -> None:
        self.entries = entries

    def __call__(self, top_level_key: str, secondary_key: str | None = None) -> Any:
        return kkv_lookup(self.entries, top_level_key, secondary_key)


def kkv_lookup(entries: dict[str, Any], top_level_key: Any, secondary_key: Any = None) -> Any:
    second_level = entries.get(top_level_key) if isinstance(top_level_key, str) else None
    if not isinstance(second_level, dict):
        return None if secondary_key is not None else {}
    if secondary_key is None:
        return dict(second_level)
    return second_level.get(secondary_key) if isinstance(secondary_key, str) else None


class KKVDataStore(_BatonDataStore):
    kind = KKV
    label = "KKV"

    def get(self, my_task: Task) -> None:
        entries = self._access(my_task, output=False).read_kkv(self.bpmn_id)
        my_task.data[self.bpmn_id] = KKVReader(entries)

    def set(self, my_task: Task) -> None:
        value = self._written(my_task)
        if isinstance(value, KKVReader):
            del my_task.data[self.bpmn_id]  # read, never assigned: nothing to write
            return
        if not isinstance(value, dict):
            self._fail(my_task, "takes a dict of dicts ({'top': {'second': value}})", True)
        changes: dict[str, dict[str, Any] | None] = {}
        for top, second_level in value.items():
            if not isinstance(top, str):
                self._fail(my_task, f"takes text keys, not {top!r}", True)
            if second_level is not None and not (
                isinstance(second_level, dict) and all(isinstance(k, str) for k in second_level)
            ):
                self._fail(my_task, f"takes a dict with text keys (or None) under {top!r}", True)
            changes[top] = second_level
        self._access(my_task, output=True).write_kkv(self.bpmn_id, changes)
        del my_task.data[self.bpmn_id]


class TypeaheadDataStore(_BatonDataStore):
    kind = TYPEAHEAD
    label = "typeahead"

    def get(self, my_task: Task) -> None:
        self._fail(my_task, "is write only (its entries are searched by the typeahead)", False)

    def set(self, my_task: Task) -> None:
        value = self._written(my_task)
        if not isinstance(value, dict):
            self._fail(my_task, "takes a dict of categories, each a list of entries", True)
        by_category: dict[str, list[tuple[str, Any]]] = {}
        for category, items in value.items():
            if not isinstance(category, str) or not isinstance(items, list):
                self._fail(my_task, f"takes a list of entries under {category!r}", True)
            entries = []
            for item in items:
                if not (isinstance(item, dict) and isinstance(item.get("search_term"), str)):
                    self._fail(
                        my_task,
                        f"takes entries {{'search_term': text, 'result': ...}} in {category!r}",
                        True,
                    )
                entries.append((item["search_term"], item.get("result")))
            by_category[category] = entries
        access = self._access(my_task, output=True)
        for category, entries in by_category.items():
            access.write_typeahead(category, entries)
        del my_task.data[self.bpmn_id]


DATA_STORE_CLASSES: dict[str, type[_BatonDataStore]] = {
    "JSONDataStore": JSONDataStore,
    "KKVDataStore": KKVDataStore,
    "TypeaheadDataStore": TypeaheadDataStore,
}
_BY_TYPE = {cls.kind: name for name, cls in DATA_STORE_CLASSES.items()}


def data_store_class_name(store: Any) -> str | None:
    """The kind of a `bpmn:dataStore` element (its class name), from its `type` attribute (in
    any namespace: `spiffworkflow:type`) or its name; None for a kind Baton does not keep."""
    type_attribute = next(
        (value for key, value in store.attrib.items() if str(key).rsplit("}", 1)[-1] == "type"),
        None,
    )
    for candidate in (type_attribute, store.get("name")):
        text = (candidate or "").strip()
        if text in DATA_STORE_CLASSES:
            return text
        if text.lower() in _BY_TYPE:
            return _BY_TYPE[text.lower()]
    return None


class _DataStoreConverter(BpmnDataSpecificationConverter):
    def to_dict(self, data_spec: Any) -> dict[str, Any]:
        return {"bpmn_id": data_spec.bpmn_id, "bpmn_name": data_spec.bpmn_name}


DATA_STORE_CONVERTERS: dict[type, type] = {
    cls: _DataStoreConverter for cls in DATA_STORE_CLASSES.values()
}
