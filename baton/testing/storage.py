"""Storing a coverage report where the process page shows it (processes.CoverageReport)."""

from processes.services import record_coverage

from .coverage import Coverage


def store_coverage(coverage: Coverage, source: str) -> int:
    """Store one report per process key; returns how many were stored."""
    for entry in coverage.processes.values():
        record_coverage(
            key=entry.key,
            source=source,
            elements=entry.elements,
            flows=entry.flows,
            elements_run=sorted(entry.elements_run),
            flows_taken=sorted(entry.flows_taken),
            instances=entry.instances,
        )
    return len(coverage.processes)
