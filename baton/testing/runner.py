"""Running diagrams in a test through Baton's real services, on the test database.

`ProcessTester` (the `baton` fixture) deploys diagrams, starts instances, sends messages and
signals and moves the clock; `ProcessRun` is one instance: complete its user tasks by
element id, and ask which path it took. Everything a worker or the timer beat would do
(service jobs, event deliveries, due timers) runs in-process after each step, until the
instances wait for a person, for a time that has not come, or for the world
(`ProcessTester.settle`). Service jobs answer with the test's mocks (baton.testing.mocks).
Nothing reaches the real broker meanwhile (baton.testing.broker).
"""

import datetime
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import time_machine
from django.contrib.auth.models import User

from engine.connectors import substituted_connectors
from engine.models import EventDelivery, HumanTask, ProcessInstance, ServiceJob
from engine.selectors.process_paths import (
    StepRun,
    definition_graph,
    element_runs,
    flows_taken,
)
from engine.services import (
    broadcast_signal,
    cancel_instance,
    complete_human_task,
    correlate_message,
    start_instance,
)
from engine.services.event_outbox import deliver_events
from engine.services.job_runs import JOB_RUNNABLE_INSTANCE_STATUSES, execute_service_job
from engine.services.messages import MessageResult
from engine.services.timers import fire_due_timers
from processes.services import deploy
from processes.validation import UploadedFile

from .broker import messages_kept_in_process
from .mocks import _UNSET, Mocks, NotMocked, answer_of, not_mocked_message

# Rounds of in-process work after one step; a diagram that keeps making work beyond this
# (a timer cycle that is always due) stops the test instead of hanging it.
MAX_SETTLE_ROUNDS = 500
DEPLOYABLE = {".bpmn", ".dmn", ".json"}


class Check:
    """The answer of a path assertion: true or false, and a repr that says why, which pytest
    shows when `assert run.passed(...)` fails."""

    def __init__(self, ok: bool, explanation: str) -> None:
        self.ok = ok
        self.explanation = explanation

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return self.explanation


