"""Baton's workflow class: the library's, with a listener for the events it throws.

Created for new instances and restored by the serializer under the library's type name (so
stored states load as this class), it lets a `Run` collect the signals a workflow throws
without replacing methods on the workflow object.
"""

from collections.abc import Callable
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter
from SpiffWorkflow.bpmn.util.event import BpmnEvent


class BatonWorkflow(BpmnWorkflow):
    # Called with every event the workflow (or one of its subprocesses) throws, before the
    # workflow itself delivers it inside (engine.bpmn.events.record_thrown_events sets it).
    thrown_listener: Callable[[BpmnEvent], None] | None = None

    def catch(self, event: BpmnEvent) -> None:
        if self.thrown_listener is not None:
            self.thrown_listener(event)
        super().catch(event)


class BatonWorkflowConverter(BpmnWorkflowConverter):
    """Stores a BatonWorkflow as the library's workflow and restores that as a BatonWorkflow."""

    def __init__(self, target_class: type, registry: Any, typename: str | None = None) -> None:
        super().__init__(target_class, registry, typename or BpmnWorkflow.__name__)


WORKFLOW_CONVERTERS = {BatonWorkflow: BatonWorkflowConverter}
