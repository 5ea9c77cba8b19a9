"""Read-only queries of the engine's state, one module per idea: `instances` (who may read
which, details, waits, history, counts), `inbox` (human tasks), `operations` (the operators' pages).
The names below are re-exported so that callers say `from engine import selectors`."""

from .inbox import (
    INBOX_SORTS,
    InboxCounts,
    inbox_counts,
    inbox_processes,
    inbox_tasks,
    next_task_in_instance,
    open_task_count,
    task_detail,
    task_detail_for,
    tasks_for_user,
)
from .instances import (
    EVENT_PREFETCHES,
    InstanceCounts,
    InstanceWaits,
    instance_counts_by_key,
    instance_detail,
    instance_detail_for,
    instance_history,
    instance_waits,
    visible_instances,
    waiting_for_events,
)
from .keyset import BadCursor, Cursor, KeysetPage, keyset_page
from .my_work import (
    MY_WORK_FILTERS,
    Step,
    current_steps,
    definition_element_names,
    followed_instance_for,
    started_instances,
)
from .operations import (
    IncidentGroup,
    element_names_of,
    incident_groups,
    instance_diagram,
    repair_choices,
    status_counts,
)
from .wait_states import WAIT_KINDS, WaitState, wait_states, waiting_for

__all__ = [
    "EVENT_PREFETCHES",
    "INBOX_SORTS",
    "MY_WORK_FILTERS",
    "WAIT_KINDS",
    "BadCursor",
    "Cursor",
    "InboxCounts",
    "IncidentGroup",
    "InstanceCounts",
    "InstanceWaits",
    "KeysetPage",
    "Step",
    "WaitState",
    "current_steps",
    "definition_element_names",
    "element_names_of",
    "followed_instance_for",
    "inbox_counts",
    "inbox_processes",
    "inbox_tasks",
    "incident_groups",
    "instance_counts_by_key",
    "instance_detail",
    "instance_detail_for",
    "instance_diagram",
    "instance_history",
    "instance_waits",
    "keyset_page",
    "next_task_in_instance",
    "open_task_count",
    "repair_choices",
    "started_instances",
    "status_counts",
    "task_detail",
    "task_detail_for",
    "tasks_for_user",
    "visible_instances",
    "wait_states",
    "waiting_for",
    "waiting_for_events",
]
