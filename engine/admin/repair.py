"""The repair actions of the instance page: each parses its form and calls one service.

Refusals a service raises (a completed instance, an invalid element) become an error message
on the page and change nothing; a user outside the operators group gets 403 from the service.
"""

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import HttpRequest

from engine.exceptions import EngineError
from engine.models import ProcessInstance
from engine.selectors import repair_choices
from engine.services import (
    Retried,
    migrate_instance,
    reset_instance,
    resume_instance,
    retry_instance,
    set_variables,
    skip_task,
    suspend_instance,
    terminate_instance,
)

from .forms import MigrateForm, ReasonForm, ResetForm, SkipForm, VariablesForm

RepairAction = Callable[[HttpRequest, ProcessInstance], str]


def _form_errors(form: Any) -> str:
    return " ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items())


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


def retry(request: HttpRequest, instance: ProcessInstance) -> str:
    outcome = retry_instance(instance_id=str(instance.pk), actor=request.user)
    return f"The incident was retried. {_retried(outcome)}".strip()


def edit_variables(request: HttpRequest, instance: ProcessInstance) -> str:
    form = VariablesForm(request.POST)
    if not form.is_valid():
        raise EngineError(f"Nothing was changed. {_form_errors(form)}")
    submitted: dict[str, Any] = form.cleaned_data["variables"]
    changed = {k: v for k, v in submitted.items() if instance.variables.get(k, object()) != v}
    removed = [name for name in instance.variables if name not in submitted]
    if form.cleaned_data["retry"]:
        outcome = retry_instance(
            instance_id=str(instance.pk), actor=request.user, variables=changed, remove=removed
        )
        return f"The variables were saved and the incident retried. {_retried(outcome)}".strip()
    if not changed and not removed:
        return "The variables were already so; nothing changed."
    set_variables(instance_id=instance.pk, actor=request.user, variables=changed, remove=removed)
    return f"Saved {len(changed)} changed and {len(removed)} removed variable(s)."


def reset(request: HttpRequest, instance: ProcessInstance) -> str:
    targets = [(t.element_id, t.name) for t in repair_choices(instance)["reset_targets"]]
    form = ResetForm(request.POST, targets=targets)
    if not form.is_valid():
        raise EngineError(f"Nothing was changed. {_form_errors(form)}")
    element_id = form.cleaned_data["element_id"]
    reset_instance(instance_id=instance.pk, actor=request.user, element_id=element_id)
    return f"The instance was reset to {element_id}."


def skip(request: HttpRequest, instance: ProcessInstance) -> str:
    tasks = [(t.task_id, t.name) for t in repair_choices(instance)["skippable"]]
    form = SkipForm(request.POST, tasks=tasks)
    if not form.is_valid():
        raise EngineError(f"Nothing was changed. {_form_errors(form)}")
    skip_task(
        instance_id=instance.pk,
        actor=request.user,
        task_id=form.cleaned_data["task_id"],
        variables=form.cleaned_data["variables"],
    )
    return "The task was skipped."


def reason_of(request: HttpRequest) -> str:
    form = ReasonForm(request.POST)
    return str(form.cleaned_data["reason"]) if form.is_valid() else ""


def suspend(request: HttpRequest, instance: ProcessInstance) -> str:
    suspend_instance(instance_id=instance.pk, actor=request.user, reason=reason_of(request))
    return "The instance is suspended."


def resume(request: HttpRequest, instance: ProcessInstance) -> str:
    resume_instance(instance_id=instance.pk, actor=request.user)
    return "The instance was resumed."


def terminate(request: HttpRequest, instance: ProcessInstance) -> str:
    terminate_instance(instance_id=instance.pk, actor=request.user, reason=reason_of(request))
    return "The instance was terminated."


def migrate(request: HttpRequest, instance: ProcessInstance) -> str:
    form = MigrateForm(request.POST, versions=repair_choices(instance)["versions"])
    if not form.is_valid():
        raise EngineError(f"Nothing was changed. {_form_errors(form)}")
    plan = migrate_instance(
        instance_id=instance.pk, actor=request.user, version=form.cleaned_data["version"]
    )
    return f"The instance now runs version {plan.to_version}."


ACTIONS: dict[str, RepairAction] = {
    "retry": retry,
    "variables": edit_variables,
    "reset": reset,
    "skip": skip,
    "suspend": suspend,
    "resume": resume,
    "terminate": terminate,
    "migrate": migrate,
}


def run_repair(request: HttpRequest, instance: ProcessInstance, action: RepairAction) -> None:
    """Run one repair and report its outcome on the page."""
    try:
        messages.success(request, action(request, instance))
    except EngineError as exc:
        messages.error(request, exc.detail)
