"""Reading SpiffArena's data stores outside a process (engine.bpmn.data_stores)."""

from typing import Any

from engine.models import DataStoreEntry

MAX_TYPEAHEAD_RESULTS = 100


def typeahead_search(category: str, prefix: str, limit: int = 10) -> list[dict[str, Any]]:
    """The entries of a typeahead category whose search term starts with `prefix` (case
    sensitive, as SpiffArena's lookup), by search term: each its `result` plus the
    `search_term`, as SpiffArena answers a form's typeahead field."""
    rows = (
        DataStoreEntry.objects.filter(
            kind=DataStoreEntry.Kind.TYPEAHEAD, store=category, key__startswith=prefix
        )
        .order_by("key")
        .values_list("key", "value")[: max(1, min(limit, MAX_TYPEAHEAD_RESULTS))]
    )
    found = []
    for term, result in rows:
        item = dict(result) if isinstance(result, dict) else {"result": result}
        item["search_term"] = term
        found.append(item)
    return found
