"""What Baton answers, as typed dictionaries (the JSON as it comes; fields Baton adds later
are kept too)."""

from typing import Any, TypedDict


class Instance(TypedDict, total=False):
    id: str
    definition: str
    version: int
    business_key: str | None
    status: str
    variables: dict[str, Any]
    open_tasks: list[dict[str, Any]]
    waiting_for: list[dict[str, Any]]
    incident: dict[str, Any] | None
    started_by: str | None
    created_at: str
    updated_at: str
    completed_at: str | None


class Task(TypedDict, total=False):
    id: str
    instance: str
    definition: str
    element_id: str
    name: str
    assignee: str | None
    candidate_users: list[str]
    candidate_groups: list[str]
    status: str
    form: dict[str, Any] | None
    due_at: str | None
    priority: int | None
    created_at: str


class Job(TypedDict, total=False):
    id: str
    instance: str
    definition: str
    element_id: str
    kind: str
    connector: str
    connection: str | None
    status: str
    attempt: int
    max_attempts: int
    next_attempt_at: str | None
    started_at: str | None
    last_error: str
    error_code: str
    worker_id: str
    locked_until: str | None
    waiting_on: str
    note: str
    created_at: str
    updated_at: str


class Queue(TypedDict, total=False):
    name: str
    role: str
    messages: int | None
    oldest_age_seconds: float | None
    age_source: str
    pending_jobs: int
    running_jobs: int
    broker_error: str


class Schedule(TypedDict, total=False):
    id: int
    definition: str
    version: int
    element_id: str
    expression: str
    active: bool
    paused: bool
    current: bool
    next_due_at: str | None
    cycles_left: int | None
    last_started_at: str | None
    created_at: str


class BatchItem(TypedDict, total=False):
    position: int
    instance: str
    outcome: str  # "pending", "ok", "skipped" or "failed"
    message: str


class Batch(TypedDict, total=False):
    id: str
    operation: str
    arguments: dict[str, Any]
    filter: dict[str, Any]
    status: str  # "pending", "running", "completed", "cancelled" or "failed"
    actor: str | None
    total: int
    done: int
    succeeded: int
    skipped: int
    failed: int
    error: str
    created_at: str
    updated_at: str
    finished_at: str | None
    problems: list[BatchItem]


class BatchPreview(TypedDict, total=False):
    """What a batch would do (dry_run): nothing was changed."""

    dry_run: bool
    operation: str
    matched: int
    targets: int
    matched_by_status: dict[str, int]
    sample: list[str]
    migration_plans: list[dict[str, Any]]


class WebhookSubscription(TypedDict, total=False):
    id: int
    name: str
    url: str
    secret_name: str
    event_types: list[str]
    process_key: str
    enabled: bool
    created_at: str


class WebhookDelivery(TypedDict, total=False):
    id: str
    event_type: str
    instance: str | None
    status: str  # "pending", "delivered" or "failed"
    attempts: int
    last_response_code: int | None
    last_error: str
    next_attempt_at: str | None
    created_at: str
    delivered_at: str | None
    payload: dict[str, Any]
