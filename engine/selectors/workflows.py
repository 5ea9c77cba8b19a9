"""An instance's workflow restored for reading, for the operators' pages.

Selectors do not import services (which own loading a workflow to change it); this reads the
definition's spec and the instance's state through `engine.bpmn.serialization` itself. The
restored workflow is never saved.
"""

from engine.bpmn.serialization import spec_from_json, workflow_from_state
from engine.bpmn.types import Workflow
from engine.models import ProcessInstance
from processes.models import ProcessDefinition


def workflow_of(instance: ProcessInstance) -> Workflow:
    """The instance's workflow (an `engine.bpmn.types.Workflow`), to hand to
    `engine.bpmn.inspection`."""
    dialect, spec = ProcessDefinition.objects.values_list("dialect", "spec").get(
        pk=instance.definition_id
    )
    spec_object, subprocess_specs = spec_from_json(dialect, spec)
    return workflow_from_state(dialect, instance.state, spec_object, subprocess_specs)
