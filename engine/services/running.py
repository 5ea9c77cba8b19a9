"""Running workflow code on behalf of someone: who scripts see as the current user, which
instance `instance_id()` names, and the process's script time limit."""

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

from engine.actors import Actor, as_user
from engine.bpmn.budget import Limits, process_limits
from engine.bpmn.data_stores import data_store_access
from engine.bpmn.failures import failed_element
from engine.bpmn.scripting import (
    InstanceFacts,
    ScriptError,
    UserLookup,
    describe_workflow_error,
    process_time_limit,
    script_context,
)
from engine.bpmn.types import WorkflowError
from engine.bpmn.xml import process_properties
from engine.exceptions import ScriptFailed
from engine.models import HumanTask, ProcessInstance
from processes.models import ProcessDefinition

from .data_stores import PostgresDataStores


@functools.lru_cache(maxsize=512)
def definition_script_time_limit(definition_id: int) -> float | None:
    """The process's own `scriptTimeLimit` (a definition never changes, so this is cached)."""
    key, xml = ProcessDefinition.objects.values_list("key", "bpmn_xml").get(pk=definition_id)
    return process_time_limit(xml, key)


@functools.lru_cache(maxsize=512)
def definition_step_limits(definition_id: int) -> Limits:
    """How much automatic work one operation on the process may do (engine.bpmn.budget):
    the settings, or the process's own `stepLimit` / `stepTimeLimit` properties."""
    key, xml = ProcessDefinition.objects.values_list("key", "bpmn_xml").get(pk=definition_id)
    return process_limits(process_properties(xml, key))


def _describe_user(user: Any) -> dict[str, Any]:
    return {
        "id": user.pk,
        "username": user.get_username(),
        "email": user.email,
        "groups": sorted(user.groups.values_list("name", flat=True)),
    }


def _script_user(actor: Actor) -> UserLookup | None:
    user = as_user(actor)
    if user is None:
        return None
    return functools.partial(_describe_user, user)


@contextlib.contextmanager
def running_as(
    actor: Actor, instance: ProcessInstance | None = None, *, completing: str | None = None
) -> Iterator[None]:
    """Run workflow code on behalf of `actor` in `instance`: scripts see them as the current
    user and `instance_id()` as the instance, with the process's script time limit.
    `completing`: the element id of the human task `actor` is completing (its row is marked
    completed after the run; SpiffArena's `get_last_user_completing_task` already sees it).

    A script failure that belongs to no task (and so cannot become an incident) raises
    `ScriptFailed`, which rolls the whole operation back. Engine steps (`run_engine_steps`,
    `attempt` in engine.bpmn.failures) turn the failures of tasks into incidents instead.
    """
    limit = definition_script_time_limit(instance.definition_id) if instance else None
    stores = PostgresDataStores(instance, actor) if instance is not None else None
    try:
        with (
            data_store_access(stores),
            script_context(
                user=_script_user(actor),
                instance_id=str(instance.pk) if instance is not None else None,
                time_limit=limit,
                reuse_key=f"definition {instance.definition_id}" if instance is not None else None,
                facts=_DatabaseFacts(instance, actor, completing) if instance is not None else None,
            ),
        ):
            yield
    except WorkflowError as exc:
        element = failed_element(exc)
        message = describe_workflow_error(exc)
        raise ScriptFailed(
            f"{element + ': ' if element else ''}{message}",
            errors=[{"element_id": element, "message": message}],
        ) from None
    except ScriptError as exc:
        raise ScriptFailed(str(exc), errors=[{"element_id": "", "message": str(exc)}]) from None


class _DatabaseFacts(InstanceFacts):
    """SpiffArena's helpers' answers about `instance`, from its rows."""

    def __init__(self, instance: ProcessInstance, actor: Actor, completing: str | None) -> None:
        self.instance = instance
        self.actor = actor
        self.completing = completing

    def initiator(self) -> dict[str, Any] | None:
        user = self.instance.started_by
        return _describe_user(user) if user is not None else None

    def last_users(self) -> dict[str, dict[str, Any]]:
        completed = (
            HumanTask.objects.filter(instance=self.instance, completed_by__isnull=False)
            .select_related("completed_by")
            .order_by("completed_at", "created_at")
        )
        users = {task.element_id: _describe_user(task.completed_by) for task in completed}
        user = as_user(self.actor)
        if self.completing and user is not None:
            users[self.completing] = _describe_user(user)
        return users

    def toplevel(self) -> dict[str, Any]:
        return {
            "process_instance_id": str(self.instance.pk),
            "process_model_identifier": self.instance.definition.key,
        }
