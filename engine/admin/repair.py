"""The repair actions of the instance page: each parses its form and calls one service.

A form the operator got wrong (JSON that does not parse, a choice that is gone) is shown again
on the instance page with what they typed and the error next to it. Repairs that cannot be
undone lightly (reset, skip, migrate, terminate, cancel) first show a confirmation page saying what
will happen; only its "yes" runs them. Refusals a service raises (a completed instance, a
missing reason) become a message and change nothing; a user outside the operators group gets
403 from the service.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.http import HttpRequest

from engine.exceptions import Conflict
from engine.models import HumanTask, ProcessInstance, ServiceJob
from engine.selectors import element_names_of, repair_choices
from engine.services import (
    Retried,
    cancel_instance,
    migrate_instance,
    plan_migration,
    reset_instance,
    resume_instance,
    retry_instance,
    set_variables,
    skip_task,
    suspend_instance,
    terminate_instance,
)

from .forms import MigrateForm, ReasonForm, ResetForm, SkipForm, VariablesForm

# The value of the confirmation page's "yes" button (name="confirmed").
CONFIRMED = "yes"


@dataclass(frozen=True)
class Confirmation:
    """What the confirmation page of a repair says before it runs."""

    question: str
    details: list[str] = field(default_factory=list)
    # The button that runs the repair, and whether it is a destructive one (drawn red).
    button: str = "Yes"
    danger: bool = False


@dataclass(frozen=True)
class Repair:
    """One repair: its form, what its confirmation page says (None: runs at once), and the
    call of its service, which returns the message shown after it."""

    form: Callable[[HttpRequest, ProcessInstance], forms.Form]
    run: Callable[[HttpRequest, ProcessInstance, dict[str, Any]], str]
    confirm: Callable[[HttpRequest, ProcessInstance, dict[str, Any]], Confirmation] | None = None
    # The name of the form on the instance page, where it is shown again when refused.
    page_form: str = ""
    # Fields asked on the confirmation page (the others travel hidden from the instance page).
    asked_on_confirmation: tuple[str, ...] = ()


def _name(instance: ProcessInstance, element_id: str) -> str:
    name = element_names_of(instance.definition_id).get(element_id)
    return f"“{name}” ({element_id})" if name and name != element_id else element_id


# -- forms ------------------------------------------------------------------------------------


def _no_form(request: HttpRequest, instance: ProcessInstance) -> forms.Form:
    return forms.Form(request.POST)


def _reason_form(request: HttpRequest, instance: ProcessInstance) -> forms.Form:
    return ReasonForm(request.POST)


def _variables_form(request: HttpRequest, instance: ProcessInstance) -> forms.Form:
    return VariablesForm(request.POST)


def _reset_form(request: HttpRequest, instance: ProcessInstance) -> forms.Form:
    targets = [(t.element_id, t.name) for t in repair_choices(instance)["reset_targets"]]
    return ResetForm(request.POST, targets=targets)


def _skip_form(request: HttpRequest, instance: ProcessInstance) -> forms.Form:
    tasks = [(t.task_id, t.name) for t in repair_choices(instance)["skippable"]]
    return SkipForm(request.POST, tasks=tasks)


def _migrate_form(request: HttpRequest, instance: ProcessInstance) -> forms.Form:
    return MigrateForm(request.POST, versions=repair_choices(instance)["versions"])


# -- services ---------------------------------------------------------------------------------


def _retried(outcome: Retried) -> str:
    """What the retry sent again: per job, the parameters it evaluated differently (names only,
    never values: a parameter may carry a secret from the secret store)."""
    lines = []
    for job in outcome.jobs:
        label = f"{job.element_name} ({job.element_id})" if job.element_name else job.element_id
        if job.changed_parameters:
            names = ", ".join(job.changed_parameters)
            lines.append(f"{label} is called again with changed parameters: {names}.")
        else:
            lines.append(f"{label} is called again with the same parameters.")
    return " ".join(lines)


def retry(request: HttpRequest, instance: ProcessInstance, data: dict[str, Any]) -> str:
    outcome = retry_instance(instance_id=str(instance.pk), actor=request.user)
    return f"The incident was retried. {_retried(outcome)}".strip()


def edit_variables(request: HttpRequest, instance: ProcessInstance, data: dict[str, Any]) -> str:
    submitted: dict[str, Any] = data["variables"]
    changed = {k: v for k, v in submitted.items() if instance.variables.get(k, object()) != v}
    removed = [name for name in instance.variables if name not in submitted]
    if data["retry"]:
        outcome = retry_instance(
            instance_id=str(instance.pk), actor=request.user, variables=changed, remove=removed
        )
        return f"The variables were saved and the incident retried. {_retried(outcome)}".strip()
    if not changed and not removed:
        return "The variables were already so; nothing changed."
    set_variables(instance_id=instance.pk, actor=request.user, variables=changed, remove=removed)
    return f"Saved {len(changed)} changed and {len(removed)} removed variable(s)."


def reset(request: HttpRequest, instance: ProcessInstance, data: dict[str, Any]) -> str:
    element_id = data["element_id"]
    reset_instance(instance_id=instance.pk, actor=request.user, element_id=element_id)
    return f"The instance was reset to {_name(instance, element_id)}."


def skip(request: HttpRequest, instance: ProcessInstance, data: dict[str, Any]) -> str:
    skip_task(
        instance_id=instance.pk,
        actor=request.user,
        task_id=data["task_id"],
        variables=data["variables"],
    )
    return "The task was skipped."


def reason_of(request: HttpRequest) -> str:
    form = ReasonForm(request.POST)
    return str(form.cleaned_data["reason"]) if form.is_valid() else ""


def suspend(request: HttpRequest, instance: ProcessInstance, data: dict[str, Any]) -> str:
    suspend_instance(instance_id=instance.pk, actor=request.user, reason=data["reason"])
    return "The instance is suspended."


def resume(request: HttpRequest, instance: ProcessInstance, data: dict[str, Any]) -> str:
    resume_instance(instance_id=instance.pk, actor=request.user)
    return "The instance was resumed."


def terminate(request: HttpRequest, instance: ProcessInstance, data: dict[str, Any]) -> str:
    terminate_instance(instance_id=instance.pk, actor=request.user, reason=data["reason"])
    return "The instance was terminated."


def cancel_with_compensation(
    request: HttpRequest, instance: ProcessInstance, data: dict[str, Any]
) -> str:
    cancelled = cancel_instance(instance_id=instance.pk, actor=request.user, reason=data["reason"])
    if cancelled.is_finished:
        return "The instance was cancelled: nothing it completed needed compensating."
    return (
        "The instance is being cancelled: the compensation of what it completed runs, and it "
        "is terminated when that is done."
    )


def migrate(request: HttpRequest, instance: ProcessInstance, data: dict[str, Any]) -> str:
    plan = migrate_instance(instance_id=instance.pk, actor=request.user, version=data["version"])
    return f"The instance now runs version {plan.to_version}."


# -- confirmations ----------------------------------------------------------------------------


def _open_work(instance: ProcessInstance) -> list[str]:
    tasks = instance.human_tasks.filter(status__in=HumanTask.ACTIVE_STATUSES).count()
    jobs = instance.jobs.filter(status__in=ServiceJob.OPEN_STATUSES).count()
    return [f"Open tasks now: {tasks}; service jobs not finished: {jobs}."]


def _confirm_reset(
    request: HttpRequest, instance: ProcessInstance, data: dict[str, Any]
) -> Confirmation:
    return Confirmation(
        question=f"Reset the instance to {_name(instance, data['element_id'])}?",
        details=[
            "The work done after it is undone: its open tasks and running jobs are cancelled "
            "(a late job result is dropped), and it runs again with the data it had then.",
            *_open_work(instance),
        ],
        button="Yes, reset",
    )


def _confirm_skip(
    request: HttpRequest, instance: ProcessInstance, data: dict[str, Any]
) -> Confirmation:
    task = next(
        (t for t in repair_choices(instance)["skippable"] if t.task_id == data["task_id"]), None
    )
    what = _name(instance, task.element_id) if task else "the task"
    result = data["variables"]
    return Confirmation(
        question=f"Skip {what} without running it?",
        details=[
            "It completes without its form, connector call or post-script; the instance moves "
            "on from there.",
            f"Its result: {json.dumps(result, ensure_ascii=False)}"
            if result
            else "Its result: nothing (no variables).",
        ],
        button="Yes, skip it",
    )


def _confirm_migrate(
    request: HttpRequest, instance: ProcessInstance, data: dict[str, Any]
) -> Confirmation:
    plan = plan_migration(instance_id=instance.pk, actor=request.user, version=data["version"])
    if not plan.possible:
        raise Conflict(" ".join(plan.blocking))  # nothing to confirm: the migration is refused
    moves = [
        f"{_name(instance, t['element_id'])} → {t['maps_to'] or 'no counterpart'}"
        for t in plan.tokens
    ]
    return Confirmation(
        question=f"Migrate the instance from version {plan.from_version} to version "
        f"{plan.to_version}?",
        details=[
            f"Version {plan.to_version} adds {', '.join(plan.added) or 'nothing'}, removes "
            f"{', '.join(plan.removed) or 'nothing'} and changes "
            f"{', '.join(plan.changed) or 'nothing'}.",
            *(f"Token: {move}" for move in moves),
        ],
        button=f"Yes, migrate to version {plan.to_version}",
    )


def _confirm_terminate(
    request: HttpRequest, instance: ProcessInstance, data: dict[str, Any]
) -> Confirmation:
    return Confirmation(
        question="Terminate the instance?",
        details=[
            "It ends where it stands: its open tasks and service jobs are cancelled. This "
            "cannot be undone.",
            *_open_work(instance),
            "Say why: the audit trail keeps the reason.",
        ],
        button="Yes, terminate",
        danger=True,
    )


def _confirm_cancel(
    request: HttpRequest, instance: ProcessInstance, data: dict[str, Any]
) -> Confirmation:
    return Confirmation(
        question="Cancel the instance with compensation?",
        details=[
            "Its open tasks and service jobs are cancelled, and the compensation handlers of "
            "the activities it completed run, the latest first (a booking is cancelled, a "
            "payment refunded, as the diagram says). When they are done, the instance is "
            "terminated; if nothing needs compensating, at once. This cannot be undone.",
            *_open_work(instance),
            "Say why: the audit trail keeps the reason.",
        ],
        button="Yes, cancel and compensate",
        danger=True,
    )


ACTIONS: dict[str, Repair] = {
    "retry": Repair(_no_form, retry),
    "variables": Repair(_variables_form, edit_variables, page_form="variables_form"),
    "reset": Repair(_reset_form, reset, _confirm_reset, page_form="reset_form"),
    "skip": Repair(_skip_form, skip, _confirm_skip, page_form="skip_form"),
    "suspend": Repair(_reason_form, suspend),
    "resume": Repair(_no_form, resume),
    "terminate": Repair(
        _reason_form, terminate, _confirm_terminate, asked_on_confirmation=("reason",)
    ),
    "cancel": Repair(
        _reason_form,
        cancel_with_compensation,
        _confirm_cancel,
        asked_on_confirmation=("reason",),
    ),
    "migrate": Repair(_migrate_form, migrate, _confirm_migrate),
}
