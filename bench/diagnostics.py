"""Opt-in diagnostics of the benchmarks (`--diagnose`): what one operation costs inside a
Django-configured process -- its SQL queries by kind, the time spent in the database, and with
cProfile the functions of Baton that cost the most. Not part of the measured figures."""

import cProfile
import json
import pstats
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from bench.common import BASE_DIR


@dataclass
class SqlTimer:
    """A `connection.execute_wrapper`: every query (as sent, parameters filled in, so that it
    can be EXPLAINed) with the seconds it took."""

    queries: list[tuple[str, float]] = field(default_factory=list)

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            seconds = time.perf_counter() - began
            sent = context["connection"].ops.last_executed_query(context["cursor"], sql, params)
            self.queries.append((sent or sql, seconds))

    @property
    def seconds(self) -> float:
        return sum(seconds for _, seconds in self.queries)

    def kinds(self) -> dict[str, int]:
        return dict(sorted(Counter(query_kind(sql) for sql, _ in self.queries).items()))


@contextmanager
def timed_sql() -> Iterator[SqlTimer]:
    from django.db import connection

    timer = SqlTimer()
    with connection.execute_wrapper(timer):
        yield timer


def query_kind(sql: str) -> str:
    """`UPDATE engine_servicejob`, `SELECT engine_processinstance FOR NO KEY UPDATE`,
    `SELECT COUNT engine_humantask`, `SELECT pg_try_advisory_lock()`, `SAVEPOINT` ..."""
    words = sql.split()
    verb = words[0].upper() if words else "?"
    if verb in ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE", "ROLLBACK"):
        return verb
    if verb in ("INSERT", "UPDATE", "DELETE"):
        table = re.search(r'(?:INTO|UPDATE|FROM)\s+"?(\w+)"?', sql, re.IGNORECASE)
        return f"{verb} {table.group(1) if table else '?'}"
    table = re.search(r'\bFROM\s+"?(\w+)"?', sql, re.IGNORECASE)
    function = re.match(r"\s*SELECT\s+(\w+)\(", sql, re.IGNORECASE)
    count = " COUNT" if re.match(r"\s*SELECT\s+COUNT\(", sql, re.IGNORECASE) else ""
    target = table.group(1) if table else (f"{function.group(1)}()" if function else "?")
    lock = re.search(r"FOR (NO KEY )?UPDATE", sql)
    return f"{verb}{count} {target}" + (f" {lock.group(0)}" if lock else "")


def profiled(action: Callable[[], Any], repeat: int) -> list[str]:
    """Run `action` `repeat` times under cProfile: the 20 functions of Baton with the most
    cumulative time, per run (the profiler's own overhead inflates them)."""
    profiler = cProfile.Profile()
    for _ in range(repeat):
        profiler.runcall(action)
    rows = []
    stats: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    for (filename, line, name), (_cc, calls, _tottime, cumtime, _) in stats.items():
        if (
            filename.startswith(str(BASE_DIR))
            and "/site-packages/" not in filename
            and "/bench/" not in filename
        ):
            where = f"{filename[len(str(BASE_DIR)) + 1 :]}:{line}({name})"
            rows.append((cumtime, calls, where))
    return [
        f"{seconds / repeat * 1000:.2f} ms {calls / repeat:g} calls  {where}"
        for seconds, calls, where in sorted(rows, reverse=True)[:20]
    ]


def shorten(sql: str, limit: int = 160) -> str:
    """The query without its long select list."""
    text = re.sub(r"^SELECT .*? FROM", "SELECT … FROM", sql, count=1, flags=re.S)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def walk_plan(
    node: dict[str, Any], depth: int, lines: list[str], indexes: set[str], scans: list[str]
) -> None:
    kind = node.get("Node Type", "?")
    what = []
    if node.get("Strategy") and kind in ("Aggregate", "SetOp"):
        what.append(node["Strategy"])
    if node.get("Sort Method"):
        what.append(node["Sort Method"])
    if node.get("Relation Name"):
        what.append(f"on {node['Relation Name']}")
    if node.get("Index Name"):
        what.append(f"using {node['Index Name']}")
        indexes.add(node["Index Name"])
    if "Scan" in kind:
        scans.append(" ".join([kind, *what]))
    rows = node.get("Actual Rows")
    loops = node.get("Actual Loops", 1)
    detail = f"rows={rows} est={node.get('Plan Rows')}"
    detail += f" loops={loops}" if loops != 1 else ""
    if node.get("Workers Launched"):
        detail += f" workers={node['Workers Launched']}"
    if node.get("Rows Removed by Filter"):
        detail += f" removed_by_filter={node['Rows Removed by Filter']}"
    if node.get("Rows Removed by Index Recheck"):
        detail += f" removed_by_recheck={node['Rows Removed by Index Recheck']}"
    if node.get("Exact Heap Blocks"):
        detail += f" heap_blocks={node['Exact Heap Blocks']}"
    detail += f" time={node.get('Actual Total Time')}ms"
    lines.append(f"{'  ' * depth}{' '.join([kind, *what])} ({detail})")
    for child in node.get("Plans", []):
        walk_plan(child, depth + 1, lines, indexes, scans)


def explain(sql: str) -> dict[str, Any]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}")
        row = cursor.fetchone()
    document = row[0] if not isinstance(row[0], str) else json.loads(row[0])
    plan = document[0]
    lines: list[str] = []
    indexes: set[str] = set()
    scans: list[str] = []
    walk_plan(plan["Plan"], 0, lines, indexes, scans)
    top = plan["Plan"]
    return {
        "execution_ms": round(plan.get("Execution Time", 0.0), 3),
        "planning_ms": round(plan.get("Planning Time", 0.0), 3),
        "indexes": sorted(indexes),
        "scans": scans,
        "seq_scan_on_humantask": any(s.startswith("Seq Scan on engine_humantask") for s in scans),
        "shared_buffers_hit": top.get("Shared Hit Blocks"),
        "shared_buffers_read": top.get("Shared Read Blocks"),
        "plan": lines,
    }
