"""Moving a running instance to another version of its process.

`plan_migration` is the dry run: what the new version adds, removes and changes, and where
each active token of the instance lands. `migrate_instance` applies the same plan under the
instance row lock, and refuses when an active token would have no element to be in.
"""
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db import transaction
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.util.diff import SpecDiff, WorkflowDiff, migrate_workflow
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from engine.actors import Person
from engine.bpmn.serialization import serializer_for, workflow_from_state, workflow_to_state
from engine.exceptions import Conflict, NotFound
from engine.models import ProcessInstance
from processes.models import ProcessDefinition

from .audit import record_event
from .definition_cache import definition_specs
from .execution import (
    ACTIVE_TASK_STATES,
    load_workflow,
    persist_workflow,
    run_engine_steps,
    running_as,
)
from .repair import forget_removed_tasks, lock_for_repair, settle_incident

_LIGHT_FIELDS = ("spec", "bpmn_xml", "elements")


@dataclass
class MigrationPlan:
    """What migrating one instance to `to_version` would do; `blocking` lists why it can't."""

    from_version: int
    to_version: int
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    tokens: list[dict[str, Any]] = field(default_factory=list)
    blocking: list[str] = field(default_factory=list)

    @property
    def possible(self) -> bool:
        return not self.blocking

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "possible": self.possible}


def _target_definition(instance: ProcessInstance, version: int) -> ProcessDefinition:
    current = instance.definition
    target = (
        ProcessDefinition.objects.defer(*_LIGHT_FIELDS)
        .filter(key=current.key, version=version).first()
    )
    if target is None:
        raise NotFound(f"Process {current.key!r} has no version {version}.")
    if target.pk == current.pk:
        raise Conflict(f"The instance already runs version {version}.")
    if target.dialect != current.dialect:
        raise Conflict(f"Version {version} is a {target.get_dialect_display()} diagram and "
                       f"the instance runs a {current.get_dialect_display()} one.")
    return target


def _element_ids(diff_specs: list[Any]) -> list[str]:
    return sorted({s.bpmn_id for s in diff_specs if getattr(s, "bpmn_id", None)})


def _diffs(
    instance: ProcessInstance, workflow: BpmnWorkflow, target: ProcessDefinition
) -> tuple[WorkflowDiff, dict[str, WorkflowDiff | None], MigrationPlan]:
    spec, subprocess_specs = definition_specs(target.pk)
    registry = serializer_for(target.dialect).registry
    spec_diff = SpecDiff(registry, workflow.spec, spec)
    plan = MigrationPlan(
        instance.definition.version, target.version,
        added=_element_ids(spec_diff.added), removed=_element_ids(spec_diff.removed),
        changed=_element_ids(list(spec_diff.changed)),
    )
    subprocesses: dict[str, WorkflowDiff | None] = {}
    for sp_id, sub in workflow.subprocesses.items():
        new_sub = subprocess_specs.get(sub.spec.name)
        subprocesses[sp_id] = (
            WorkflowDiff(sub, SpecDiff(registry, sub.spec, new_sub)) if new_sub else None
        )
    return WorkflowDiff(workflow, spec_diff), subprocesses, plan


def _kept_tasks(owner: BpmnWorkflow) -> list[Task]:
    """The tasks `migrate_workflow` keeps: all but what READY and WAITING tasks have predicted
    below them (those are dropped and predicted again from the new version)."""
    dropped: set[Any] = set()
    for task in owner.get_tasks(state=TaskState.READY | TaskState.WAITING,
                                skip_subprocesses=True):
        dropped.update(descendant.id for descendant in task if descendant is not task)
    return [task for task in owner.tasks.values() if task.id not in dropped]


