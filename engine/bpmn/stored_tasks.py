"""A task as the instance's state stores it: the library's record without what it repeats.

SpiffWorkflow 3.2 stores every task with its id (the key it is stored under already), its
parent (its parent's list of children names it already), its type name (always "Task") and,
whatever their values, `triggered`, `internal_data`, `data` and a `delta` against its
parent's data. Most tasks hold the defaults: an approval instance spent more than half of
its state on them. `compact` leaves out what `expand_all` puts back, so the library's
converters read the records as they wrote them; records stored before (every key present)
are read as they are.

Data, as stored here:
- `delta` present: the task's data is its parent's with the delta applied (as the library);
- only `data` present: the task's data in full (the root, or a task whose parent the state
  left out: engine.bpmn.pruning);
- neither: the task's data is its parent's.
"""

from typing import Any

TASK_TYPENAME = "Task"


def compact(record: dict[str, Any]) -> dict[str, Any]:
    """The library's record of a task without what `expand_all` can tell again."""
    record.pop("id", None)
    record.pop("parent", None)
    for key, default in _defaults().items():
        if key in record and record[key] == default:
            del record[key]
    delta = record.get("delta")
    if delta:  # a task with a parent: its data is {}
        record.pop("data", None)
        for key in ("updates", "deletions"):
            if not delta.get(key):
                delta.pop(key, None)
        if not delta:
            del record["delta"]  # the same data as its parent
    else:  # the root: its data in full
        record.pop("delta", None)
        if not record.get("data"):
            record.pop("data", None)
    return record


def store_whole_data(record: dict[str, Any], data: dict[str, Any]) -> None:
    """Store the task's (converted) data in full, not against its parent's."""
    record.pop("delta", None)
    record["data"] = data


def expand_all(tasks: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The stored records of a workflow's tasks, each with what `compact` left out put back
    (new records: the stored ones are left as they are)."""
    parents = {child: task_id for task_id, record in tasks.items() for child in record["children"]}
    expanded = {}
    for task_id, stored in tasks.items():
        record = {"id": task_id, "parent": parents.get(task_id), **_defaults(), **stored}
        if "delta" in record:
            record["delta"] = {"updates": {}, "deletions": [], **record["delta"]}
            record.setdefault("data", {})
        elif "data" in record:
            record["delta"] = {}
        else:
            record["data"] = {}
            record["delta"] = {"updates": {}, "deletions": []}
        expanded[task_id] = record
    return expanded


def _defaults() -> dict[str, Any]:
    return {"typename": TASK_TYPENAME, "triggered": False, "internal_data": {}}
