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