def _plan_tokens(
    workflow: BpmnWorkflow, top: WorkflowDiff, subprocesses: dict[str, WorkflowDiff | None],
    plan: MigrationPlan,
) -> None:
    """Where each active token lands; and what blocks: any task that stays in the instance
    (active, finished or planned) without a counterpart could not be loaded again."""
    diffs: list[tuple[BpmnWorkflow, WorkflowDiff | None]] = [(workflow, top)]
    diffs += [(workflow.subprocesses[sp_id], diff) for sp_id, diff in subprocesses.items()]
    unmatched: set[str] = set()
    for owner, diff in diffs:
        if diff is None:
            plan.blocking.append(f"The subprocess {owner.spec.name!r} the instance is in has "
                                 f"no counterpart in version {plan.to_version}.")
            continue
        for task in _kept_tasks(owner):
            target = diff.alignment.get(task)
            element_id = getattr(task.task_spec, "bpmn_id", None) or task.task_spec.name
            if task.state & ACTIVE_TASK_STATES and getattr(task.task_spec, "bpmn_id", None):
                plan.tokens.append({
                    "element_id": element_id, "state": TaskState.get_name(task.state),
                    "maps_to": getattr(target, "bpmn_id", None),
                })
                if target is None:
                    plan.blocking.append(f"The active task {element_id!r} has no counterpart "
                                         f"in version {plan.to_version}.")
            elif target is None:
                unmatched.add(element_id)
    if unmatched:
        plan.blocking.append(
            f"The instance has run or planned {', '.join(sorted(unmatched))}, which version "
            f"{plan.to_version} no longer has; its history could not be carried over.")


def _plan(
    instance: ProcessInstance, workflow: BpmnWorkflow, version: int
) -> tuple[ProcessDefinition, WorkflowDiff, dict[str, WorkflowDiff | None], MigrationPlan]:
    target = _target_definition(instance, version)
    top, subprocesses, plan = _diffs(instance, workflow, target)
    _plan_tokens(workflow, top, subprocesses, plan)
    return target, top, subprocesses, plan


def _check_loadable(
    workflow: BpmnWorkflow, target: ProcessDefinition, spec: Any, subprocess_specs: Any
) -> None:
    """Load the migrated state against the new version before it is written: a state that
    could not be loaded again would leave an instance nobody can open or repair."""
    try:
        workflow_from_state(target.dialect, workflow_to_state(target.dialect, workflow),
                            spec, subprocess_specs)
    except Exception as exc:  # whatever SpiffWorkflow raises, the migration must not commit
        raise Conflict(f"The instance cannot run on version {target.version}: its state does "
                       f"not fit that version ({type(exc).__name__}: {exc}).") from None


def plan_migration(
    *, instance_id: uuid.UUID | str, actor: Person, version: int
) -> MigrationPlan:
    """The dry run of `migrate_instance`: the same checks and plan, and nothing changes."""
    with transaction.atomic(durable=True):
        instance = lock_for_repair(instance_id, actor, "migrate")
        return _plan(instance, load_workflow(instance), version)[3]


def migrate_instance(
    *, instance_id: uuid.UUID | str, actor: Person, version: int
) -> MigrationPlan:
    """Move the instance to `version` of its process: tokens stay on the elements with the
    same id (or the same place in the flow), waiting tasks are set up again by the new
    version. Refused (Conflict, nothing changes) when an active task has no counterpart."""
    with transaction.atomic(durable=True):
        instance = lock_for_repair(instance_id, actor, "migrate")
        workflow = load_workflow(instance)
        target, top, subprocesses, plan = _plan(instance, workflow, version)
        if not plan.possible:
            raise Conflict(" ".join(plan.blocking), errors=[
                {"element_id": token["element_id"], "message": "no counterpart in version "
                 f"{plan.to_version}"} for token in plan.tokens if token["maps_to"] is None
            ])
        spec, subprocess_specs = definition_specs(target.pk)
        forget_removed_tasks(workflow, migrate_workflow(top, workflow, spec))
        for sp_id, diff in subprocesses.items():
            sub = workflow.subprocesses[sp_id]
            if diff is not None:
                removed = migrate_workflow(diff, sub, subprocess_specs[sub.spec.name])
                forget_removed_tasks(workflow, removed)
        workflow.subprocess_specs = subprocess_specs
        instance.definition = target
        with running_as(actor, instance):
            run_engine_steps(workflow)
        _check_loadable(workflow, target, spec, subprocess_specs)
        settle_incident(instance, workflow)
        persist_workflow(instance, workflow, actor=actor)
        record_event(instance, "migrated", actor=actor, payload={
            "before": {"version": plan.from_version}, "after": {"version": plan.to_version},
            "plan": plan.as_dict(),
        })
    return plan
