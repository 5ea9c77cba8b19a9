"""Multi-instance activities (BPMN 2.0 `multiInstanceLoopCharacteristics`), read from all three
dialects into one task spec that runs them as the specification (and Camunda) says.

- The instances come from a loop cardinality or an input collection: Camunda 7
  `camunda:collection` / `camunda:elementVariable`, BPMN `loopDataInputRef` / `inputDataItem`
  (SpiffArena, and Camunda 7 too), Camunda 8 `zeebe:loopCharacteristics inputCollection=
  inputElement= outputCollection= outputElement=`.
- Each instance sees its item under the element variable and its index as `loopCounter`, both
  local to it: they never reach the process's variables. `nrOfInstances` is visible to each.
- With an output collection (BPMN `loopDataOutputRef`/`outputDataItem`, Camunda 8
  `outputCollection`/`outputElement`, a path or any FEEL expression evaluated over the
  instance's variables) each instance's output lands at its index: the outputs
  are in the order of the input, whatever order the instances complete in; instances that do
  not complete leave None. Without one (Camunda 7) what an instance leaves in its data is
  merged into the process's variables, its local variables excepted.
- The completion condition is evaluated after each instance completes, over that instance's
  data, the output collection so far and `nrOfInstances`, `nrOfCompletedInstances`,
  `nrOfActiveInstances` (always 1 for a sequential one, as in Camunda) and `loopCounter`. When
  it holds, the instances still running are cancelled and the activity completes.
- A completed instance is removed from the task tree once merged (its count and completion time
  stay on the activity, see `instance_counts`), so a long sequential loop keeps a state of
  constant size instead of one task, and one copy of the output collection, per round.

`behavior` (All, None, One, Complex) only decides which events the activity throws as its
instances complete; the workflow library throws none, so a behavior naming an event to throw
is refused at deploy rather than ignored.

The library's own multi-instance specs keep data references, re-read the collection on every
step and, in its Camunda variant, rewrite the shared (cached) spec at run time; Baton's spec
subclasses the library's `MultiInstanceTask` (so the library's checks still know it) and
keeps expressions of its own.
"""

import copy
import re
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from django.conf import settings
from lxml import etree
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.serializer.default.task_spec import BpmnTaskSpecConverter
from SpiffWorkflow.bpmn.specs.mixins.bpmn_spec_mixin import BpmnSpecMixin
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import MultiInstanceTask
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.deep_merge import DeepMerge
from SpiffWorkflow.util.task import TaskState

from .compensating import INSTANCES, handlers_of
from .scripting import ScriptSyntaxError, check_syntax, describe_error
from .xml import ACTIVITY_TAGS, BPMN_NS, CAMUNDA_NS, ZEEBE_NS

LOOP_COUNTER = "loopCounter"
NR_OF_INSTANCES = "nrOfInstances"
NR_OF_COMPLETED = "nrOfCompletedInstances"
NR_OF_ACTIVE = "nrOfActiveInstances"
# Names an instance has of its own, never merged into the process's variables.
STANDARD_VARIABLES = (NR_OF_INSTANCES, NR_OF_COMPLETED, NR_OF_ACTIVE, LOOP_COUNTER)

# internal_data keys: on the activity (counts, sequential items) and on each instance.
BODY = "baton_mi"
ITEMS = "baton_mi_items"
INSTANCE = "baton_mi_instance"

_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def max_instances() -> int:
    """How many instances one multi-instance activity may have (BATON_MAX_MULTI_INSTANCES)."""
    return int(settings.BATON_MAX_MULTI_INSTANCES)


def _path_expression(path: str) -> str:
    """`order.items` as the Python expression `order["items"]` (task data holds dicts)."""
    first, *rest = path.split(".")
    return first + "".join(f"[{name!r}]" for name in rest)


