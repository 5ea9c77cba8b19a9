"""Changing an instance's variables as an operator's correction (used by `set_variables` and
by `retry_instance` when the operator fixes data and retries in one step)."""

import copy
from collections.abc import Iterable
from typing import Any

from engine.actors import Actor
from engine.bpmn.types import Workflow
from engine.bpmn.walks import change_variables
from engine.exceptions import InvalidInput
from engine.jsonable import check_json_depth
from engine.models import ProcessInstance

from .audit import record_event


def check_variables(variables: Any, remove: Iterable[str] = ()) -> tuple[dict[str, Any], list[str]]:
    """Validate an operator's change before anything is locked: a JSON object of new values
    and a list of names to remove."""
    if not isinstance(variables, dict):
        raise InvalidInput("variables must be a JSON object.")
    check_json_depth(variables, "variables")
    names = list(remove)
    if not all(isinstance(name, str) for name in names):
        raise InvalidInput("The names of variables to remove must be strings.")
    both = sorted(set(names) & set(variables))
    if both:
        raise InvalidInput(f"Cannot both set and remove {', '.join(both)}.")
    return variables, names


def change_workflow_variables(
    instance: ProcessInstance,
    workflow: Workflow,
    *,
    actor: Actor,
    variables: dict[str, Any],
    remove: list[str],
) -> bool:
    """Merge `variables` into (and drop `remove` from) the data of every active task and the
    workflow data; write a `variables_changed` event with before and after. Returns whether
    anything was asked for (the caller persists the workflow)."""
    if not variables and not remove:
        return False
    names = [*variables, *remove]
    before = {name: instance.variables.get(name) for name in names}
    change_variables(workflow, variables, remove)
    after = {**{name: None for name in remove}, **copy.deepcopy(variables)}
    payload: dict[str, Any] = {"before": before, "after": after}
    if remove:
        payload["removed"] = remove
    record_event(instance, "variables_changed", actor=actor, payload=payload)
    return True
