"""The path an instance took through its diagram: the elements it entered, in order, and the
sequence flows it went along. Process tests assert on it and count coverage (baton.testing).

Elements come from the element-run history (engine.models.ElementRun). A flow is not recorded
by the engine, so it is derived from the runs and the diagram: a run of element T came along
the flow S -> T from the run of a source S of T's incoming flows that ended last before T's
run started (SpiffWorkflow's next task starts when the task before it ends, so the times meet
exactly); a joining parallel or inclusive gateway came along every incoming flow whose source
ran before it. This tells the flows apart where the timestamps do (a gateway's default flow
to an element that another branch also reaches later is not counted as taken).
"""

import datetime
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from engine.bpmn.element_runs import element_result_variables
from engine.bpmn.flow_graph import ProcessGraph, process_graph
from engine.bpmn.serialization import spec_from_json
from engine.models import ElementRun, ProcessInstance
from processes.models import ProcessDefinition

PROCESS_TYPE = ElementRun.PROCESS_TYPE
_JOINS = ("parallelGateway", "inclusiveGateway")


@dataclass(frozen=True)
class StepRun:
    id: int
    element_id: str
    started_at: datetime.datetime
    ended_at: datetime.datetime | None
    outcome: str


def element_runs(instance_id: uuid.UUID) -> list[StepRun]:
    """The instance's element runs in the order they started (the process's own run left out)."""
    rows = (
        ElementRun.objects.filter(instance_id=instance_id)
        .exclude(element_type=PROCESS_TYPE)
        .order_by("started_at", "id")
        .values_list("id", "element_id", "started_at", "ended_at", "outcome")
    )
    return [StepRun(*row) for row in rows]


def definition_graph(definition_id: int) -> ProcessGraph:
    key, xml = ProcessDefinition.objects.values_list("key", "bpmn_xml").get(pk=definition_id)
    return process_graph(xml, key)


def service_result_variables(definition_id: int) -> dict[str, str]:
    """Service task element id -> its result variable, in a definition."""
    dialect, spec = ProcessDefinition.objects.values_list("dialect", "spec").get(pk=definition_id)
    return element_result_variables(*spec_from_json(dialect, spec))


def _came_from(run: StepRun, sources: Iterable[StepRun]) -> list[StepRun]:
    return [s for s in sources if s.ended_at is not None and s.ended_at <= run.started_at]


def flows_taken(graph: ProcessGraph, runs: list[StepRun]) -> set[str]:
    """The ids of the flows of `graph` that the instance with `runs` went along."""
    by_element: dict[str, list[StepRun]] = {}
    for run in runs:
        by_element.setdefault(run.element_id, []).append(run)
    taken: set[str] = set()
    for run in runs:
        incoming = graph.incoming(run.element_id)
        if not incoming:
            continue
        candidates = {
            flow: _came_from(run, by_element.get(source, [])) for flow, source in incoming.items()
        }
        if graph.elements.get(run.element_id) in _JOINS and len(incoming) > 1:
            taken.update(flow for flow, found in candidates.items() if found)
            continue
        latest = [
            (max((s.ended_at, s.id) for s in found), flow)
            for flow, found in candidates.items()
            if found
        ]
        if latest:
            newest = max(latest)[0]
            taken.update(flow for key, flow in latest if key == newest)
    return taken


def instance_definition_id(instance_id: uuid.UUID) -> int:
    return int(
        ProcessInstance.objects.filter(pk=instance_id).values_list("definition_id", flat=True).get()
    )