class ProcessRun:
    """One process instance in a test."""

    def __init__(self, tester: "ProcessTester", instance_id: uuid.UUID) -> None:
        self.tester = tester
        self.id = instance_id

    @property
    def instance(self) -> ProcessInstance:
        return ProcessInstance.objects.select_related("definition").get(pk=self.id)

    @property
    def status(self) -> str:
        return str(self.instance.status)

    @property
    def variables(self) -> dict[str, Any]:
        return dict(self.instance.variables)

    @property
    def incident(self) -> Any:
        return self.instance.incident

    # --- acting --------------------------------------------------------------------------

    def complete(
        self, element_id: str, data: dict[str, Any] | None = None, *, user: User | None = None
    ) -> "ProcessRun":
        """Submit the open user task `element_id` with `data` (its form's fields), then run
        on to the next wait. Fails the test when no such task is open."""
        task = self.open_task(element_id)
        if task is None:
            raise AssertionError(
                f"No open task {element_id!r}; open tasks: {self.open_tasks()}, "
                f"status {self.status}, path {self.path}"
            )
        with self.tester.engine():
            complete_human_task(task_id=task.id, user=user or self.tester.user, variables=data)
        self.tester.settle()
        return self

    def cancel(
        self, reason: str = "cancelled by a test", *, user: User | None = None
    ) -> "ProcessRun":
        """Cancel the instance with compensation (as `POST .../cancel/` does): its open work
        stops and the compensation handlers of what it completed run, then it is terminated."""
        with self.tester.engine():
            cancel_instance(instance_id=self.id, actor=user or self.tester.user, reason=reason)
        self.tester.settle()
        return self

    def mock(self, name: str, result: Any = _UNSET, **kwargs: Any) -> "ProcessRun":
        """Same as `ProcessTester.mock` (mocks belong to the test, not to one instance)."""
        self.tester.mock(name, result, **kwargs)
        return self

    # --- looking -------------------------------------------------------------------------

    def open_task(self, element_id: str) -> HumanTask | None:
        return (
            HumanTask.objects.filter(
                instance_id=self.id, element_id=element_id, status__in=HumanTask.ACTIVE_STATUSES
            )
            .order_by("created_at", "pk")
            .first()
        )

    def open_tasks(self) -> list[str]:
        """Element ids of the user tasks waiting for a person, oldest first."""
        return list(
            HumanTask.objects.filter(instance_id=self.id, status__in=HumanTask.ACTIVE_STATUSES)
            .order_by("created_at", "pk")
            .values_list("element_id", flat=True)
        )

    def runs(self) -> list[StepRun]:
        return element_runs(self.id)

    @property
    def path(self) -> list[str]:
        """The element ids the instance entered, in order (an element entered twice is
        listed twice)."""
        return [run.element_id for run in self.runs()]

    @property
    def flows(self) -> set[str]:
        """The ids of the sequence flows the instance went along."""
        return flows_taken(definition_graph(self.instance.definition_id), self.runs())

    def passed(self, *element_ids: str) -> Check:
        """Whether the instance entered these elements, in this order (others in between)."""
        path = self.path
        position = 0
        for element_id in element_ids:
            try:
                position = path.index(element_id, position) + 1
            except ValueError:
                return Check(False, f"passed{element_ids} is false: the path was {path}")
        return Check(True, f"passed{element_ids}")

    def waiting_at(self, element_id: str) -> Check:
        """Whether the instance is in `element_id` now (a task waiting, a timer, a message)."""
        waiting = [run.element_id for run in self.runs() if run.ended_at is None]
        return Check(
            element_id in waiting,
            f"waiting_at({element_id!r}) is {element_id in waiting}: waiting at {waiting}, "
            f"status {self.status}",
        )

    def ended_at(self, element_id: str) -> Check:
        """Whether the instance completed, having reached the end event `element_id`."""
        status = self.status
        reached = any(
            run.element_id == element_id and run.outcome == "completed" for run in self.runs()
        )
        ok = status == ProcessInstance.Status.COMPLETED and reached
        return Check(
            ok, f"ended_at({element_id!r}) is {ok}: status {status}, the path was {self.path}"
        )

    def jobs(self, element_id: str | None = None) -> list[ServiceJob]:
        jobs = ServiceJob.objects.filter(instance_id=self.id).order_by("created_at", "pk")
        return list(jobs.filter(element_id=element_id) if element_id else jobs)

    def __repr__(self) -> str:
        return f"<ProcessRun {self.id} {self.status} path={self.path}>"


