"""Test coverage of processes: which elements and sequence flows the tests ran, per process
key, across every instance the tests started. Printed as a table, written as JSON
(`--baton-coverage=FILE`, `manage.py test_processes`) and shown on the process page once
stored (`manage.py load_test_coverage FILE`).

The JSON report: `{"format": FORMAT, "processes": {key: {"elements": {id: kind},
"flows": [ids], "elements_run": [ids], "flows_taken": [ids], "instances": n}}}`.
"""

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.selectors.process_paths import (
    definition_graph,
    element_runs,
    flows_taken,
    instance_definition_id,
)
from processes.models import ProcessDefinition

FORMAT = "baton-test-coverage/1"


def percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 100.0


@dataclass
class ProcessCoverage:
    key: str
    elements: dict[str, str]  # element id -> kind, every element of the diagram
    flows: list[str]  # every sequence flow id
    elements_run: set[str] = field(default_factory=set)
    flows_taken: set[str] = field(default_factory=set)
    instances: int = 0

    @property
    def element_percent(self) -> float:
        return percent(len(self.elements_run), len(self.elements))

    @property
    def flow_percent(self) -> float:
        return percent(len(self.flows_taken), len(self.flows))

    def to_json(self) -> dict[str, Any]:
        return {
            "elements": dict(sorted(self.elements.items())),
            "flows": sorted(self.flows),
            "elements_run": sorted(self.elements_run),
            "flows_taken": sorted(self.flows_taken),
            "instances": self.instances,
            "element_percent": self.element_percent,
            "flow_percent": self.flow_percent,
        }

    @classmethod
    def from_json(cls, key: str, data: dict[str, Any]) -> "ProcessCoverage":
        elements = {str(k): str(v) for k, v in dict(data["elements"]).items()}
        flows = [str(f) for f in data["flows"]]
        return cls(
            key=key,
            elements=elements,
            flows=flows,
            # Only what the diagram has: a report of another version may name more.
            elements_run={str(e) for e in data["elements_run"]} & set(elements),
            flows_taken={str(f) for f in data["flows_taken"]} & set(flows),
            instances=int(data.get("instances", 0)),
        )


class Coverage:
    """Coverage per process key, added up over instances (and over reports: `merge`)."""

    def __init__(self) -> None:
        self.processes: dict[str, ProcessCoverage] = {}

    def __bool__(self) -> bool:
        return bool(self.processes)

    def add_instance(self, instance_id: uuid.UUID) -> None:
        """Count what one instance ran (read now: a test's rows vanish with its transaction)."""
        definition_id = instance_definition_id(instance_id)
        key = ProcessDefinition.objects.values_list("key", flat=True).get(pk=definition_id)
        graph = definition_graph(definition_id)
        runs = element_runs(instance_id)
        entry = self.processes.setdefault(
            key, ProcessCoverage(key, dict(graph.elements), list(graph.flows))
        )
        entry.instances += 1
        entry.elements_run |= {r.element_id for r in runs} & set(entry.elements)
        entry.flows_taken |= flows_taken(graph, runs) & set(entry.flows)

    def merge(self, other: "Coverage") -> None:
        for key, theirs in other.processes.items():
            mine = self.processes.get(key)
            if mine is None:
                self.processes[key] = theirs
                continue
            mine.elements_run |= theirs.elements_run & set(mine.elements)
            mine.flows_taken |= theirs.flows_taken & set(mine.flows)
            mine.instances += theirs.instances

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "processes": {k: p.to_json() for k, p in sorted(self.processes.items())},
        }

    @classmethod
    def from_json(cls, data: Any) -> "Coverage":
        """A report as written by `to_json`; ValueError when it is not one."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"Not a Baton test coverage report (format {FORMAT!r} expected).")
        coverage = cls()
        try:
            for key, entry in dict(data["processes"]).items():
                coverage.processes[str(key)] = ProcessCoverage.from_json(str(key), entry)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"The coverage report is malformed: {exc!r}") from None
        return coverage

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    def table(self) -> str:
        """The coverage as a text table, one row per process key."""
        header = ("process", "instances", "elements", "flows")
        rows = [
            (
                p.key,
                str(p.instances),
                f"{len(p.elements_run)}/{len(p.elements)} {p.element_percent:.1f}%",
                f"{len(p.flows_taken)}/{len(p.flows)} {p.flow_percent:.1f}%",
            )
            for p in sorted(self.processes.values(), key=lambda p: p.key)
        ]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
        head = "  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True))
        missing = [
            f"  {p.key}: not run: {', '.join(sorted(set(p.elements) - p.elements_run))}"
            for p in sorted(self.processes.values(), key=lambda p: p.key)
            if set(p.elements) - p.elements_run
        ]
        return "\n".join([head, *lines, *missing])
