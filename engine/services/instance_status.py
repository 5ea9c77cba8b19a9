"""The one rule that decides an instance's status.

Every operation that may change the status (writing the workflow, resuming, opening a job
incident, an operator's retry or repair) asks `decide_status` with what it knows. Only an
operator's suspend and terminate (lifecycle) set a status by decree; `decide_status` then
keeps it. An operator's cancel with compensation decrees nothing: the instance runs its
compensation handlers as usual, and the workflow's end then makes it terminated.
"""

from engine.models import ProcessInstance, ServiceJob

Status = ProcessInstance.Status


def decide_status(
    current: str,
    *,
    completed: bool = False,
    incident: bool = False,
    active_jobs: bool = False,
    resuming: bool = False,
    cancelling: bool = False,
) -> str:
    """The status of an instance whose stored status is `current`:

    - terminated stays terminated (a cancelled workflow also counts as completed);
    - a completed workflow is completed, or terminated when the instance is being cancelled
      (`cancelling`: its compensation has run);
    - a suspended instance stays suspended until it is resumed (`resuming`);
    - an open incident (a failed task or a dead job) is an incident;
    - otherwise it is running while the engine has work in flight (`active_jobs`: pending or
      running service jobs) and waiting for the world when it has none.
    """
    if current == Status.TERMINATED:
        return Status.TERMINATED
    if completed:
        return Status.TERMINATED if cancelling else Status.COMPLETED
    if current == Status.SUSPENDED and not resuming:
        return Status.SUSPENDED
    if incident:
        return Status.INCIDENT
    return Status.RUNNING if active_jobs else Status.WAITING


def has_active_jobs(instance: ProcessInstance) -> bool:
    """Connector jobs in flight (an external task waits for its worker: the instance waits)."""
    return instance.jobs.filter(
        status__in=ServiceJob.ACTIVE_STATUSES, kind=ServiceJob.Kind.CONNECTOR
    ).exists()


def has_dead_jobs(instance: ProcessInstance) -> bool:
    return instance.jobs.filter(status=ServiceJob.Status.DEAD).exists()
