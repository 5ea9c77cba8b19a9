"""Moving a workflow to another version of its process: the token plan, and the move.

`plan_migration` compares the workflow with the new version's specs and says where each
active token lands and what blocks the move; `migrate` applies it.
"""

from dataclasses import asdict, dataclass, field
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.bpmn.util.diff import SpecDiff, WorkflowDiff, migrate_workflow
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from .repair import forget_removed_tasks
from .serialization import serializer_for, workflow_from_state, workflow_to_state
from .types import ACTIVE_TASK_STATES


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


@dataclass
class Move:
    """A plan with the diffs it was made from (what `migrate` applies)."""

    plan: MigrationPlan
    top: WorkflowDiff
    subprocesses: dict[str, WorkflowDiff | None]


def _element_ids(diff_specs: list[Any]) -> list[str]:
    return sorted({s.bpmn_id for s in diff_specs if getattr(s, "bpmn_id", None)})


def _diffs(
    workflow: BpmnWorkflow,
    dialect: str,
    spec: BpmnProcessSpec,
    subprocess_specs: dict[str, BpmnProcessSpec],
    plan: MigrationPlan,
) -> Move:
    registry = serializer_for(dialect).registry
    spec_diff = SpecDiff(registry, workflow.spec, spec)
    plan.added = _element_ids(spec_diff.added)
    plan.removed = _element_ids(spec_diff.removed)
    plan.changed = _element_ids(list(spec_diff.changed))
    subprocesses: dict[str, WorkflowDiff | None] = {}
    for sp_id, sub in workflow.subprocesses.items():
        new_sub = subprocess_specs.get(sub.spec.name)
        subprocesses[sp_id] = (
            WorkflowDiff(sub, SpecDiff(registry, sub.spec, new_sub)) if new_sub else None
        )
    return Move(plan, WorkflowDiff(workflow, spec_diff), subprocesses)


def _kept_tasks(owner: BpmnWorkflow) -> list[Task]:
    """The tasks `migrate_workflow` keeps: all but what READY and WAITING tasks have predicted
    below them (those are dropped and predicted again from the new version)."""
    dropped: set[Any] = set()
    for task in owner.get_tasks(state=TaskState.READY | TaskState.WAITING, skip_subprocesses=True):
        dropped.update(descendant.id for descendant in task if descendant is not task)
    return [task for task in owner.tasks.values() if task.id not in dropped]


def _plan_tokens(workflow: BpmnWorkflow, move: Move) -> None:
    """Where each active token lands; and what blocks: any task that stays in the instance
    (active, finished or planned) without a counterpart could not be loaded again."""
    plan = move.plan
    diffs: list[tuple[BpmnWorkflow, WorkflowDiff | None]] = [(workflow, move.top)]
    diffs += [(workflow.subprocesses[sp_id], diff) for sp_id, diff in move.subprocesses.items()]
    unmatched: set[str] = set()
    for owner, diff in diffs:
        if diff is None:
            plan.blocking.append(
                f"The subprocess {owner.spec.name!r} the instance is in has "
                f"no counterpart in version {plan.to_version}."
            )
            continue
        for task in _kept_tasks(owner):
            target = diff.alignment.get(task)
            element_id = getattr(task.task_spec, "bpmn_id", None) or task.task_spec.name
            if task.state & ACTIVE_TASK_STATES and getattr(task.task_spec, "bpmn_id", None):
                plan.tokens.append(
                    {
                        "element_id": element_id,
                        "state": TaskState.get_name(task.state),
                        "maps_to": getattr(target, "bpmn_id", None),
                    }
                )
                if target is None:
                    plan.blocking.append(
                        f"The active task {element_id!r} has no counterpart "
                        f"in version {plan.to_version}."
                    )
            elif target is None:
                unmatched.add(element_id)
    if unmatched:
        plan.blocking.append(
            f"The instance has run or planned {', '.join(sorted(unmatched))}, which version "
            f"{plan.to_version} no longer has; its history could not be carried over."
        )


def plan_migration(
    workflow: BpmnWorkflow,
    dialect: str,
    specs: tuple[BpmnProcessSpec, dict[str, BpmnProcessSpec]],
    from_version: int,
    to_version: int,
) -> Move:
    """Compare the workflow with the target version's `specs`: the plan and its diffs."""
    spec, subprocess_specs = specs
    move = _diffs(
        workflow, dialect, spec, subprocess_specs, MigrationPlan(from_version, to_version)
    )
    _plan_tokens(workflow, move)
    return move


def migrate(
    workflow: BpmnWorkflow,
    move: Move,
    specs: tuple[BpmnProcessSpec, dict[str, BpmnProcessSpec]],
) -> None:
    """Move the tokens as planned: tokens stay on the elements with the same id (or the same
    place in the flow), waiting tasks are set up again by the new version."""
    spec, subprocess_specs = specs
    forget_removed_tasks(workflow, migrate_workflow(move.top, workflow, spec))
    for sp_id, diff in move.subprocesses.items():
        sub = workflow.subprocesses[sp_id]
        if diff is not None:
            removed = migrate_workflow(diff, sub, subprocess_specs[sub.spec.name])
            forget_removed_tasks(workflow, removed)
    workflow.subprocess_specs = subprocess_specs


def reload_error(
    workflow: BpmnWorkflow,
    dialect: str,
    specs: tuple[BpmnProcessSpec, dict[str, BpmnProcessSpec]],
) -> str | None:
    """Why the workflow's state could not be loaded again against `specs` (None if it can):
    a state that could not be loaded would leave an instance nobody can open or repair."""
    spec, subprocess_specs = specs
    try:
        workflow_from_state(dialect, workflow_to_state(dialect, workflow), spec, subprocess_specs)
    except Exception as exc:  # noqa: BLE001 -- whatever the library raises, the migration must not commit
        return f"{type(exc).__name__}: {exc}"
    return None
