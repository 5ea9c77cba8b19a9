"""Errors the engine's services raise; the edges (API, views) turn them into answers (the
API's HTTP statuses: `api.errors`)."""

from typing import Any


class EngineError(Exception):
    """Base class: the operation was refused and nothing changed."""

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
    """What the operation names does not exist (or the caller may not know it does)."""


class Conflict(EngineError):
    """The target is not in a state that allows the operation (e.g. a completed task)."""


class Unavailable(EngineError):
    """A service Baton depends on (the limits' Redis) cannot be reached, or Baton cannot do the
    operation as configured (a webhook whose secret is not declared); nothing changed, and
    the same request may succeed in a moment."""


class InvalidInput(EngineError):
    """The input breaks a rule of the process or of the operation."""


class ScriptFailed(EngineError):
    """A diagram script or expression raised; the operation was rolled back."""


class TaskScriptFailed(ScriptFailed):
    """A script or expression of one task failed while the engine wrote the instance (an
    assignment expression, a connector parameter). The engine fails that task and opens an
    incident instead of rolling back; `task` is the workflow's task (engine.bpmn)."""

    def __init__(self, detail: str, *, task: Any, errors: Any = None) -> None:
        super().__init__(detail, errors=errors)
        self.task = task


class NotAuthenticated(EngineError):
    """The caller did not prove who it is (a webhook delivery with a bad signature)."""
