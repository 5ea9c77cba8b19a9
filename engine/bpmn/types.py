"""Names for the workflow engine's types, for code outside `engine.bpmn`.

Only `engine.bpmn` imports the workflow library; services, selectors and the apps refer to
its objects through these aliases (as opaque handles they pass back into `engine.bpmn`).
"""

from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from .workflow import BatonWorkflow

Workflow = BatonWorkflow
WorkflowTask = Task
ProcessSpec = BpmnProcessSpec
# What the library raises when a diagram's code or structure fails (deploy or run time).
WorkflowError = SpiffWorkflowException
DiagramInvalid = ValidationException
# The states whose data is "the instance's variables" (ERROR: a failed task waiting for retry).
ACTIVE_TASK_STATES = TaskState.READY | TaskState.WAITING | TaskState.STARTED | TaskState.ERROR

__all__ = [
    "ACTIVE_TASK_STATES",
    "DiagramInvalid",
    "ProcessSpec",
    "Workflow",
    "WorkflowError",
    "WorkflowTask",
]
