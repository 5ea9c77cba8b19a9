"""Writing the outbox: a pending ServiceJob for every parked connector task, in the same
transaction as the instance state, enqueued only after that transaction commits."""
import logging
import uuid
from typing import Any

from django.conf import settings
from django.utils import timezone
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from engine.bpmn.connector_tasks import ConnectorTaskMixin, evaluate_param_tree
from engine.bpmn.scripting import ScriptError, describe_error
from engine.exceptions import TaskScriptFailed
from engine.jsonable import json_safe
from engine.models import ProcessInstance, ServiceJob
from engine.queueing import enqueue_service_job_on_commit

logger = logging.getLogger(__name__)
ACTIVE_JOB_STATUSES = (ServiceJob.Status.PENDING, ServiceJob.Status.RUNNING)


def started_connector_tasks(workflow: BpmnWorkflow) -> list[Task]:
    tasks = workflow.get_tasks(state=TaskState.STARTED)
    for subprocess in workflow.subprocesses.values():
        tasks.extend(subprocess.get_tasks(state=TaskState.STARTED))
    return [t for t in tasks if isinstance(t.task_spec, ConnectorTaskMixin)]


def _evaluate_parameters(task: Task) -> dict[str, Any]:
    spec: ConnectorTaskMixin = task.task_spec
    try:
        values = {
            name: evaluate_param_tree(task, tree) for name, tree in spec.connector_params.items()
        }
    except (SpiffWorkflowException, ScriptError) as exc:
        # The task fails and its instance goes to incident (see execution.persist_workflow).
        raise TaskScriptFailed(
            f"{spec.bpmn_id}: {describe_error(exc)}", task=task,
            errors=[{"element_id": spec.bpmn_id}],
        ) from None
    return dict(json_safe(values))


def _cancel_interrupted(
    instance: ProcessInstance, open_jobs: list[tuple[Any, str]], parked: set[Any]
) -> int:
    """Cancel the waiting or running jobs whose task no longer waits for them (a boundary
    timer, message or signal interrupted it): the call is not wanted any more, and a result
    that still arrives is stale. Returns how many were cancelled."""
    interrupted = [task_id for task_id, status in open_jobs
                   if task_id not in parked and status in ACTIVE_JOB_STATUSES]
    if not interrupted:
        return 0
    return instance.jobs.filter(spiff_task_id__in=interrupted, status__in=ACTIVE_JOB_STATUSES
                                ).update(status=ServiceJob.Status.CANCELLED,
                                         updated_at=timezone.now())


def schedule_service_jobs(
    instance: ProcessInstance, workflow: BpmnWorkflow, *, fresh: bool = False
) -> int:
    """Write a pending job for every parked connector task that has none; enqueue after commit.

    Returns the number of jobs that are still open (pending or running) for the instance.
    """
    parked = started_connector_tasks(workflow)
    open_jobs = [] if fresh else list(
        instance.jobs.filter(status__in=ServiceJob.OPEN_STATUSES).values_list(
            "spiff_task_id", "status"
        )
    )
    owned = {spiff_task_id for spiff_task_id, _ in open_jobs}
    active = sum(1 for _, status in open_jobs if status in ACTIVE_JOB_STATUSES)
    active -= _cancel_interrupted(instance, open_jobs, {task.id for task in parked})
    for task in parked:
        if task.id in owned:
            continue
        spec: ConnectorTaskMixin = task.task_spec
        job_id = uuid.uuid4()
        ServiceJob.objects.create(
            id=job_id,
            instance=instance,
            spiff_task_id=task.id,
            element_id=spec.bpmn_id,
            connector=spec.connector,
            parameters=_evaluate_parameters(task),
            max_attempts=int(spec.retry.get("max_attempts") or settings.BATON_JOB_DEFAULT_ATTEMPTS),
            retry_policy={k: v for k, v in spec.retry.items() if k != "max_attempts"},
            next_attempt_at=timezone.now(),
            idempotency_key=f"baton-job-{job_id}",
        )
        enqueue_service_job_on_commit(str(job_id))
        active += 1
    return active


