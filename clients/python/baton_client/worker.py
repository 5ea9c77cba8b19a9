"""A worker loop: handlers per topic; each fetched task goes to its topic's handler, whose
returned variables complete it. `BpmnError` throws a BPMN error from the task (a boundary
event catches it); any other exception reports a failure (the diagram's retry policy
decides when it comes back, and when none are left the instance goes to incident)."""

import logging
import threading
import traceback
from collections.abc import Callable
from typing import Any

from .client import ApiError, BatonClient, ExternalTask, Topic

logger = logging.getLogger(__name__)

Handler = Callable[[ExternalTask], dict[str, Any] | None]


class BpmnError(Exception):
    """Raise in a handler for a business error the diagram handles (a bpmn:error code)."""

    def __init__(
        self, code: str, message: str = "", variables: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message or code)
        self.code = code
        self.message = message
        self.variables = variables or {}


class Worker:
    def __init__(
        self,
        client: BatonClient,
        *,
        worker_id: str,
        max_tasks: int = 10,
        long_poll: int = 20_000,
    ) -> None:
        self.client = client
        self.worker_id = worker_id
        self.max_tasks = max_tasks
        self.long_poll = long_poll
        self._topics: dict[str, Topic] = {}
        self._handlers: dict[str, Handler] = {}
        self._stop = threading.Event()

    def topic(
        self, name: str, *, lock_duration: int = 60_000, variables: list[str] | None = None
    ) -> Callable[[Handler], Handler]:
        """Decorator: `handler(task)` handles the tasks of topic `name`."""

        def register(handler: Handler) -> Handler:
            self._topics[name] = Topic(name, lock_duration, variables)
            self._handlers[name] = handler
            return handler

        return register

    def stop(self) -> None:
        """End `run()` after the current batch."""
        self._stop.set()

    def handle(self, task: ExternalTask) -> None:
        """Run the task's handler and report its outcome to Baton."""
        handler = self._handlers[task.topic_name]
        try:
            variables = handler(task)
        except BpmnError as error:
            self.client.bpmn_error(task, error.code, error.message, error.variables)
        except Exception as exc:  # a handler's failure is reported, not fatal
            logger.exception("Handler of %s failed", task.topic_name)
            self.client.failure(
                task, f"{type(exc).__name__}: {exc}", error_details=traceback.format_exc()
            )
        else:
            self.client.complete(task, variables or {})

    def run_once(self) -> int:
        """Fetch one batch (long-polling) and handle it; how many tasks it had."""
        tasks = self.client.fetch_and_lock(
            self.worker_id,
            list(self._topics.values()),
            max_tasks=self.max_tasks,
            async_response_timeout=self.long_poll,
        )
        for task in tasks:
            try:
                self.handle(task)
            except ApiError as exc:  # e.g. 409: its lock ran out and another worker has it
                logger.warning("Task %s: %s", task.id, exc)
        return len(tasks)

    def run(self, *, stop_after: int | None = None) -> int:
        """Fetch and handle until `stop()` (or `stop_after` tasks); how many were handled."""
        if not self._topics:
            raise ValueError("Register a handler with @worker.topic(...) first.")
        handled = 0
        while not self._stop.is_set() and (stop_after is None or handled < stop_after):
            handled += self.run_once()
        return handled
