"""Opt-in diagnostics of the benchmarks (`--diagnose`): what one operation costs inside a
Django-configured process -- its SQL queries by kind, the time spent in the database, the
plans of the queries (bench/inbox.py). Not part of the measured figures."""

import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


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


def shorten(sql: str, limit: int = 160) -> str:
    """The query without its long select list."""
    text = re.sub(r"^SELECT .*? FROM", "SELECT … FROM", sql, count=1, flags=re.S)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def postgres_settings(*names: str) -> dict[str, str]:
    from django.db import connection

    settings = {}
    with connection.cursor() as cursor:
        for name in names:
            cursor.execute(f"SHOW {name}")
            settings[name] = cursor.fetchone()[0]
    return settings


def explain(sql: str) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of `sql`: Postgres's plan, its times, indexes and scans."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
        plan = [row[0] for row in cursor.fetchall()]
    text = "\n".join(plan)
    scans = re.findall(
        r"((?:Parallel )?(?:Seq|Index|Index Only|Bitmap Heap|Bitmap Index) Scan[^(]*)", text
    )
    times = dict(re.findall(r"(Planning|Execution) Time: ([\d.]+) ms", text))
    buffers = re.search(r"Buffers: shared(?: hit=(\d+))?(?: read=(\d+))?", text)
    return {
        "execution_ms": float(times.get("Execution", 0)),
        "planning_ms": float(times.get("Planning", 0)),
        "indexes": sorted(set(re.findall(r" using (\w+)", text))),
        "scans": [scan.strip() for scan in scans],
        "seq_scan_on_humantask": "Seq Scan on engine_humantask" in text,
        "shared_buffers_hit": int(buffers.group(1) or 0) if buffers else None,
        "shared_buffers_read": int(buffers.group(2) or 0) if buffers else None,
        "plan": plan,
    }
