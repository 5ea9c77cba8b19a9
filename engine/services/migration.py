"""Moving a running instance to another version of its process.

`plan_migration` is the dry run: what the new version adds, removes and changes, and where
each active token of the instance lands. `migrate_instance` applies the same plan under the
instance row lock, and refuses when an active token would have no element to be in.
"""

import uuid

from django.db import transaction

from engine.actors import Person
from engine.bpmn import migration as moves
from engine.bpmn.failures import run_engine_steps
from engine.bpmn.migration import MigrationPlan
from engine.bpmn.types import Workflow
from engine.exceptions import Conflict, NotFound
from engine.models import ProcessInstance
from processes.models import ProcessDefinition

from .audit import record_event
from .definition_cache import definition_specs
from .incidents import settle_incident
from .instance_store import load_workflow, open_run, persist_workflow
from .operators import lock_for_rewind
from .running import running_as

__all__ = ["MigrationPlan", "migrate_instance", "plan_migration"]

_LIGHT_FIELDS = ("spec", "bpmn_xml", "elements")


def _target_definition(instance: ProcessInstance, version: int) -> ProcessDefinition:
    current = instance.definition
    target = (
        ProcessDefinition.objects.defer(*_LIGHT_FIELDS)
        .filter(key=current.key, version=version)
        .first()
    )
    if target is None:
        raise NotFound(f"Process {current.key!r} has no version {version}.")
    if target.pk == current.pk:
        raise Conflict(f"The instance already runs version {version}.")
    if target.dialect != current.dialect:
        raise Conflict(
            f"Version {version} is a {target.get_dialect_display()} diagram and "
            f"the instance runs a {current.get_dialect_display()} one."
        )
    return target


def _plan(
    instance: ProcessInstance, workflow: Workflow, version: int
) -> tuple[ProcessDefinition, moves.Move]:
    target = _target_definition(instance, version)
    move = moves.plan_migration(
        workflow,
        target.dialect,
        definition_specs(target.pk),
        instance.definition.version,
        target.version,
    )
    return target, move


def plan_migration(*, instance_id: uuid.UUID | str, actor: Person, version: int) -> MigrationPlan:
    """The dry run of `migrate_instance`: the same checks and plan, and nothing changes."""
    with transaction.atomic(durable=True):
        instance = lock_for_rewind(instance_id, actor, "migrate", "migrated")
        return _plan(instance, load_workflow(instance), version)[1].plan


def migrate_instance(*, instance_id: uuid.UUID | str, actor: Person, version: int) -> MigrationPlan:
    """Move the instance to `version` of its process: tokens stay on the elements with the
    same id (or the same place in the flow), waiting tasks are set up again by the new
    version. Refused (Conflict, nothing changes) when an active task has no counterpart."""
    with transaction.atomic(durable=True):
        instance = lock_for_rewind(instance_id, actor, "migrate", "migrated")
        run = open_run(instance)
        target, move = _plan(instance, run.workflow, version)
        plan = move.plan
        if not plan.possible:
            raise Conflict(
                " ".join(plan.blocking),
                errors=[
                    {
                        "element_id": token["element_id"],
                        "message": f"no counterpart in version {plan.to_version}",
                    }
                    for token in plan.tokens
                    if token["maps_to"] is None
                ],
            )
        specs = definition_specs(target.pk)
        moves.migrate(run.workflow, move, specs)
        instance.definition = target
        with running_as(actor, instance):
            run_engine_steps(run)
        problem = moves.reload_error(run.workflow, target.dialect, specs)
        if problem is not None:
            raise Conflict(
                f"The instance cannot run on version {target.version}: its state "
                f"does not fit that version ({problem})."
            )
        settle_incident(instance, run.workflow)
        persist_workflow(instance, run, actor=actor, definition_changed=True)
        record_event(
            instance,
            "migrated",
            actor=actor,
            payload={
                "before": {"version": plan.from_version},
                "after": {"version": plan.to_version},
                "plan": plan.as_dict(),
            },
        )
    return plan
