"""Tasks without a type (`bpmn:task`) pass through, as BPMN 2.0 (13.3.3) and Camunda 7 run
them: SpiffWorkflow makes them manual, so they would wait for a person who has no form.

Both classes are stored under the library's type name (`NoneTask`), so the specs of diagrams
deployed before load as Baton's and their bare tasks pass through as well; a task that was
already waiting can still be completed from the inbox.
"""

from typing import Any

from SpiffWorkflow.bpmn.serializer.default.task_spec import BpmnTaskSpecConverter
from SpiffWorkflow.bpmn.specs.defaults import NoneTask
from SpiffWorkflow.spiff.serializer.task_spec import SpiffBpmnTaskConverter
from SpiffWorkflow.spiff.specs.defaults import NoneTask as SpiffNoneTask

LIBRARY_TYPENAME = "NoneTask"


class _PassesThrough:
    manual: bool

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.manual = False


class PassThroughTask(_PassesThrough, NoneTask):
    pass


class SpiffPassThroughTask(_PassesThrough, SpiffNoneTask):
    pass


class PassThroughTaskConverter(BpmnTaskSpecConverter):
    def __init__(self, target_class: type, registry: Any, typename: str | None = None) -> None:
        super().__init__(target_class, registry, typename or LIBRARY_TYPENAME)


class SpiffPassThroughTaskConverter(SpiffBpmnTaskConverter):
    def __init__(self, target_class: type, registry: Any, typename: str | None = None) -> None:
        super().__init__(target_class, registry, typename or LIBRARY_TYPENAME)


NONE_TASK_CONVERTERS = {PassThroughTask: PassThroughTaskConverter}
SPIFF_NONE_TASK_CONVERTERS = {SpiffPassThroughTask: SpiffPassThroughTaskConverter}
