"""The Postgres side of SpiffArena's data stores (engine.bpmn.data_stores): reads and writes
in the running operation's transaction, each write recorded in the instance's audit trail.

Writes upsert (`INSERT ... ON CONFLICT DO UPDATE`), so two instances writing one store at the
same time take turns on its rows instead of failing on the unique key.
"""

from typing import Any

from engine.actors import Actor
from engine.models import DataStoreEntry, InstanceEvent, ProcessInstance

from .audit import record_event

Kind = DataStoreEntry.Kind


class PostgresDataStores:
    """`engine.bpmn.data_stores.DataStoreAccess` for one operation on `instance`."""

    def __init__(self, instance: ProcessInstance, actor: Actor) -> None:
        self.instance = instance
        self.actor = actor

    def read_json(self, store: str) -> Any:
        entry = DataStoreEntry.objects.filter(kind=Kind.JSON, store=store, key="").first()
        return entry.value if entry is not None else {}

    def write_json(self, store: str, value: Any) -> None:
        _upsert([DataStoreEntry(kind=Kind.JSON, store=store, value=value)])
        self._audit(Kind.JSON, store, [""])

    def read_kkv(self, store: str) -> dict[str, dict[str, Any]]:
        entries: dict[str, dict[str, Any]] = {}
        rows = DataStoreEntry.objects.filter(kind=Kind.KKV, store=store).order_by("pk")
        for key, secondary_key, value in rows.values_list("key", "secondary_key", "value"):
            entries.setdefault(key, {})[secondary_key] = value
        return entries

    def write_kkv(self, store: str, changes: dict[str, dict[str, Any] | None]) -> None:
        rows = DataStoreEntry.objects.filter(kind=Kind.KKV, store=store)
        upserts = []
        for key, second_level in changes.items():
            if second_level is None:
                rows.filter(key=key).delete()
                continue
            for secondary_key, value in second_level.items():
                if value is None:
                    rows.filter(key=key, secondary_key=secondary_key).delete()
                else:
                    upserts.append(
                        DataStoreEntry(
                            kind=Kind.KKV,
                            store=store,
                            key=key,
                            secondary_key=secondary_key,
                            value=value,
                        )
                    )
        _upsert(upserts)
        self._audit(Kind.KKV, store, sorted(changes))

    def write_typeahead(self, category: str, items: list[tuple[str, Any]]) -> None:
        DataStoreEntry.objects.filter(kind=Kind.TYPEAHEAD, store=category).delete()
        latest = dict(items)  # one entry per search term: the last one written
        _upsert(
            [
                DataStoreEntry(kind=Kind.TYPEAHEAD, store=category, key=term, value=result)
                for term, result in latest.items()
            ]
        )
        self._audit(Kind.TYPEAHEAD, category, [f"{len(latest)} entries"])

    def _audit(self, kind: str, store: str, keys: list[str]) -> None:
        record_event(
            self.instance,
            InstanceEvent.Type.DATA_STORE_WRITTEN,
            actor=self.actor,
            payload={"kind": kind, "store": store, "keys": keys[:50]},
        )


def _upsert(entries: list[DataStoreEntry]) -> None:
    if entries:
        DataStoreEntry.objects.bulk_create(
            entries,
            update_conflicts=True,
            unique_fields=["kind", "store", "key", "secondary_key"],
            update_fields=["value", "updated_at"],
        )
