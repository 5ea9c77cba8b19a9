"""One operation's run of a workflow: the workflow and what the operation learns on the way.

A `Run` is made for each operation on an instance (start, complete a task, apply a job
result, repair, ...) and passed explicitly to everything that runs or writes the workflow,
instead of keeping per-operation state on the workflow object itself.
"""

import time
from dataclasses import dataclass, field

from SpiffWorkflow.task import Task

from .budget import Budget, Limits
from .compensating import CompensationStart
from .element_runs import TaskStates, task_states
from .events import OutgoingEvent, Waits, outgoing_events, record_thrown_events, waiting_events
from .workflow import BatonWorkflow


@dataclass(eq=False)
class Run:
    workflow: BatonWorkflow
    # Tasks that failed during this operation and whose incident is not yet written.
    new_failures: list[Task] = field(default_factory=list)
    # Messages and signals thrown for other instances (ids stay stable across persists).
    thrown: list[OutgoingEvent] = field(default_factory=list)
    # How many automatic steps (and seconds of them) the operation may still run.
    budget: Budget = field(default_factory=Budget)
    _waits: Waits | None = None
    # The element tasks' states when the operation began, and when (engine.bpmn.element_runs).
    task_states: TaskStates = field(default_factory=dict)
    opened_at: float = field(default_factory=time.time)
    # The compensation handlers the operation started (the services audit each one).
    compensations: list[CompensationStart] = field(default_factory=list)

    def outgoing_events(self) -> list[OutgoingEvent]:
        """What the workflow threw out so far (the same ids on every call)."""
        return outgoing_events(self.workflow, self.thrown)

    def waits(self) -> Waits:
        """What the workflow waits for, computed once per write (see `forget_waits`)."""
        if self._waits is None:
            self._waits = waiting_events(self.workflow)
        return self._waits

    def forget_waits(self) -> None:
        """The workflow may have moved since `waits` was computed."""
        self._waits = None


def start_run(workflow: BatonWorkflow, limits: Limits | None = None) -> Run:
    """Begin an operation on `workflow` (just loaded or just created), within `limits`
    (engine.bpmn.budget: the defaults without)."""
    run = Run(workflow, budget=Budget(limits or Limits()), task_states=task_states(workflow))
    record_thrown_events(workflow, run.thrown)
    workflow.compensation_listener = run.compensations.append
    return run
