"""The names people gave a diagram's elements, for pages that show where an instance is in
words (`Approve expense`) rather than ids (`Activity_0bn1eoq`)."""

from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec


def element_names(
    spec: BpmnProcessSpec, subprocess_specs: dict[str, BpmnProcessSpec]
) -> dict[str, str]:
    """Element id -> its name (its id when it has none), over the process and the processes
    it calls or embeds."""
    names: dict[str, str] = {}
    for process in (spec, *subprocess_specs.values()):
        for task_spec in process.task_specs.values():
            element_id = getattr(task_spec, "bpmn_id", None)
            if element_id:
                names[element_id] = getattr(task_spec, "bpmn_name", None) or element_id
    return names
