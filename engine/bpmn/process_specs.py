"""Baton's process specs: the library's, with room for any element id, and ad-hoc
subprocesses that end as BPMN says.

SpiffWorkflow names an element's task spec by the element's id and gives every process task
specs of its own (`Start`, `End`, `<process>.EndJoin`, ...), looked up by those names. An
element whose id is one of them (a start event `Start`) would replace the library's spec, so
Baton's process specs register such an element under an alias, `Start [element]`, which no
XML id can be, and keep its id as `bpmn_id`, by which Baton knows every element.

Both classes are stored under the library's type names, so stored specs load as Baton's.
"""

from typing import Any

from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.serializer.default.process_spec import (
    AdHocSubprocessSpecConverter,
    BpmnProcessSpecConverter,
)
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import AdHocSubprocessSpec, BpmnProcessSpec
from SpiffWorkflow.bpmn.specs.mixins.bpmn_spec_mixin import BpmnSpecMixin
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.specs.base import TaskSpec
from SpiffWorkflow.task import Task

from .scripting import describe_error

# The names of the task specs the library adds to a process (`Root` only in old states,
# which its serializer drops when it loads a spec), and the endings of those it adds beside
# an element or a process.
LIBRARY_TASK_NAMES = frozenset({"Start", "End", "Root", "StartEventSplit", "StartEventJoin"})
LIBRARY_TASK_SUFFIXES = (
    ".EndJoin",
    ".BoundaryEventSplit",
    ".BoundaryEventJoin",
    ".EventSubprocessStart",  # Baton's (engine.bpmn.event_subprocesses)
)

# BPMN: an ad-hoc subprocess without a completion condition ends when its activities are
# done. The library evaluates a condition whenever one of them completes: this one never holds.
NEVER = "False"


def takes_a_library_name(element_id: str) -> bool:
    return element_id in LIBRARY_TASK_NAMES or element_id.endswith(LIBRARY_TASK_SUFFIXES)


def task_spec_name(element_id: str) -> str:
    """The name of the task spec of element `element_id` (its id, unless the library uses it)."""
    return f"{element_id} [element]" if takes_a_library_name(element_id) else element_id


def completion_condition(text: str | None) -> str:
    """An ad-hoc subprocess's completion condition as the library evaluates it."""
    return (text or "").strip() or NEVER


class _ElementNames(BpmnProcessSpec):
    def __init__(self, *args: Any, naming_elements: bool = False, **kwargs: Any) -> None:
        # Only while the parser builds a spec: a stored one keeps the names it was stored with.
        self.naming_elements = naming_elements
        super().__init__(*args, **kwargs)

    def _add_notify(self, task_spec: TaskSpec) -> None:
        # Called as a task spec is created, before anything refers to it by name; the library's
        # own task specs are no BpmnSpecMixin.
        if self.naming_elements and isinstance(task_spec, BpmnSpecMixin):
            task_spec.name = task_spec_name(task_spec.name)
        super()._add_notify(task_spec)


class BatonProcessSpec(_ElementNames, BpmnProcessSpec):
    # Camunda 7's `camunda:initiator` on the start event: the variable that gets the username
    # of whoever starts the instance (engine.bpmn.walks.set_initiator).
    initiator: str | None = None
    # Compensation (engine.bpmn.compensating): activity task spec name -> the task spec name
    # of its compensation handler, and the event subprocess with a compensation start event.
    compensation_handlers: dict[str, str] | None = None
    compensation_event_subprocess: str | None = None


# Attributes of a process spec stored only when set (other specs are stored as before).
_OPTIONAL_ATTRIBUTES = ("initiator", "compensation_handlers", "compensation_event_subprocess")


class BatonAdHocSubprocessSpec(_ElementNames, AdHocSubprocessSpec):
    def path_complete(self, workflow: Any, task: Task) -> None:
        """The library's, with a failing condition failing the task that just completed (an
        incident) rather than the request."""
        # The library passes the subprocess's variables on to its other activities and then
        # removes the data objects entry from them, which it only has when the subprocess
        # declares data objects.
        workflow.data.setdefault("data_objects", {})
        try:
            super().path_complete(workflow, task)
        except SpiffWorkflowException:
            raise
        except Exception as exc:
            raise WorkflowTaskException(
                f"The completion condition {self.completion_condition!r} of the ad-hoc "
                f"subprocess {self.name!r} failed: {describe_error(exc)}",
                task=task,
                exception=exc,
            ) from exc


class BatonProcessSpecConverter(BpmnProcessSpecConverter):
    def __init__(self, target_class: type, registry: Any, typename: str | None = None) -> None:
        super().__init__(target_class, registry, typename or BpmnProcessSpec.__name__)

    def to_dict(self, spec: BpmnProcessSpec) -> dict[str, Any]:
        dct: dict[str, Any] = super().to_dict(spec)
        for name in _OPTIONAL_ATTRIBUTES:
            if getattr(spec, name, None):
                dct[name] = getattr(spec, name)
        return dct

    def from_dict(self, dct: dict[str, Any]) -> BpmnProcessSpec:
        optional = {name: dct.pop(name) for name in _OPTIONAL_ATTRIBUTES if dct.get(name)}
        spec: BpmnProcessSpec = super().from_dict(dct)
        for name, value in optional.items():
            setattr(spec, name, value)
            dct[name] = value  # the caller's dict stays as it was (the spec cache reuses it)
        return spec


class BatonAdHocSubprocessSpecConverter(AdHocSubprocessSpecConverter):
    """Also keeps `cancelRemainingInstances="false"` (the library stores True whatever the
    diagram says) and gives specs stored before Baton read an empty condition a `NEVER`."""

    def __init__(self, target_class: type, registry: Any, typename: str | None = None) -> None:
        super().__init__(target_class, registry, typename or AdHocSubprocessSpec.__name__)

    def to_dict(self, spec: AdHocSubprocessSpec) -> dict[str, Any]:
        dct: dict[str, Any] = super().to_dict(spec)
        dct["cancel_remaining"] = spec.cancel_remaining
        return dct

    def from_dict(self, dct: dict[str, Any]) -> AdHocSubprocessSpec:
        spec: AdHocSubprocessSpec = super().from_dict(dct)
        spec.completion_condition = completion_condition(spec.completion_condition)
        return spec


PROCESS_SPEC_CONVERTERS = {
    BatonProcessSpec: BatonProcessSpecConverter,
    BatonAdHocSubprocessSpec: BatonAdHocSubprocessSpecConverter,
}
