"""The conformance cases: one small diagram per construct and behaviour variant
(`cases/<topic>/<case>.bpmn`) with its expected run beside it (`<case>.json`)."""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CASES_DIR = Path(__file__).resolve().parent / "cases"
KNOWN_KEYS = {
    "construct",
    "variables",
    "steps",
    "status",
    "trace",
    "ordered",
    "expect_variables",
    "refused",
    "note",
    "process",
    "start",
    "others",
    "incident",
}
STEP_KINDS = {"complete", "message", "signal", "timers", "jobs", "start", "external"}
START_KINDS = {"message", "signal", "timers"}
OTHER_KEYS = {"process", "status", "trace", "ordered", "expect_variables"}


@dataclass(frozen=True)
class Case:
    """One diagram and what running it must give."""

    case_id: str  # "<topic>/<case>"
    construct: str
    bpmn: Path
    variables: dict[str, Any] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)
    status: str = "completed"
    trace: list[str] = field(default_factory=list)
    ordered: bool = True
    expect_variables: dict[str, Any] = field(default_factory=dict)
    refused: str | None = None
    process: str | None = None  # the process to start; the first executable one without it
    # How the instance starts: a message, signal or timer step (a start event) instead of
    # starting the process by hand.
    start: dict[str, Any] | None = None
    # What other instances (the newest of each process named) must show at the end.
    others: list[dict[str, Any]] = field(default_factory=list)
    # What the instance's incident must say: each text a substring of that field's value
    # (`{"element_id": "compute", "error": "division by zero"}`).
    incident: dict[str, Any] = field(default_factory=dict)
    extra_files: list[Path] = field(default_factory=list)  # `<case>.dmn` deployed with it


def _read(sidecar: Path) -> Case:
    spec = json.loads(sidecar.read_text())
    unknown = set(spec) - KNOWN_KEYS
    if unknown:
        raise ValueError(f"{sidecar}: unknown keys {sorted(unknown)}")
    for step in spec.get("steps", []):
        if len(set(step) & STEP_KINDS) != 1:
            raise ValueError(f"{sidecar}: a step must be one of {sorted(STEP_KINDS)}: {step}")
    start = spec.get("start")
    if start is not None and len(set(start) & START_KINDS) != 1:
        raise ValueError(f"{sidecar}: a start must be one of {sorted(START_KINDS)}: {start}")
    for other in spec.get("others", []):
        if "process" not in other or set(other) - OTHER_KEYS:
            raise ValueError(f"{sidecar}: an other instance takes {sorted(OTHER_KEYS)}: {other}")
    bpmn = sidecar.with_suffix(".bpmn")
    if not bpmn.exists():
        raise ValueError(f"{sidecar}: no diagram {bpmn.name} beside it")
    return Case(
        case_id=f"{sidecar.parent.name}/{sidecar.stem}",
        construct=spec["construct"],
        bpmn=bpmn,
        variables=spec.get("variables", {}),
        steps=spec.get("steps", []),
        status=spec.get("status", "completed"),
        trace=spec.get("trace", []),
        ordered=spec.get("ordered", True),
        expect_variables=spec.get("expect_variables", {}),
        refused=spec.get("refused"),
        process=spec.get("process"),
        start=start,
        others=spec.get("others", []),
        incident=spec.get("incident", {}),
        extra_files=[p for p in [sidecar.with_suffix(".dmn")] if p.exists()],
    )


def all_cases() -> list[Case]:
    return [_read(sidecar) for sidecar in sorted(CASES_DIR.glob("*/*.json"))]
