"""The outgoing sequence flows of an activity or event, as BPMN 2.0 runs them.

SpiffWorkflow refuses an activity or event with more than one outgoing sequence flow ("Multiple
outgoing flows are not supported for tasks of type") and ignores a condition on the flow out
of one. BPMN says (10.2.1, 13.2.1; WCP06 multi-choice):
- flows without a condition out of an activity or event are all taken: an implicit parallel
  split;
- a flow with a `conditionExpression` is taken when its condition holds (as out of an
  inclusive gateway);
- the activity's default flow (`default=`) is taken when no other flow is;
- when no flow can be taken, the token cannot go on: like Camunda 8, Baton stops the
  instance in an incident at the element rather than ending the path silently.

Where an element's flows need more than the library's one connection, the parser puts a
`FlowSplit` between the element and its targets: a task spec of its own, with no `bpmn_id`
(it is no element of the diagram: traces, markers and repairs do not show it), that
evaluates the conditions with the element's output data and starts the chosen branches.
A failing condition fails the split, and the incident names the element whose flows it
splits (`split_source`). Specs stored before this keep the library's connections and load
as they are.

A link throw event leads on to the link catch event of its name in the same process level,
as an invisible sequence flow would (BPMN 10.5.6).
"""

from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.serializer.default.task_spec import BpmnTaskSpecConverter
from SpiffWorkflow.bpmn.specs.bpmn_task_spec import BpmnTaskSpec
from SpiffWorkflow.specs.base import TaskSpec
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from .data_objects import DataObjectScopeMixin
from .xml import ACTIVITY_TAGS, BPMN_NS

CONDITION_TAG = f"{{{BPMN_NS}}}conditionExpression"
LINK_TAG = f"{{{BPMN_NS}}}linkEventDefinition"
CATCH_TAG = f"{{{BPMN_NS}}}intermediateCatchEvent"
THROW_TAG = f"{{{BPMN_NS}}}intermediateThrowEvent"

# The elements whose outgoing flows Baton runs as BPMN says (gateways decide on their own, end
# events have none).
SPLITTING_TAGS = (
    *ACTIVITY_TAGS,
    "adHocSubProcess",
    "startEvent",
    "intermediateCatchEvent",
    "intermediateThrowEvent",
)


def split_name(element_id: str) -> str:
    """The split's task spec name: no XML id holds a space, so it names no element."""
    return f"{element_id} [outgoing flows]"