class BatonMultiInstanceTask(MultiInstanceTask, BpmnSpecMixin):
    """A multi-instance activity: parallel, or sequential with `sequential=True`.

    `cardinality`, `collection` and `condition` are Python expressions; `element_variable` the
    name each instance sees its item under; `output_collection` the variable collecting each
    instance's `output_element` (a path of names into the instance's data)."""

    def __init__(
        self,
        wf_spec: Any,
        bpmn_id: str,
        task_spec: str,
        *,
        sequential: bool = False,
        cardinality: str | None = None,
        collection: str | None = None,
        element_variable: str | None = None,
        output_collection: str | None = None,
        output_element: list[str] | None = None,
        output_expression: str | None = None,
        condition: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            wf_spec, bpmn_id, task_spec, cardinality=cardinality, condition=condition, **kwargs
        )
        self.sequential = sequential
        self.collection = collection
        self.element_variable = element_variable
        self.output_collection = output_collection
        self.output_element = output_element
        # A Camunda 8 outputElement that is more than a path: evaluated over each instance.
        self.output_expression = output_expression

    # -- starting ---------------------------------------------------------------------------

    def _update_hook(self, my_task: Task) -> bool | None:
        BpmnSpecMixin._update_hook(self, my_task)
        items = self._items(my_task)
        keyed = isinstance(items, dict)
        entries: list[tuple[Any, Any]] = (
            list(items.items()) if isinstance(items, dict) else list(enumerate(items))
        )
        my_task.internal_data[BODY] = {
            "n": len(entries),
            "completed": 0,
            "next": 0,
            "keyed": keyed,
            "done": [],
        }
        if self.output_collection:
            my_task.data[self.output_collection] = {} if keyed else [None] * len(entries)
        if not entries:
            return True
        if self.sequential:
            if self.collection is not None:  # a cardinality's items are the indexes
                my_task.internal_data[ITEMS] = [[key, item] for key, item in entries]
            self._start_next(my_task)
        else:
            for index, (key, item) in enumerate(entries):
                self._create_instance(my_task, index, key, item)
            my_task.internal_data[BODY]["next"] = len(entries)
        my_task._set_state(TaskState.STARTED)
        return None

    def _items(self, my_task: Task) -> list[Any] | dict[str, Any]:
        if self.collection is not None:
            value = self._evaluate(my_task, self.collection, my_task.data, "input collection")
            if isinstance(value, (Mapping, list, tuple)):
                self._check_count(my_task, len(value), f"input collection {self.collection!r}")
                return dict(value) if isinstance(value, Mapping) else list(value)
            raise WorkflowTaskException(
                f"The input collection {self.collection!r} of the multi-instance activity "
                f"{self.bpmn_id!r} is {type(value).__name__}, not a list.",
                task=my_task,
            )
        value = self._evaluate(my_task, self.cardinality or "0", my_task.data, "loop cardinality")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise WorkflowTaskException(
                f"The loop cardinality {self.cardinality!r} of the multi-instance activity "
                f"{self.bpmn_id!r} is {value!r}, not a whole number of 0 or more.",
                task=my_task,
            )
        self._check_count(my_task, value, f"loop cardinality {self.cardinality!r}")
        return list(range(value))

    def _check_count(self, my_task: Task, count: int, source: str) -> None:
        limit = max_instances()
        if count > limit:
            raise WorkflowTaskException(
                f"The {source} of the multi-instance activity {self.bpmn_id!r} asks for "
                f"{count} instances; the limit is {limit} (BATON_MAX_MULTI_INSTANCES). Split "
                "the items into batches (a multi-instance call activity over batches) or "
                "raise the limit.",
                task=my_task,
            )

    def _evaluate(self, task: Task, expression: str, context: dict[str, Any], what: str) -> Any:
        try:
            return task.workflow.script_engine.environment.evaluate(expression, context)
        except SpiffWorkflowException:
            raise
        except Exception as exc:
            raise WorkflowTaskException(
                f"The {what} {expression!r} of the multi-instance activity {self.bpmn_id!r} "
                f"failed: {describe_error(exc)}",
                task=task,
                exception=exc,
            ) from exc

    def _start_next(self, my_task: Task) -> None:
        body = my_task.internal_data[BODY]
        index = body["next"]
        items = my_task.internal_data.get(ITEMS)
        key, item = items[index] if items is not None else (index, index)
        body["next"] = index + 1
        self._create_instance(my_task, index, key, item)

    def _create_instance(self, my_task: Task, index: int, key: Any, item: Any) -> None:
        task_spec = my_task.workflow.spec.task_specs[self.task_spec]
        if not task_spec.completed_event.is_connected(self.merge_child):
            task_spec.completed_event.connect(self.merge_child)
        child = my_task._add_child(task_spec, TaskState.WAITING)
        child.triggered = True
        child.internal_data[INSTANCE] = {"index": index, "key": key}
        local: dict[str, Any] = {
            LOOP_COUNTER: index,
            NR_OF_INSTANCES: my_task.internal_data[BODY]["n"],
        }
        if self.element_variable:
            if self.element_variable in my_task.data:
                raise WorkflowTaskException(
                    f"The element variable {self.element_variable!r} of the multi-instance "
                    f"activity {self.bpmn_id!r} is already a variable of the instance; "
                    "name it differently.",
                    task=my_task,
                )
            local[self.element_variable] = copy.deepcopy(item)
        child.data.update(local)
        child.task_spec._update(child)

    # -- completing -------------------------------------------------------------------------

    def _local_names(self) -> set[str]:
        names = set(STANDARD_VARIABLES)
        if self.element_variable:
            names.add(self.element_variable)
        return names

    def merge_child(self, workflow: Any, child: Task) -> None:
        my_task = child.parent
        if my_task is None or my_task.task_spec is not self:
            return
        body = my_task.internal_data[BODY]
        info = child.internal_data.setdefault(INSTANCE, {})
        if not info.get("merged"):
            self._keep_for_compensation(my_task, child, info)
            self._collect(my_task, child, info)
            body["completed"] += 1
            info["merged"] = True
        self._forget_merged(my_task, keep=child)
        if self._condition_holds(my_task, child):
            for instance in self._running_instances(my_task):
                instance.cancel()
            my_task._set_state(TaskState.READY)
        elif body["completed"] >= body["n"]:
            my_task._set_state(TaskState.READY)
        elif self.sequential:
            self._start_next(my_task)

    def _keep_for_compensation(self, my_task: Task, child: Task, info: dict[str, Any]) -> None:
        """An activity with a compensation handler keeps the data each instance left (with its
        loopCounter): the instance leaves the tree, but each completed one is compensated
        (engine.bpmn.compensating)."""
        if self.name in handlers_of(my_task.workflow.spec):
            my_task.internal_data.setdefault(INSTANCES, []).append(
                {
                    "at": child.last_state_change,
                    "index": info.get("index"),
                    "data": copy.deepcopy(child.data),
                }
            )

    def _collect(self, my_task: Task, child: Task, info: dict[str, Any]) -> None:
        if self.output_collection:
            value: Any = child.data
            if self.output_expression:
                value = self._evaluate(child, self.output_expression, child.data, "output element")
            for name in self.output_element or []:
                value = value.get(name) if isinstance(value, Mapping) else None
            outputs = my_task.data.get(self.output_collection)
            if isinstance(outputs, dict):
                outputs[info.get("key")] = copy.deepcopy(value)
            elif isinstance(outputs, list) and info.get("index", 0) < len(outputs):
                outputs[info["index"]] = copy.deepcopy(value)
            return
        local = self._local_names()
        DeepMerge.merge(my_task.data, {k: v for k, v in child.data.items() if k not in local})

    def _condition_holds(self, my_task: Task, child: Task) -> bool:
        if not (self.condition or "").strip():
            return False
        body = my_task.internal_data[BODY]
        active = len(self._running_instances(my_task))
        context = {**my_task.data, **child.data}
        if self.output_collection:
            context[self.output_collection] = my_task.data.get(self.output_collection)
        context.update(
            {
                NR_OF_INSTANCES: body["n"],
                NR_OF_COMPLETED: body["completed"],
                NR_OF_ACTIVE: 1 if self.sequential else active,
                LOOP_COUNTER: child.internal_data.get(INSTANCE, {}).get("index"),
            }
        )
        return bool(self._evaluate(child, self.condition or "", context, "completion condition"))

    def _running_instances(self, my_task: Task) -> list[Task]:
        return [
            c
            for c in my_task.children
            if c.task_spec.name == self.task_spec and not c.has_state(TaskState.FINISHED_MASK)
        ]

    def _forget_merged(self, my_task: Task, keep: Task) -> None:
        """Remove the instance merged before `keep` (whose completion is still running: it
        is removed at the next merge, or with the activity): one instance per merge, so a
        merge costs the same whatever the number of instances."""
        body = my_task.internal_data[BODY]
        previous = body.pop("merged", None)
        body["merged"] = str(keep.id)
        if previous is None or previous == str(keep.id):
            return
        instance = my_task.workflow.tasks.get(UUID(previous))
        if (
            instance is not None
            and instance.parent is my_task
            and instance.state == TaskState.COMPLETED
        ):
            self._forget(my_task, instance)

    def _forget_finished(self, my_task: Task) -> None:
        """Remove every instance that completed or was cancelled, when the activity
        completes."""
        my_task.internal_data[BODY].pop("merged", None)
        for instance in list(my_task.children):
            if instance.task_spec.name == self.task_spec and instance.state in (
                TaskState.COMPLETED,
                TaskState.CANCELLED,
            ):
                self._forget(my_task, instance)

    def _forget(self, my_task: Task, instance: Task) -> None:
        """Remove a finished instance with its subprocesses; what completed in them is kept
        on the activity (`removed_completions`)."""
        top = my_task.workflow.top_workflow
        done = my_task.internal_data[BODY].setdefault("done", [])
        if instance.state == TaskState.COMPLETED:
            done.append([instance.last_state_change, self.bpmn_id])
        subprocess = top.subprocesses.get(instance.id)
        if subprocess is not None:
            done.extend(completions_inside(top, subprocess))
            top.delete_subprocess(instance)
        my_task.workflow._remove_task(instance.id)

    def _on_complete_hook(self, my_task: Task) -> None:
        self._forget_finished(my_task)
        my_task.internal_data.pop(ITEMS, None)
        super()._on_complete_hook(my_task)

    def task_info(self, my_task: Task) -> dict[str, Any]:
        info: dict[str, Any] = BpmnSpecMixin.task_info(self, my_task)
        info.update(instance_counts(my_task) or {})
        return info


