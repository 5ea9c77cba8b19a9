"""The HTTP calls: one method per endpoint this client covers. Errors come back from Baton
as problem details (RFC 7807); they are raised as `ApiError`.

Retries: a request that never reached Baton (connection refused or reset before sending) is
sent again; so is one Baton answered with 429, 502, 503 or 504. A POST is sent again after
a timeout or another server error only where Baton honours `Idempotency-Key` (start, complete
a task, messages, signals): each such call gets one key, reused by its retries, so Baton
carries it out once however often it arrives.
"""

import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import httpx

from .models import (
    Batch,
    BatchItem,
    BatchPreview,
    Instance,
    Job,
    Queue,
    Schedule,
    Task,
    WebhookDelivery,
    WebhookSubscription,
)

EXTERNAL_TASKS = "/api/v1/external-tasks"
API = "/api/v1"
RETRY_STATUSES = frozenset({429, 502, 503, 504})


class ApiError(Exception):
    """Baton answered with an error: `status`, and the problem's `title` and `detail`."""

    def __init__(self, status: int, title: str, detail: str, body: Any = None) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail
        self.body = body


@dataclass(frozen=True)
class ExternalTask:
    """A task a worker fetched and holds until `lock_expiration_time`."""

    id: str
    topic_name: str
    worker_id: str
    lock_expiration_time: str
    process_instance_id: str
    process_definition_key: str
    activity_id: str
    business_key: str | None
    attempt: int
    retries: int
    error_message: str
    variables: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> "ExternalTask":
        names = cls.__dataclass_fields__
        return cls(**{name: body[name] for name in names if name in body})


@dataclass(frozen=True)
class Topic:
    """A topic to fetch: how long to lock its tasks (ms), which variables to get (None: all)."""

    name: str
    lock_duration: int = 60_000
    variables: Sequence[str] | None = None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"topic_name": self.name, "lock_duration": self.lock_duration}
        if self.variables is not None:
            body["variables"] = list(self.variables)
        return body