class FlowSplit(BpmnTaskSpec):
    """The split of one element's outgoing sequence flows (see the module docstring).

    `flows` lists (condition or None, target task spec name), in the order the parser
    connected them; `default` is the target of the default flow, if any."""

    def __init__(
        self,
        wf_spec: Any,
        name: str,
        split_source: str = "",
        flows: list[tuple[str | None, str]] | None = None,
        default: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(wf_spec, name, **kwargs)
        self.split_source = split_source
        self.flows: list[tuple[str | None, str]] = [tuple(f) for f in flows or []]  # type: ignore[misc]
        self.default = default

    def connect_flow(self, condition: str | None, target: TaskSpec, is_default: bool) -> None:
        self.connect(target)
        if is_default:
            self.default = target.name
        else:
            self.flows.append((condition, target.name))

    def _spec(self, my_task: Task, name: str) -> TaskSpec:
        return my_task.workflow.spec.task_specs[name]

    def _predict_hook(self, my_task: Task) -> None:
        sure = TaskState.FUTURE if my_task.has_state(TaskState.DEFINITE_MASK) else my_task.state
        unconditional = [self._spec(my_task, n) for c, n in self.flows if c is None]
        my_task._sync_children(unconditional, sure)
        maybe = [n for c, n in self.flows if c is not None]
        if self.default is not None:
            maybe.append(self.default)
        for name in maybe:
            if not any(child.task_spec.name == name for child in my_task.children):
                my_task._add_child(self._spec(my_task, name), TaskState.MAYBE)

    def _holds(self, my_task: Task, condition: str) -> bool:
        engine = my_task.workflow.script_engine
        return bool(
            engine.evaluate(my_task, condition, external_context=my_task.workflow.data_objects)
        )

    def _run_hook(self, my_task: Task) -> bool:
        taken = [n for c, n in self.flows if c is None or self._holds(my_task, c)]
        if not taken and self.default is not None:
            taken = [self.default]
        if not taken:
            raise WorkflowTaskException(
                f"No outgoing sequence flow of {self.split_source!r} can be taken: none of "
                "their conditions holds and there is no default flow.",
                task=my_task,
            )
        my_task._sync_children([self._spec(my_task, n) for n in taken], TaskState.FUTURE)
        for child in my_task.children:
            child.task_spec._predict(child, mask=TaskState.FUTURE | TaskState.PREDICTED_MASK)
        return True


class FlowSplitConverter(BpmnTaskSpecConverter):
    def to_dict(self, spec: FlowSplit) -> dict[str, Any]:
        dct: dict[str, Any] = self.get_default_attributes(spec)
        dct["split_source"] = spec.split_source
        dct["flows"] = [list(flow) for flow in spec.flows]
        dct["default"] = spec.default
        return dct


OUTGOING_FLOW_CONVERTERS = {FlowSplit: FlowSplitConverter}


def element_of(task_spec: TaskSpec) -> str:
    """The diagram element a task spec stands for: its own, or the one whose flows it splits."""
    return str(getattr(task_spec, "bpmn_id", None) or getattr(task_spec, "split_source", ""))


class OutgoingFlowsParserMixin:
    """In front of an activity's or event's parser: runs its outgoing flows as BPMN says,
    through a `FlowSplit` where the library's single connection would not."""

    node: etree._Element
    process_parser: Any
    spec: Any
    task: Any
    bpmn_id: str

    def handles_multiple_outgoing(self) -> bool:
        return True

    def _needs_split(self) -> bool:
        outgoing = self.process_parser.get_outgoing_sequence_flows(self.bpmn_id)
        if len(outgoing) > 1 or self.node.get("default"):
            return True
        return any(flow.find(CONDITION_TAG) is not None for flow in outgoing)

    def connect_outgoing(
        self, outgoing_task: TaskSpec, sequence_flow_node: etree._Element, is_default: bool
    ) -> None:
        if not self._needs_split():
            super().connect_outgoing(outgoing_task, sequence_flow_node, is_default)  # type: ignore[misc]
            return
        name = split_name(self.bpmn_id)
        split = self.spec.task_specs.get(name)
        if split is None:
            split = FlowSplit(self.spec, name, split_source=self.bpmn_id, lane=self.task.lane)
            self.task.connect(split)
        condition = (self.parse_condition(sequence_flow_node) or "").strip()  # type: ignore[attr-defined]
        split.connect_flow(condition or None, outgoing_task, is_default)


def outgoing_flow_overrides(
    parser_classes: dict[str, tuple[type, type]],
) -> dict[str, tuple[type, type]]:
    """The parsers of `parser_classes` for SPLITTING_TAGS, each with the mixin in front."""
    overrides = {}
    for tag in SPLITTING_TAGS:
        full = f"{{{BPMN_NS}}}{tag}"
        if full in parser_classes:
            parser_class, spec_class = parser_classes[full]
            mixins: tuple[type, ...] = (OutgoingFlowsParserMixin, DataObjectScopeMixin)
            if full == THROW_TAG:
                mixins = (LinkThrowParserMixin, *mixins)
            mixed = type(f"Flows{parser_class.__name__}", (*mixins, parser_class), {})
            overrides[full] = (mixed, spec_class)
    return overrides


# -- link events ------------------------------------------------------------------------------


def link_name(event: etree._Element) -> str | None:
    """The link name of a link event (its definition's name, else the event's), or None if
    the event is no link event."""
    definition = event.find(LINK_TAG)
    if definition is None:
        return None
    return (definition.get("name") or event.get("name") or "").strip()


def link_catch(container: etree._Element, name: str) -> etree._Element | None:
    """The link catch event named `name` directly inside `container` (a process or a
    subprocess: a link never leaves its process level)."""
    for event in container.iterchildren(CATCH_TAG):
        if link_name(event) == name:
            return event
    return None


class LinkThrowParserMixin:
    """In front of the intermediate throw event parser: a link throw event goes on at the
    link catch event of the same name, as if a sequence flow joined them (BPMN 10.5.6). The
    library reads both as none events, so the path stopped at the throw and the catch was
    never reached."""

    node: etree._Element
    process_parser: Any
    filename: str

    # In `create_task`, not `parse_node`: the parser recurses through `parse_node` once per
    # element in a row, and a frame more per element would lower how long a run may be.
    def create_task(self) -> Any:
        task = super().create_task()  # type: ignore[misc]
        name = link_name(self.node)
        if name is None:
            return task
        target = link_catch(self.process_parser.node, name)
        if target is None:
            raise ValidationException(
                f"The link throw event goes to link {name!r}, but no link catch event of "
                "that name is in the same process.",
                node=self.node,
                file_name=self.filename,
            )
        task.connect(self.process_parser.parse_node(target))
        return task
        target = link_catch(self.process_parser.node, name)
        if target is None:
            raise ValidationException(
                f"The link throw event goes to link {name!r}, but no link catch event of "
                "that name is in the same process.",
                node=self.node,
                file_name=self.filename,
            )
        task.connect(self.process_parser.parse_node(target))
        return task