def instance_counts(task: Task) -> dict[str, int] | None:
    """For the task of a multi-instance activity: its instances, how many completed and how
    many are still running; None for any other task."""
    spec = task.task_spec
    if not isinstance(spec, BatonMultiInstanceTask):
        return None
    body = task.internal_data.get(BODY) or {}
    running = sum(
        1
        for c in task.children
        if c.task_spec.name == spec.task_spec and not c.has_state(TaskState.FINISHED_MASK)
    )
    return {"total": body.get("n", 0), "completed": body.get("completed", 0), "active": running}


def removed_completions(task: Task) -> list[tuple[float, str]]:
    """(when, element id) of what completed in the instances of a multi-instance activity
    that were removed from the task tree: the instances and the elements inside them."""
    if not isinstance(task.task_spec, BatonMultiInstanceTask):
        return []
    done = (task.internal_data.get(BODY) or {}).get("done", [])
    return [(float(at), str(element_id)) for at, element_id in done]


def completions(tasks: Any) -> list[tuple[float, str]]:
    """(when, element id) of every element that completed among `tasks`: a multi-instance
    activity counts as its instances (those removed from the tree included), not itself."""
    done: list[tuple[float, str]] = []
    for task in tasks:
        element_id = getattr(task.task_spec, "bpmn_id", None)
        if not element_id:
            continue
        if isinstance(task.task_spec, BatonMultiInstanceTask):
            done.extend(removed_completions(task))
        elif task.state == TaskState.COMPLETED:
            done.append((task.last_state_change, element_id))
    return done


