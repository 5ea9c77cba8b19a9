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
# What a report read back (`manage.py load_test_coverage`, maybe a CI artefact of unknown
# origin) may hold: the bytes read at most, ids as long as an element id column takes, and
# so many elements, flows or instances per process. Anything beyond is refused whole.
MAX_REPORT_BYTES = 10 * 1024 * 1024
MAX_ID_LENGTH = 255
MAX_IDS = 100_000
MAX_INSTANCES = 2**31 - 1  # the column's range


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
    def from_json(cls, key: str, data: Any) -> "ProcessCoverage":
        """One process's entry of a report; ValueError naming what is wrong."""
        if not isinstance(data, dict):
            raise ValueError(f"process {key!r}: an object expected")
        kinds = data.get("elements")
        if not isinstance(kinds, dict):
            raise ValueError(f"process {key!r}: 'elements' must be an object (id -> kind)")
        elements = dict(
            zip(
                _ids(key, "elements", list(kinds)),
                _ids(key, "element kinds", list(kinds.values())),
                strict=True,
            )
        )
        flows = _ids(key, "flows", data.get("flows"))
        instances = data.get("instances", 0)
        if type(instances) is not int or not 0 <= instances <= MAX_INSTANCES:
            raise ValueError(f"process {key!r}: 'instances' must be a whole number of 0 or more")
        return cls(
            key=key,
            elements=elements,
            flows=flows,
            # Only what the diagram has: a report of another version may name more.
            elements_run=set(_ids(key, "elements_run", data.get("elements_run"))) & set(elements),
            flows_taken=set(_ids(key, "flows_taken", data.get("flows_taken"))) & set(flows),
            instances=instances,
        )


def _ids(key: str, what: str, value: Any) -> list[str]:
    """`value` as a list of ids, or ValueError: a list of at most MAX_IDS non-empty strings
    of at most MAX_ID_LENGTH characters (a process page shows them)."""
    if not isinstance(value, list):
        raise ValueError(f"process {key!r}: {what!r} must be a list")
    if len(value) > MAX_IDS:
        raise ValueError(f"process {key!r}: more than {MAX_IDS:,} {what}")
    for item in value:
        if not isinstance(item, str) or not 0 < len(item) <= MAX_ID_LENGTH:
            raise ValueError(
                f"process {key!r}: {what} must be ids (text of 1 to {MAX_ID_LENGTH} "
                f"characters), not {str(item)[:40]!r}"
            )
    return value


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
        entry.elements_run |= graph.covered({r.element_id for r in runs}) & set(entry.elements)
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
        processes = data.get("processes")
        try:
            if not isinstance(processes, dict):
                raise ValueError("'processes' must be an object (process key -> coverage)")
            for key, entry in processes.items():
                if not 0 < len(key) <= MAX_ID_LENGTH:
                    raise ValueError(f"{key[:40]!r} is no process key")
                coverage.processes[key] = ProcessCoverage.from_json(key, entry)
        except ValueError as exc:
            raise ValueError(f"The coverage report is malformed: {exc}") from None
        return coverage

    @classmethod
    def read(cls, path: Path) -> "Coverage":
        """The report in file `path` (at most MAX_REPORT_BYTES are read: a device or a huge
        file is refused, not read whole); OSError, or ValueError when it is not one."""
        with path.open("rb") as stream:
            content = stream.read(MAX_REPORT_BYTES + 1)
        if len(content) > MAX_REPORT_BYTES:
            raise ValueError(
                f"The file is larger than {MAX_REPORT_BYTES // (1024 * 1024)} MiB: "
                "no coverage report is that large."
            )
        try:
            data = json.loads(content)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
            raise ValueError(f"Not JSON: {exc}") from None
        return cls.from_json(data)

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
