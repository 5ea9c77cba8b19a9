"""Errors the engine's services raise; the edges (API, views) turn them into 4xx answers."""
from typing import Any


class EngineError(Exception):
    """Base class: `status` is the HTTP status an edge should answer with."""

    status = 400
    title = "Bad request"

    def __init__(self, detail: str, *, errors: Any = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors

    def explained(self) -> str:
        """The detail with the field errors it carries, for a terminal or a log."""
        if isinstance(self.errors, dict) and self.errors:
            return f"{self.detail} " + "; ".join(f"{k}: {v}" for k, v in self.errors.items())
        return self.detail


class NotFound(EngineError):
    status = 404
    title = "Not found"


class Conflict(EngineError):
    """The target is not in a state that allows the operation (e.g. a completed task)."""

    status = 409
    title = "Conflict"


class InvalidInput(EngineError):
    status = 400
    title = "Invalid input"


class ScriptFailed(EngineError):
    """A diagram script or expression raised; the operation was rolled back."""

    status = 422
    title = "A diagram script failed"


class TaskScriptFailed(ScriptFailed):
    """A script or expression of one task failed while the engine wrote the instance (an
    assignment expression, a connector parameter). The engine fails that task and opens an
    incident instead of rolling back; `task` is the workflow's task (engine.bpmn)."""

    def __init__(self, detail: str, *, task: Any, errors: Any = None) -> None:
        super().__init__(detail, errors=errors)
        self.task = task
