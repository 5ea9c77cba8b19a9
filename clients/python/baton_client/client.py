"""The HTTP calls: one method per endpoint this client covers. Errors come back from Baton
as problem details (RFC 7807); they are raised as `ApiError`."""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

EXTERNAL_TASKS = "/api/v1/external-tasks"


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
    ) -> None:
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

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        response = self.http.post(path, json=body)
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
