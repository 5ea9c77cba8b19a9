"""Operator actions on a whole instance: suspend, resume, terminate, cancel with compensation,
change its variables.

Each checks the operators group, runs under the instance row lock and writes an audit event
with the actor.
"""

import uuid
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from engine.actors import Person, as_user
from engine.bpmn.compensation import begin_cancel_with_compensation
from engine.bpmn.failures import run_engine_steps
from engine.bpmn.repair import cancel
from engine.exceptions import Conflict
from engine.models import HumanTask, ProcessInstance, ServiceJob

from .audit import record_event
from .event_delivery import apply_deferred_events
from .handover import hand_over_job_on_commit
from .incidents import settle_incident
from .instance_status import decide_status, has_active_jobs, has_dead_jobs
from .instance_store import lock_instance, lock_unfinished, open_run, persist_workflow
from .job_outcomes import apply_deferred_outcomes
from .operators import require_operator
from .reasons import checked_reason
from .running import running_as
from .variables import change_workflow_variables, check_variables

Status = ProcessInstance.Status


def suspend_instance(
    *, instance_id: uuid.UUID | str, actor: Person, reason: str = ""
) -> ProcessInstance:
    """Stop the instance from moving: no task completion, job run or job result applies until
    it is resumed. Results that arrive meanwhile are kept. Suspending twice changes nothing."""
    require_operator(actor, "suspend")
    reason = checked_reason(reason, "suspend the instance", required=False)
    with transaction.atomic(durable=True):
        instance = lock_unfinished(instance_id, "suspended")
        if instance.status == Status.SUSPENDED:
            return instance
        record_event(
            instance,
            "suspended",
            actor=actor,
            payload={"reason": reason, "previous_status": instance.status},
        )
        instance.status = Status.SUSPENDED
        instance.save(update_fields=["status", "updated_at"])
    return instance


def resume_instance(*, instance_id: uuid.UUID | str, actor: Person) -> ProcessInstance:
    """Let a suspended instance move again: apply job results that arrived meanwhile and
    enqueue the jobs that waited."""
    require_operator(actor, "resume")
    with transaction.atomic(durable=True):
        instance = lock_instance(instance_id)
        if instance.status != Status.SUSPENDED:
            raise Conflict(f"The instance is {instance.status}, not suspended.")
        instance.status = decide_status(
            instance.status,
            resuming=True,
            incident=bool(instance.incident) or has_dead_jobs(instance),
            active_jobs=has_active_jobs(instance),
        )
        instance.save(update_fields=["status", "updated_at"])
        record_event(instance, "resumed", actor=actor)
        apply_deferred_outcomes(instance)
        apply_deferred_events(instance)
        for job_id in instance.jobs.filter(
            status=ServiceJob.Status.PENDING, kind=ServiceJob.Kind.CONNECTOR
        ).values_list("id", flat=True):
            hand_over_job_on_commit(str(job_id))
    return instance


def terminate_instance(
    *, instance_id: uuid.UUID | str, actor: Person, reason: str
) -> ProcessInstance:
    """End the instance where it stands: open tasks and waiting jobs are cancelled. It cannot
    be undone, so the operator says why (the audit trail keeps the reason)."""
    require_operator(actor, "terminate")
    with transaction.atomic(durable=True):
        instance = lock_unfinished(instance_id, "terminated")
        reason = checked_reason(reason, "terminate the instance", required=True)
        run = open_run(instance)
        cancel(run.workflow)
        instance.human_tasks.filter(status__in=HumanTask.ACTIVE_STATUSES).update(
            status=HumanTask.Status.CANCELLED
        )
        instance.jobs.filter(status__in=ServiceJob.OPEN_STATUSES).update(
            status=ServiceJob.Status.CANCELLED, updated_at=timezone.now()
        )
        instance.status = Status.TERMINATED
        instance.completed_at = timezone.now()
        persist_workflow(instance, run, actor=actor)
        record_event(instance, "terminated", actor=actor, payload={"reason": reason})
    return instance


def cancel_instance(*, instance_id: uuid.UUID | str, actor: Person, reason: str) -> ProcessInstance:
    """Cancel the instance and undo what it did: its open tasks and jobs are cancelled and the
    compensation handlers of its completed activities run, latest first, as ordinary work
    (service handlers are jobs with their retries and incidents). When the last handler has
    finished, the instance is terminated (engine.services.instance_status), with the asker as
    the actor; with nothing to compensate that is at once. Operators only; a reason is
    required; refused (Conflict) when `ProcessInstance.cancel_refusal` says so: finished,
    already being cancelled, or suspended (its handlers could not run: resume it first)."""
    require_operator(actor, "cancel")
    with transaction.atomic(durable=True):
        instance = lock_instance(instance_id)
        refusal = instance.cancel_refusal
        if refusal is not None:
            raise Conflict(refusal)
        reason = checked_reason(reason, "cancel the instance", required=True)
        instance.cancel_requested_at = timezone.now()
        instance.cancel_requested_by = as_user(actor)
        instance.cancel_reason = reason
        run = open_run(instance)
        with running_as(actor, instance):
            handlers = begin_cancel_with_compensation(run)
            run_engine_steps(run)
        record_event(
            instance,
            "cancel_requested",
            actor=actor,
            payload={
                "reason": reason,
                "handlers": handlers,
                "detail": f"{handlers} compensation handler(s) started."
                if handlers
                else "Nothing completed has a compensation handler: no compensation needed.",
            },
        )
        # The cancelled tokens' tasks and jobs are cancelled by the projection and the job
        # scheduling as the workflow is written; their incident goes with them.
        settle_incident(instance, run.workflow)
        persist_workflow(instance, run, actor=actor)
    return instance


def set_variables(
    *,
    instance_id: uuid.UUID | str,
    actor: Person,
    variables: dict[str, Any],
    remove: Iterable[str] = (),
) -> ProcessInstance:
    """Merge `variables` into the data of every active task of the instance (and its
    workflow data), and drop the names in `remove`, as an operator's correction. The audit
    event keeps before and after. Invalid input changes nothing."""
    require_operator(actor, "edit the variables of")
    variables, names = check_variables(variables, remove)
    with transaction.atomic(durable=True):
        instance = lock_unfinished(instance_id, "changed")
        run = open_run(instance)
        if change_workflow_variables(
            instance, run.workflow, actor=actor, variables=variables, remove=names
        ):
            persist_workflow(instance, run, actor=actor)
    return instance
