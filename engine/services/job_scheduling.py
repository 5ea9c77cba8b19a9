"""Writing the outbox: a pending ServiceJob for every parked connector task, in the same
transaction as the instance state, enqueued only after that transaction commits.

Parameters are stored evaluated, with the places of literal diagram text that names secrets
(`secret:NAME`) beside them: the worker resolves secrets there and nowhere else."""

import logging
import uuid
from functools import cache
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from engine.bpmn.connector_tasks import (
    ConnectorTaskMixin,
    ParamPath,
    evaluate_param_tree,
    may_be_external,
    param_leaves,
)
from engine.bpmn.scripting import ScriptError, describe_error
from engine.bpmn.types import Workflow, WorkflowError
from engine.bpmn.types import WorkflowTask as Task
from engine.bpmn.walks import started_connector_tasks
from engine.connectors import TASK_HEADERS_KEY, get_connector, secrets
from engine.connectors.connections import CONNECTION_PARAM, RESERVED_PARAMS
from engine.exceptions import TaskScriptFailed
from engine.jsonable import json_safe
from engine.models import ProcessInstance, ServiceJob
from engine.rows import column, insert_rows, table

from .external_task_queue import announce_external_task
from .handover import hand_over_job_on_commit

logger = logging.getLogger(__name__)


def _failed(task: Task, message: str) -> TaskScriptFailed:
    # The task fails and its instance goes to incident (see instance_store.persist_workflow).
    spec: ConnectorTaskMixin = task.task_spec
    return TaskScriptFailed(
        f"{spec.bpmn_id}: {message}", task=task, errors=[{"element_id": spec.bpmn_id}]
    )


def _literal_secret_paths(task: Task) -> list[ParamPath]:
    """Where literal text of the diagram names secrets. A secret named in an expression is
    refused: its value would come from whatever the expression computes."""
    spec: ConnectorTaskMixin = task.task_spec
    for reserved in (secrets.LITERALS_KEY, TASK_HEADERS_KEY, *RESERVED_PARAMS):
        if reserved in spec.connector_params:
            raise _failed(task, f"{reserved!r} is not a parameter name Baton allows.")
    paths = []
    for name, tree in spec.connector_params.items():
        for path, literal, text in param_leaves(tree, [name]):
            if not secrets.references(text):
                continue
            if not literal:
                where = ".".join(str(step) for step in path)
                raise _failed(
                    task,
                    (
                        f"the parameter {where} names a secret in an expression. Secrets "
                        "(secret:NAME) are resolved only in literal text: write the value as "
                        "plain text, e.g. Bearer secret:CRM_TOKEN."
                    ),
                )
            paths.append(path)
    return paths


def _check_literal_connection(task: Task) -> None:
    """A connection is named in literal diagram text: instance data must not choose whose
    credentials a call is made with."""
    spec: ConnectorTaskMixin = task.task_spec
    connection = spec.connector_params.get(CONNECTION_PARAM)
    if connection is None:
        return
    if not all(literal for _, literal, _ in param_leaves(connection, [CONNECTION_PARAM])):
        raise _failed(
            task,
            "the parameter connection is an expression. A connection is named in literal "
            "text (e.g. crm), never computed from instance data.",
        )


def evaluate_parameters(task: Task) -> dict[str, Any]:
    """The parameters to store for a parked connector task, evaluated from its data now (at
    scheduling, and again on an operator's retry). `TaskScriptFailed` when one cannot be."""
    spec: ConnectorTaskMixin = task.task_spec
    paths = _literal_secret_paths(task)
    _check_literal_connection(task)
    try:
        values = {
            name: evaluate_param_tree(task, tree) for name, tree in spec.connector_params.items()
        }
    except (WorkflowError, ScriptError) as exc:
        raise _failed(task, describe_error(exc)) from None
    stored = secrets.mark_literals(dict(json_safe(values)), paths)
    if getattr(spec, "task_headers", None):
        stored[TASK_HEADERS_KEY] = dict(spec.task_headers)
    return stored