def completions_inside(top: Any, subprocess: Any) -> list[list[Any]]:
    """What completed inside a subprocess and the subprocesses it started, as stored lists."""
    tasks = list(subprocess.tasks.values())
    nested = [sp for sp in top.subprocesses.values() if sp.parent_task_id in subprocess.tasks]
    found = [[at, element_id] for at, element_id in completions(tasks)]
    for inner in nested:
        found.extend(completions_inside(top, inner))
    return found


def is_instance(task: Task) -> bool:
    """Whether `task` is one instance of a multi-instance activity."""
    parent = task.parent
    return (
        parent is not None
        and isinstance(parent.task_spec, BatonMultiInstanceTask)
        and task.task_spec.name == parent.task_spec.task_spec
    )


def visible_data(task: Task) -> dict[str, Any]:
    """The part of a task's data that is the process's variables: all of it, except for an
    instance of a multi-instance activity its local names and its (stale) copy of the output
    collection, which the activity holds."""
    if not is_instance(task):
        return dict(task.data)
    spec: BatonMultiInstanceTask = task.parent.task_spec
    hidden = spec._local_names() | ({spec.output_collection} if spec.output_collection else set())
    return {k: v for k, v in task.data.items() if k not in hidden}


class BatonMultiInstanceTaskConverter(BpmnTaskSpecConverter):
    def to_dict(self, spec: BatonMultiInstanceTask) -> dict[str, Any]:
        dct: dict[str, Any] = self.get_default_attributes(spec)
        if spec.output_expression:  # specs without one are stored as before
            dct["output_expression"] = spec.output_expression
        dct.update(
            task_spec=spec.task_spec,
            sequential=spec.sequential,
            cardinality=spec.cardinality,
            collection=spec.collection,
            element_variable=spec.element_variable,
            output_collection=spec.output_collection,
            output_element=spec.output_element,
            condition=spec.condition,
        )
        return dct