class ProcessTester:
    """A test's handle on Baton: the `baton` fixture of baton.testing.plugin."""

    def __init__(self, user: User, *, on_finish: Callable[["ProcessTester"], None] | None = None):
        self.user = user
        self.mocks = Mocks()
        self.runs: list[ProcessRun] = []
        self.started_at = datetime.datetime.now(datetime.UTC)
        self._on_finish = on_finish
        self._travel = time_machine.travel(self.started_at, tick=True)
        self._clock = self._travel.start()
        # The workers' part runs here (settle): the messages that hand it over stay here too.
        self._messages = ExitStack()
        self._messages.enter_context(messages_kept_in_process())

    def finish(self) -> None:
        try:
            if self._on_finish is not None:
                self._on_finish(self)
        finally:
            self._messages.close()
            self._travel.stop()

    @contextmanager
    def engine(self) -> Iterator[None]:
        """The engine's connectors, with this test's mocks standing in."""
        with substituted_connectors(self.mocks.lookup):
            yield

    # --- diagrams ------------------------------------------------------------------------

    def load(self, *paths: str | Path, name: str = "") -> list[str]:
        """Deploy diagram files (BPMN, DMN, JSON form schemas; a folder: every such file in
        it). Returns the keys of the processes deployed."""
        files: list[UploadedFile] = []
        for path in map(Path, paths):
            found = sorted(path.iterdir()) if path.is_dir() else [path]
            files += [
                UploadedFile(p.name, p.read_bytes())
                for p in found
                if p.suffix in DEPLOYABLE
                and not p.name.startswith("test_")
                and p.name != "process_model.json"
            ]
        return self._deploy(files, name or ", ".join(str(p) for p in paths))

    def load_xml(self, bpmn_xml: str, file_name: str = "diagram.bpmn") -> list[str]:
        """Deploy a diagram given as text."""
        return self._deploy([UploadedFile(file_name, bpmn_xml.encode())], file_name)

    def _deploy(self, files: list[UploadedFile], name: str) -> list[str]:
        if not files:
            raise AssertionError(f"No diagram files in {name}")
        result = deploy(name=name[:200], files=files, actor=None)
        return sorted({d.key for d in result.definitions})

    # --- mocks ---------------------------------------------------------------------------

    def mock(
        self,
        name: str,
        result: Any = _UNSET,
        *,
        error: str = "",
        message: str = "",
        details: Any = None,
        transient: str = "",
        handler: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        """Answer calls of connector `name` (or of the service task with element id `name`)
        with `result`, a BPMN error `error=` (code), a transient failure `transient=`
        (message), or `handler(params)`. Declare a topic that no connector is registered for
        before starting: the mock makes it a connector instead of an external task."""
        self.mocks.add(
            name,
            answer_of(
                result,
                error=error,
                message=message,
                details=details,
                transient=transient,
                handler=handler,
            ),
        )

    def use_real_connector(self, name: str) -> None:
        """Let connector `name` run for real, in-process (a pure one such as `transform`)."""
        self.mocks.real.add(name)

    # --- starting and events -------------------------------------------------------------

    def start(
        self,
        key: str,
        variables: dict[str, Any] | None = None,
        *,
        business_key: str | None = None,
        user: User | None = None,
    ) -> ProcessRun:
        with self.engine():
            instance = start_instance(
                key=key, variables=variables, business_key=business_key, actor=user or self.user
            )
        run = ProcessRun(self, instance.id)
        self.runs.append(run)
        self.settle()
        return run

    def send_message(
        self,
        name: str,
        variables: dict[str, Any] | None = None,
        *,
        correlation_keys: dict[str, Any] | None = None,
        business_key: str | None = None,
    ) -> MessageResult:
        with self.engine():
            result = correlate_message(
                name=name,
                actor=self.user,
                variables=variables,
                correlation_keys=correlation_keys,
                business_key=business_key,
            )
        if result.outcome == "started":
            self.runs.append(ProcessRun(self, uuid.UUID(result.body["instance"])))
        self.settle()
        return result

    def send_signal(self, name: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        with self.engine():
            result = broadcast_signal(name=name, actor=self.user, variables=variables)
        self.settle()
        return result

    # --- time ----------------------------------------------------------------------------

    def now(self) -> datetime.datetime:
        return datetime.datetime.now(datetime.UTC)

    def advance(self, delta: datetime.timedelta | None = None, **kwargs: float) -> None:
        """Move the clock of this test process ahead (`advance(hours=2)`), then fire what
        has become due: timers, retries of service jobs. Nothing sleeps."""
        self._clock.shift(delta if delta is not None else datetime.timedelta(**kwargs))
        self.settle()

    # --- the workers' part, in-process ---------------------------------------------------

    def settle(self) -> None:
        """Do what workers and the timer beat would do, until nothing is due."""
        with self.engine():
            for _ in range(MAX_SETTLE_ROUNDS):
                if not (self._deliver_events() | self._run_jobs() | bool(fire_due_timers())):
                    return
        raise AssertionError(
            f"The diagrams kept making work for {MAX_SETTLE_ROUNDS} rounds without waiting."
        )

    def _deliver_events(self) -> bool:
        due = [
            str(i)
            for i in EventDelivery.objects.filter(
                status=EventDelivery.Status.PENDING, next_attempt_at__lte=self.now()
            )
            .order_by("next_attempt_at", "pk")
            .values_list("id", flat=True)
        ]
        deliver_events(due)
        return bool(due)

    def _run_jobs(self) -> bool:
        now = self.now()
        due = list(
            ServiceJob.objects.filter(
                kind=ServiceJob.Kind.CONNECTOR,
                status=ServiceJob.Status.PENDING,
                next_attempt_at__lte=now,
                instance__status__in=JOB_RUNNABLE_INSTANCE_STATUSES,
            )
            .order_by("next_attempt_at", "pk")
            .values_list("id", "connector", "element_id")
        )
        for job_id, connector, element_id in due:
            if connector not in self.mocks.real and not self.mocks.covers(connector, element_id):
                raise NotMocked(not_mocked_message(connector, element_id))
            execute_service_job(str(job_id), at=now)
        return bool(due)