class BatonClient:
    """`BatonClient(base_url, token=...)`: calls with `Authorization: Token <token>`."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str,
        timeout: float = 40.0,
        transport: httpx.BaseTransport | None = None,
        retries: int = 3,
        backoff: float = 0.5,
    ) -> None:
        self.retries = retries
        self.backoff = backoff
        # The timeout outlasts a long poll (at most 30 s).
        self.http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Token {token}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "BatonClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        keyed: bool = False,
    ) -> Any:
        """Send, retrying as the module says; raise `ApiError` for an error answer.
        `keyed`: the endpoint honours Idempotency-Key, so any failure may be retried."""
        headers = {"Idempotency-Key": str(uuid.uuid4())} if keyed else {}
        safe = method == "GET" or keyed
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self.http.request(
                    method, path, json=body, params=params, headers=headers
                )
            except (httpx.ConnectError, httpx.RemoteProtocolError):
                if last:
                    raise
            except httpx.TransportError:
                if last or not safe:
                    raise
            else:
                retry = response.status_code in RETRY_STATUSES or (
                    safe and response.status_code >= 500
                )
                if not retry or last:
                    return self._answer(response)
                wait = response.headers.get("Retry-After", "")
                if wait.isdigit():
                    time.sleep(min(float(wait), 30.0))
                    continue
            time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")  # the loop returns or raises

    @staticmethod
    def _answer(response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {}
            raise ApiError(
                response.status_code,
                str(problem.get("title", response.reason_phrase)),
                str(problem.get("detail", response.text[:500])),
                problem,
            )
        return response.json() if response.content else None

    def _post(self, path: str, body: dict[str, Any], *, keyed: bool = False) -> Any:
        return self._request("POST", path, body=body, keyed=keyed)

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        return self._request("GET", path, params=clean)

    def _pages(self, path: str, params: dict[str, Any] | None = None) -> Iterator[Any]:
        """Every item of a paginated list, page after page (page numbers or cursors)."""
        page = self._get(path, params)
        while True:
            yield from page["results"]
            if not page.get("next"):
                return
            page = self._request("GET", page["next"])

    # -- instances and tasks ---------------------------------------------------------------

    def start(
        self,
        key: str,
        variables: dict[str, Any] | None = None,
        *,
        business_key: str | None = None,
        version: int | None = None,
    ) -> Instance:
        """Start an instance of the latest (or the given) version of process `key`."""
        body: dict[str, Any] = {"variables": variables or {}}
        if business_key is not None:
            body["business_key"] = business_key
        if version is not None:
            body["version"] = version
        return cast(Instance, self._post(f"{API}/definitions/{key}/start/", body, keyed=True))

    def get_instance(self, instance_id: str) -> Instance:
        return cast(Instance, self._get(f"{API}/instances/{instance_id}/"))

    def cancel(self, instance_id: str, reason: str) -> Instance:
        """Cancel an instance with compensation (operators): what it completed is undone by
        its compensation handlers, then it is `terminated` (at once when nothing needs
        undoing). Not sent again after a timeout: it may have happened (a second cancel
        answers 409)."""
        return cast(
            Instance, self._post(f"{API}/instances/{instance_id}/cancel/", {"reason": reason})
        )

    def instances(self, **filters: Any) -> Iterator[Instance]:
        """Instances the caller may see: filters `status`, `definition`, `business_key`."""
        return cast(Iterator[Instance], self._pages(f"{API}/instances/", filters))

    def tasks(
        self, *, mine: bool = False, group: str | None = None, instance: str | None = None
    ) -> Iterator[Task]:
        """Open tasks the caller may see (all pages)."""
        params = {"mine": "1" if mine else None, "group": group, "instance": instance}
        return cast(Iterator[Task], self._pages(f"{API}/tasks/", params))

    def get_task(self, task_id: str) -> Task:
        return cast(Task, self._get(f"{API}/tasks/{task_id}/"))

    def claim_task(self, task_id: str) -> Task:
        return cast(Task, self._post(f"{API}/tasks/{task_id}/claim/", {}))

    def complete_task(self, task_id: str, variables: dict[str, Any] | None = None) -> Any:
        return self._post(
            f"{API}/tasks/{task_id}/complete/", {"variables": variables or {}}, keyed=True
        )

    # -- jobs, queues and schedules (operators) --------------------------------------------

    def jobs(self, **filters: Any) -> Iterator[Job]:
        """Service jobs, newest first: filters `status` ("pending,dead"), `connector`,
        `connection`, `instance`, `kind`, `element_id`, `error`."""
        return cast(Iterator[Job], self._pages(f"{API}/jobs/", filters))

    def requeue_job(self, job_id: str) -> Job:
        return cast(Job, self._post(f"{API}/jobs/{job_id}/requeue/", {}))

    def cancel_job(self, job_id: str, reason: str = "") -> Job:
        return cast(Job, self._post(f"{API}/jobs/{job_id}/cancel/", {"reason": reason}))

    def set_job_due(self, job_id: str, due_at: str | None) -> Job:
        """Move a pending job's next attempt (ISO 8601 with a zone; None: now)."""
        return cast(Job, self._post(f"{API}/jobs/{job_id}/due/", {"due_at": due_at}))

    def queues(self) -> list[Queue]:
        return cast(list[Queue], self._get(f"{API}/queues/"))

    def schedules(
        self, *, definition: str | None = None, current: bool = False
    ) -> Iterator[Schedule]:
        params = {"definition": definition, "current": "true" if current else None}
        return cast(Iterator[Schedule], self._pages(f"{API}/schedules/", params))

    def pause_schedule(self, schedule_id: int) -> Schedule:
        return cast(Schedule, self._post(f"{API}/schedules/{schedule_id}/pause/", {}))

    def resume_schedule(self, schedule_id: int) -> Schedule:
        return cast(Schedule, self._post(f"{API}/schedules/{schedule_id}/resume/", {}))

    def run_schedule(self, schedule_id: int) -> Instance:
        """Start an instance at the schedule's timer start event now."""
        return cast(Instance, self._post(f"{API}/schedules/{schedule_id}/run/", {}))

    def change_schedule(self, schedule_id: int, expression: str) -> Schedule:
        """A new cron, cycle (R/PT1H), date or duration for a deployed version."""
        body = {"expression": expression}
        return cast(Schedule, self._request("PATCH", f"{API}/schedules/{schedule_id}/", body=body))

    # -- batch operations (operators) ------------------------------------------------------

    def create_batch(
        self,
        operation: str,
        filter: dict[str, Any],
        arguments: dict[str, Any] | None = None,
        *,
        dry_run: bool = False,
    ) -> Batch | BatchPreview:
        """One operation ("suspend", "resume", "terminate", "cancel", "retry", "migrate",
        "delete_finished", "set_variables") on every instance `filter` selects (`{}`: all
        the operation applies to). Returns the queued `Batch` to poll with `get_batch`, or
        with `dry_run` a `BatchPreview` (counts and a sample; nothing changes). Not sent
        again after a timeout: the batch may have been created."""
        body: dict[str, Any] = {"operation": operation, "filter": filter, "dry_run": dry_run}
        if arguments is not None:
            body["arguments"] = arguments
        answer = self._post(f"{API}/batches/", body)
        return cast(BatchPreview, answer) if dry_run else cast(Batch, answer)

    def preview_batch(
        self, operation: str, filter: dict[str, Any], arguments: dict[str, Any] | None = None
    ) -> BatchPreview:
        """`create_batch(..., dry_run=True)`, typed as the preview it answers."""
        return cast(BatchPreview, self.create_batch(operation, filter, arguments, dry_run=True))

    def batches(self) -> Iterator[Batch]:
        """Batch operations, newest first (all pages)."""
        return cast(Iterator[Batch], self._pages(f"{API}/batches/"))

    def get_batch(self, batch_id: str) -> Batch:
        """A batch's progress: total, done, succeeded, skipped, failed, the first problems."""
        return cast(Batch, self._get(f"{API}/batches/{batch_id}/"))

    def batch_items(self, batch_id: str, *, outcome: str | None = None) -> Iterator[BatchItem]:
        """The batch's target instances and what it did to each; `outcome` "pending", "ok",
        "skipped" or "failed" picks some."""
        params = {"outcome": outcome}
        return cast(Iterator[BatchItem], self._pages(f"{API}/batches/{batch_id}/items/", params))

    def cancel_batch(self, batch_id: str) -> Batch:
        """Stop a batch between chunks (409 once it has finished)."""
        return cast(Batch, self._post(f"{API}/batches/{batch_id}/cancel/", {}))

    # -- outbound webhook subscriptions (operators) -----------------------------------------

    def webhook_subscriptions(self) -> Iterator[WebhookSubscription]:
        return cast(Iterator[WebhookSubscription], self._pages(f"{API}/webhook-subscriptions/"))

    def create_webhook_subscription(
        self,
        name: str,
        url: str,
        secret_name: str,
        event_types: Sequence[str],
        *,
        process_key: str = "",
        enabled: bool = True,
    ) -> WebhookSubscription:
        """Post instance events of `event_types` ("started", "completed", "incident",
        "task_created"; of every process, or of `process_key`) to `url`, signed with the
        secret named `secret_name` in Baton's secret store."""
        body = {
            "name": name,
            "url": url,
            "secret_name": secret_name,
            "event_types": list(event_types),
            "process_key": process_key,
            "enabled": enabled,
        }
        return cast(WebhookSubscription, self._post(f"{API}/webhook-subscriptions/", body))

    def delete_webhook_subscription(self, subscription_id: int) -> None:
        """Delete a subscription and its delivery log."""
        self._request("DELETE", f"{API}/webhook-subscriptions/{subscription_id}/")

    def webhook_deliveries(self, subscription_id: int) -> Iterator[WebhookDelivery]:
        """A subscription's delivery log, newest first (all pages)."""
        path = f"{API}/webhook-subscriptions/{subscription_id}/deliveries/"
        return cast(Iterator[WebhookDelivery], self._pages(path))

    # -- external tasks --------------------------------------------------------------------

    def fetch_and_lock(
        self,
        worker_id: str,
        topics: Sequence[Topic],
        *,
        max_tasks: int = 10,
        async_response_timeout: int = 0,
    ) -> list[ExternalTask]:
        """Lock up to `max_tasks` tasks of `topics`; with `async_response_timeout` (ms, at
        most 30 000) wait that long for one when none is there."""
        body = {
            "worker_id": worker_id,
            "max_tasks": max_tasks,
            "async_response_timeout": async_response_timeout,
            "topics": [topic.as_json() for topic in topics],
        }
        return [
            ExternalTask.from_json(item)
            for item in self._post(f"{EXTERNAL_TASKS}/fetch-and-lock/", body)
        ]

    def complete(self, task: ExternalTask, variables: dict[str, Any] | None = None) -> None:
        self._post(
            f"{EXTERNAL_TASKS}/{task.id}/complete/",
            {"worker_id": task.worker_id, "variables": variables or {}},
        )

    def failure(
        self,
        task: ExternalTask,
        error_message: str,
        *,
        error_details: str = "",
        retries: int | None = None,
        retry_timeout: int | None = None,
    ) -> None:
        """Report a failure. `retries` left (None: the diagram's policy decides; 0: an
        incident), `retry_timeout` ms before it may be fetched again."""
        body: dict[str, Any] = {
            "worker_id": task.worker_id,
            "error_message": error_message[:2000],
            "error_details": error_details[:8000],
        }
        if retries is not None:
            body["retries"] = retries
        if retry_timeout is not None:
            body["retry_timeout"] = retry_timeout
        self._post(f"{EXTERNAL_TASKS}/{task.id}/failure/", body)

    def bpmn_error(
        self,
        task: ExternalTask,
        error_code: str,
        error_message: str = "",
        variables: dict[str, Any] | None = None,
    ) -> None:
        self._post(
            f"{EXTERNAL_TASKS}/{task.id}/bpmn-error/",
            {
                "worker_id": task.worker_id,
                "error_code": error_code,
                "error_message": error_message,
                "variables": variables or {},
            },
        )

    def extend_lock(self, task: ExternalTask, new_duration: int) -> str:
        """The lock now runs `new_duration` ms from now; returns its new expiry."""
        body = {"worker_id": task.worker_id, "new_duration": new_duration}
        answer = self._post(f"{EXTERNAL_TASKS}/{task.id}/extend-lock/", body)
        return str(answer["lock_expiration_time"])

    def unlock(self, task: ExternalTask) -> None:
        self._post(f"{EXTERNAL_TASKS}/{task.id}/unlock/", {"worker_id": task.worker_id})

    def external_tasks(
        self,
        worker_id: str,
        topics: Sequence[Topic | str],
        *,
        max_tasks: int = 10,
        long_poll: int = 20_000,
    ) -> Iterator[ExternalTask]:
        """Every task of `topics` as it comes, long-polling between batches: `for task in
        client.external_tasks("w1", ["payments.charge"]): ...; client.complete(task, {...})`.
        Endless: break out of the loop to stop."""
        wanted = [Topic(t) if isinstance(t, str) else t for t in topics]
        while True:
            yield from self.fetch_and_lock(
                worker_id, wanted, max_tasks=max_tasks, async_response_timeout=long_poll
            )