MULTI_INSTANCE_CONVERTERS = {BatonMultiInstanceTask: BatonMultiInstanceTaskConverter}


# -- reading the diagram ----------------------------------------------------------------------


class MultiInstanceParserMixin:
    """Put in front of an activity's parser: reads its multi-instance loop in any dialect."""

    # Set by the library's TaskParser this is mixed into.
    node: etree._Element
    task: Any
    spec: Any
    filename: str

    def _add_multiinstance_task(self, loop: etree._Element) -> None:
        definition = read_loop(self.node, loop, self._loop_refusal)
        original = self.spec.task_specs.pop(self.task.name)
        self.task = BatonMultiInstanceTask(
            self.spec,
            original.name,
            "",
            description="Multi-instance activity",
            **definition,
        )
        self._copy_task_attrs(original, loop)  # type: ignore[attr-defined]

    def _loop_refusal(self, message: str) -> ValidationException:
        return ValidationException(message, node=self.node, file_name=self.filename)


def _text(node: etree._Element | None) -> str | None:
    if node is None:
        return None
    text = (node.text or "").strip()
    return text or None


def _child(parent: etree._Element, tag: str) -> etree._Element | None:
    return parent.find(f"{{{BPMN_NS}}}{tag}")


def _zeebe_loop(activity: etree._Element, loop: etree._Element) -> etree._Element | None:
    for holder in (loop, activity):
        found = holder.find(f"{{{BPMN_NS}}}extensionElements/{{{ZEEBE_NS}}}loopCharacteristics")
        if found is not None:
            return found
    return None