_OPEN_JOB_FIELDS = ("pk", "spiff_task_id", "status", "kind")


@cache
def _open_jobs_read() -> str:
    """An instance's open jobs, (id, task id, status, kind): every job run asks it, so it is
    written once (engine.rows) rather than built by the ORM each time."""
    names = ", ".join(column(ServiceJob, name, "j") for name in _OPEN_JOB_FIELDS)
    # Only names from the models' metadata are put together here; the values are parameters.
    return (
        f"SELECT {names} FROM {table(ServiceJob)} AS j "  # noqa: S608
        f"WHERE {column(ServiceJob, 'instance', 'j')} = %s "
        f"AND {column(ServiceJob, 'status', 'j')} = ANY(%s)"
    )


def _open_jobs_of_parked_tasks(
    instance: ProcessInstance, parked_ids: set[uuid.UUID]
) -> list[tuple[uuid.UUID, str, str]]:
    """The instance's open jobs as (task id, status, kind); jobs whose task is no longer parked
    (reset, skipped, migrated away, interrupted by a boundary event) are cancelled, so that
    a late result of theirs is dropped as stale."""
    with connection.cursor() as cursor:
        cursor.execute(_open_jobs_read(), [instance.pk, list(ServiceJob.OPEN_STATUSES)])
        open_jobs = cursor.fetchall()
    orphaned = [job_id for job_id, task_id, _, _ in open_jobs if task_id not in parked_ids]
    if orphaned:
        ServiceJob.objects.filter(pk__in=orphaned).update(
            status=ServiceJob.Status.CANCELLED, updated_at=timezone.now()
        )
    return [
        (task_id, status, kind) for _, task_id, status, kind in open_jobs if task_id in parked_ids
    ]


def schedule_service_jobs(
    instance: ProcessInstance, workflow: Workflow, *, fresh: bool = False
) -> tuple[int, list[ServiceJob]]:
    """Write a pending job for every parked connector task that has none (one INSERT, after
    every parameter was evaluated); enqueue after commit.

    A task whose Camunda topic or job type names no registered connector gets an external
    job instead, which workers fetch through the API: nothing is enqueued for it.

    Returns the number of connector jobs that are still open (pending or running) for the
    instance (while an external task waits for its worker, the instance waits for the
    world), and the jobs written now.
    """
    parked = started_connector_tasks(workflow)
    open_jobs = [] if fresh else _open_jobs_of_parked_tasks(instance, {t.id for t in parked})
    owned = {spiff_task_id for spiff_task_id, _, _ in open_jobs}
    active = sum(
        1
        for _, status, kind in open_jobs
        if status in ServiceJob.ACTIVE_STATUSES and kind == ServiceJob.Kind.CONNECTOR
    )
    jobs: list[ServiceJob] = []
    for task in parked:
        if task.id in owned:
            continue
        spec: ConnectorTaskMixin = task.task_spec
        job_id = uuid.uuid4()
        external = get_connector(spec.connector) is None and may_be_external(spec)
        jobs.append(
            ServiceJob(
                id=job_id,
                instance=instance,
                spiff_task_id=task.id,
                element_id=spec.bpmn_id,
                connector=spec.connector,
                kind=ServiceJob.Kind.EXTERNAL if external else ServiceJob.Kind.CONNECTOR,
                parameters=evaluate_parameters(task),
                max_attempts=int(
                    spec.retry.get("max_attempts") or settings.BATON_JOB_DEFAULT_ATTEMPTS
                ),
                retry_policy={k: v for k, v in spec.retry.items() if k != "max_attempts"},
                next_attempt_at=timezone.now(),
                idempotency_key=f"baton-job-{job_id}",
            )
        )
    insert_rows(jobs)
    for job in jobs:
        if job.kind == ServiceJob.Kind.EXTERNAL:
            announce_external_task(job.connector)
            continue
        hand_over_job_on_commit(str(job.id))
        active += 1
    return active, jobs
