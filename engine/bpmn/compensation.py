"""Cancelling an instance with compensation, for the services (the machinery itself is in
engine.bpmn.compensating)."""

from typing import Any

from .compensating import CANCEL, begin, compensable_entries
from .compensating import is_compensating as _is_compensating
from .repair import cancel
from .run import Run


def begin_cancel_with_compensation(run: Run) -> int:
    """Cancel every unfinished token of the instance (as terminate does) and start the
    compensation handlers of every activity that completed, all scopes, in reverse order of
    completion (a completed subprocess compensates its inner activities, or runs its
    compensation event subprocess; what completed inside a subprocess that was still running
    is compensated too). Returns how many handlers are queued to run, one after the other
    (0: nothing to compensate, the workflow is simply cancelled). Afterwards ordinary engine
    steps run the handlers (service-task handlers become jobs as usual); the workflow is
    completed once the last handler finished, and what the handlers changed is in its data."""
    workflow = run.workflow
    cancel(workflow)
    entries = compensable_entries(workflow, cancelled_scopes=True)
    if not entries:
        return 0
    count = len(entries)  # the queue is consumed as the handlers start
    workflow.completed = False  # it completes when the last handler has finished
    begin(workflow.task_tree, CANCEL, entries, wait=True)
    return count


def is_compensating(workflow: Any) -> bool:
    """Whether compensation handlers of the workflow are still to run (or running)."""
    return _is_compensating(workflow)