def _feel_path(value: str | None, what: str, element_id: str, refuse: Any) -> str | None:
    """A Camunda 8 expression `= name` (or `= a.b`) as the path it names; anything else is
    refused (Baton reads no other FEEL)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    text = text[1:].strip() if text.startswith("=") else text
    if not _PATH.match(text):
        raise refuse(
            f"The {what} {value!r} of the multi-instance activity {element_id!r} cannot be "
            "read: Baton reads a variable name or a path of names there (approvers, "
            "order.items; in Camunda 8 = approvers), no other expression."
        )
    return text


def _camunda_expression(value: str | None) -> str | None:
    """A Camunda 7 value: `${...}` is JUEL (engine.bpmn.expressions reads it when it is
    evaluated), anything else Python."""
    if value is None or not value.strip():
        return None
    return value.strip()


def _checked_expression(
    expression: str | None, what: str, element_id: str, refuse: Any
) -> str | None:
    if expression is None:
        return None
    try:
        check_syntax(expression, expression=True)
    except ScriptSyntaxError as exc:
        raise refuse(
            f"The {what} {expression!r} of the multi-instance activity {element_id!r} cannot "
            f"be read: {exc}"
        ) from None
    return expression


def _name(value: str | None, what: str, element_id: str, refuse: Any) -> str | None:
    if value is None or not value.strip():
        return None
    text = value.strip()
    if not _PATH.match(text) or "." in text:
        raise refuse(
            f"The {what} {value!r} of the multi-instance activity {element_id!r} must be a "
            "variable name (letters, digits and _)."
        )
    return text


def _item_name(node: etree._Element | None) -> str | None:
    if node is None:
        return None
    return node.get("name") or node.get("id")


def _refuse_behavior_events(element_id: str, loop: etree._Element, refuse: Any) -> None:
    named = [a for a in ("oneBehaviorEventRef", "noneBehaviorEventRef") if loop.get(a)]
    if _child(loop, "complexBehaviorDefinition") is not None:
        named.append("complexBehaviorDefinition")
    if named:
        raise refuse(
            f"The multi-instance activity {element_id!r} names an event to throw "
            f"({', '.join(named)}); Baton throws no multi-instance behavior events: remove it "
            "and model the event after the activity."
        )


def _zeebe_loop_reading(element_id: str, zeebe: etree._Element, refuse: Any) -> dict[str, Any]:
    written = (zeebe.get("inputCollection") or "").strip()
    collection: str | None
    if written.startswith("=") and not _PATH.match(written[1:].strip()):
        collection = written  # any other FEEL expression (engine.bpmn.expressions)
    else:
        path = _feel_path(written, "input collection", element_id, refuse)
        collection = _path_expression(path) if path else None
    written_output = (zeebe.get("outputElement") or "").strip()
    output_expression: str | None = None
    output: str | None = None
    if written_output.startswith("=") and not _PATH.match(written_output[1:].strip()):
        output_expression = written_output  # any other FEEL expression (engine.bpmn.expressions)
    else:
        output = _feel_path(written_output, "output element", element_id, refuse)
    return {
        "collection": collection,
        "element_variable": _name(zeebe.get("inputElement"), "input element", element_id, refuse),
        "output_collection": _name(
            zeebe.get("outputCollection"), "output collection", element_id, refuse
        ),
        "output_element": output.split(".") if output else None,
        "output_expression": output_expression,
    }


def _bpmn_loop_reading(element_id: str, loop: etree._Element, refuse: Any) -> dict[str, Any]:
    """Camunda 7's `camunda:collection`/`elementVariable`, or BPMN's data inputs and outputs."""
    camunda_collection = loop.get(f"{{{CAMUNDA_NS}}}collection")
    input_ref = _text(_child(loop, "loopDataInputRef"))
    collection: str | None = None
    if camunda_collection:
        collection = _camunda_expression(camunda_collection)
    elif input_ref:
        collection = _path_expression(
            _feel_path(input_ref, "loop data input", element_id, refuse) or input_ref
        )
    element_variable = loop.get(f"{{{CAMUNDA_NS}}}elementVariable") or _item_name(
        _child(loop, "inputDataItem")
    )
    output_collection = _name(
        _text(_child(loop, "loopDataOutputRef")), "loop data output", element_id, refuse
    )
    output_item = _name(
        _item_name(_child(loop, "outputDataItem")), "output data item", element_id, refuse
    )
    return {
        "collection": collection,
        "element_variable": _name(element_variable, "element variable", element_id, refuse),
        "output_collection": output_collection,
        "output_element": [output_item] if output_collection and output_item else None,
        "output_expression": None,
    }


def read_loop(activity: etree._Element, loop: etree._Element, refuse: Any) -> dict[str, Any]:
    """The multi-instance loop of `activity` as BatonMultiInstanceTask's arguments; `refuse`
    makes the exception that refuses the diagram."""
    element_id = activity.get("id") or ""
    _refuse_behavior_events(element_id, loop, refuse)
    zeebe = _zeebe_loop(activity, loop)
    reading = (
        _zeebe_loop_reading(element_id, zeebe, refuse)
        if zeebe is not None
        else _bpmn_loop_reading(element_id, loop, refuse)
    )
    condition = _text(_child(loop, "completionCondition"))
    cardinality = _camunda_expression(_text(_child(loop, "loopCardinality")))
    if reading["output_collection"] and not (
        reading["output_element"] or reading["output_expression"]
    ):
        raise refuse(
            f"The multi-instance activity {element_id!r} collects into "
            f"{reading['output_collection']!r} but names no output element (outputDataItem, "
            "outputElement) to collect."
        )
    if reading["collection"] is None and cardinality is None:
        raise refuse(
            f"The multi-instance activity {element_id!r} needs a loop cardinality or an input "
            "collection (camunda:collection, loopDataInputRef, zeebe inputCollection)."
        )
    return {
        **reading,
        "sequential": loop.get("isSequential", "false").strip().lower() == "true",
        "cardinality": None
        if reading["collection"] is not None
        else _checked_expression(cardinality, "loop cardinality", element_id, refuse),
        "collection": _checked_expression(
            reading["collection"], "input collection", element_id, refuse
        ),
        "condition": _checked_expression(
            _camunda_expression(condition), "completion condition", element_id, refuse
        ),
        "output_expression": _checked_expression(
            reading["output_expression"], "output element", element_id, refuse
        ),
    }


def multi_instance_parser_overrides(
    parser_classes: dict[str, tuple[type, type]],
) -> dict[str, tuple[type, type]]:
    """The activity parsers of `parser_classes`, each reading multi-instance loops as Baton does."""
    overrides = {}
    for tag in ACTIVITY_TAGS:
        full = f"{{{BPMN_NS}}}{tag}"
        if full in parser_classes:
            parser_class, spec_class = parser_classes[full]
            name = f"BatonMI{parser_class.__name__}"
            overrides[full] = (type(name, (MultiInstanceParserMixin, parser_class), {}), spec_class)
    return overrides
