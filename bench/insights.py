"""Benchmark: the insights page and the statistics endpoint at 1,000,000 element runs.

    .venv/bin/python bench/insights.py [--instances 100000] [--requests 40]

Bulk-loads (SQL) `--instances` finished instances of the expense approval spread over the last
30 days, each with its 10 element runs (the process, start, script, user task, gateway,
script, end: 1,000,000 runs by default) and the hourly roll-ups the engine would have written
for them, then times `GET /processes/expense_approval/insights/` (with and without an element's
slowest runs), `GET /api/v1/definitions/expense_approval/statistics/` and the same filtered by
a business-key prefix (which reads runs, not roll-ups) on gunicorn with the production
settings. Latency is measured by a client on 127.0.0.1 (server time plus the loopback).
Its own database: `baton_bench_insights`.
"""

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (
    BASE_DIR,
    argument_parser,
    latency_summary,
    log,
    run_benchmark,
    web_server,
)
from tests.faults.stack import migrate_and_deploy

PROCESS_KEY = "expense_approval"
BPMN_FILE = BASE_DIR / "processes" / "bpmn" / "expense_approval.bpmn"
DATABASE = "baton_bench_insights"
# (element id, type, typical duration in ms); the gateway path alternates.
ELEMENTS = [
    ("expense_approval", "Process", 0),
    ("expense_submitted", "Default Start Event", 0),
    ("categorise", "Script Task", 4),
    ("approve_expense", "User Task", 0),
    ("approved_gateway", "Exclusive Gateway", 0),
    ("record_approval", "Script Task", 3),
    ("expense_approved", "Default End Event", 0),
]
SESSION_CODE = """
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore
user = User.objects.get(username="faults")
session = SessionStore()
session["_auth_user_id"] = str(user.pk)
session["_auth_user_backend"] = "engine.auth_backend.ModelBackendWithGroups"
session["_auth_user_hash"] = user.get_session_auth_hash()
session.create()
print("SESSION", session.session_key)
"""

LOAD_SQL = """
CREATE TEMP TABLE bench_instances AS
SELECT gen_random_uuid() AS id, n,
       now() - interval '30 days' + (n * interval '30 days' / %(count)s) AS started
  FROM generate_series(1, %(count)s) AS n;
INSERT INTO engine_processinstance (id, definition_id, business_key, status, state, variables,
                                    lock_version, created_at, updated_at, completed_at)
SELECT id, %(definition)s, 'B-' || lpad(n::text, 7, '0'), 'completed', '{}', '{}', 1, started,
       started + interval '2 hours', started + interval '2 hours'
  FROM bench_instances;
CREATE TEMP TABLE bench_elements (position int, element_id text, element_type text, ms int)
"""

RUNS_SQL = """
INSERT INTO engine_elementrun (instance_id, definition_id, spiff_task_id, element_id,
                               element_type, started_at, ended_at, duration_ms, outcome, actor)
SELECT i.id, %(definition)s, gen_random_uuid(), e.element_id, e.element_type, s.started_at,
       s.started_at + d.ms * interval '1 millisecond', d.ms,
       CASE WHEN e.element_id = 'record_approval' AND i.n %% 97 = 0 THEN 'incident'
            ELSE 'completed' END, ''
  FROM bench_instances i CROSS JOIN bench_elements e
  CROSS JOIN LATERAL (SELECT CASE
        WHEN e.element_type = 'Process' THEN 7200000 + (i.n %% 600) * 60000
        WHEN e.element_type = 'User Task' THEN 3600000 + (i.n %% 3000) * 2000
        ELSE e.ms + (i.n %% 7) END AS ms) d
  CROSS JOIN LATERAL (SELECT i.started + e.position * interval '1 second' AS started_at) s;
"""

ROLLUP_SQL = """
WITH counts AS (
    SELECT element_id, element_type, date_trunc('hour', started_at) AS hour, 1 AS started,
           0 AS completed, 0 AS incidents, 0 AS ended, 0::bigint AS ms, NULL::int AS bucket
      FROM engine_elementrun
    UNION ALL
    SELECT element_id, element_type, date_trunc('hour', ended_at), 0,
           (outcome = 'completed')::int, (outcome = 'incident')::int, 1, duration_ms,
           width_bucket(duration_ms, %(bounds)s::bigint[])
      FROM engine_elementrun
),
per_bucket AS (
    SELECT element_id, hour, bucket, count(*) AS n FROM counts WHERE bucket IS NOT NULL
     GROUP BY element_id, hour, bucket
),
buckets AS (
    SELECT k.element_id, k.hour, array_agg(COALESCE(p.n, 0)::int ORDER BY g) AS buckets
      FROM (SELECT DISTINCT element_id, hour FROM per_bucket) k
     CROSS JOIN generate_series(0, %(last)s) g
      LEFT JOIN per_bucket p ON p.element_id = k.element_id AND p.hour = k.hour AND p.bucket = g
     GROUP BY k.element_id, k.hour
)
INSERT INTO engine_elementrollup (definition_id, element_id, element_type, hour, shard, started,
                                  completed, cancelled, errors, incidents, ended,
                                  duration_ms_sum, buckets)
SELECT %(definition)s, c.element_id, max(c.element_type), c.hour, 0, sum(c.started),
       sum(c.completed), 0, 0, sum(c.incidents), sum(c.ended), sum(c.ms),
       COALESCE(b.buckets, ARRAY(SELECT 0 FROM generate_series(0, %(last)s)))
  FROM counts c LEFT JOIN buckets b ON b.element_id = c.element_id AND b.hour = c.hour
 GROUP BY c.element_id, c.hour, b.buckets;
"""


def load(env: dict[str, str], instances: int) -> dict[str, Any]:
    """Bulk-load the instances, their runs and roll-ups; returns counts and times."""
    import django
    import psycopg

    os.environ.update(env)
    django.setup()
    from engine.services.element_history import BUCKET_COUNT, DURATION_BUCKETS_MS

    began = time.perf_counter()
    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as db:
        row = db.execute(
            "SELECT id FROM processes_processdefinition WHERE key = %s", [PROCESS_KEY]
        ).fetchone()
        assert row is not None, "the process was not deployed"
        definition = row[0]
        with db.transaction():
            for statement in LOAD_SQL.split(";"):
                if statement.strip():
                    db.execute(statement, {"count": instances, "definition": definition})
            with db.cursor().copy("COPY bench_elements FROM STDIN") as copy:
                for position, (element_id, kind, ms) in enumerate(ELEMENTS):
                    copy.write_row((position, element_id, kind, ms))
            db.execute(RUNS_SQL, {"definition": definition})
            db.execute(
                ROLLUP_SQL,
                {
                    "definition": definition,
                    "bounds": list(DURATION_BUCKETS_MS),
                    "last": BUCKET_COUNT - 1,
                },
            )
        db.execute("VACUUM ANALYZE engine_elementrun")
        db.execute("VACUUM ANALYZE engine_elementrollup")
        runs = db.execute("SELECT count(*) FROM engine_elementrun").fetchone()
        rollups = db.execute("SELECT count(*) FROM engine_elementrollup").fetchone()
    return {
        "instances": instances,
        "element_runs": runs[0] if runs else 0,
        "rollup_rows": rollups[0] if rollups else 0,
        "load_seconds": round(time.perf_counter() - began, 1),
    }


def timed(client: httpx.Client, path: str, requests: int, **params: str) -> dict[str, Any]:
    client.get(path, params=params).raise_for_status()  # warm-up (caches, connections)
    seconds = []
    for _ in range(requests):
        began = time.perf_counter()
        response = client.get(path, params=params)
        seconds.append(time.perf_counter() - began)
        response.raise_for_status()
    return latency_summary(seconds)


def main() -> int:
    parser = argument_parser(__doc__ or "", "bench-insights")
    parser.add_argument("--instances", type=int, default=1_000_000 // (len(ELEMENTS) + 3))
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    # 7 runs per instance as listed, plus 3 per instance more to reach 10: categorise and the
    # user task run again for every instance sent back (the load repeats them).
    ELEMENTS.extend(
        [
            ("categorise", "Script Task", 5),
            ("approve_expense", "User Task", 0),
            ("approved_gateway", "Exclusive Gateway", 0),
        ]
    )
    setup_info: dict[str, Any] = {}

    def setup(env: dict[str, str]) -> str:
        token = migrate_and_deploy(env, {PROCESS_KEY: BPMN_FILE.read_text()})
        setup_info.update(load(env, args.instances))
        log(f"loaded {setup_info}")
        done = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", SESSION_CODE],
            cwd=BASE_DIR,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        session = done.stdout.split("SESSION", 1)[1].split()[0]
        setup_info["session"] = session
        return token

    def measure() -> dict[str, Any]:
        with web_server(args.data_dir, DATABASE, setup) as (server, token, what):
            api = httpx.Client(
                base_url=server.url, headers={"Authorization": f"Token {token}"}, timeout=60
            )
            page = httpx.Client(
                base_url=server.url,
                headers={"Cookie": f"sessionid={setup_info.pop('session')}"},
                timeout=60,
            )
            key = PROCESS_KEY
            results = {
                "insights_page": timed(page, f"/processes/{key}/insights/", args.requests),
                "insights_page_with_element_runs": timed(
                    page, f"/processes/{key}/insights/", args.requests, element="approve_expense"
                ),
                "insights_page_per_hour_7_days": timed(
                    page, f"/processes/{key}/insights/", args.requests, days="7", interval="hour"
                ),
                "statistics_endpoint": timed(
                    api, f"/api/v1/definitions/{key}/statistics/", args.requests
                ),
                "statistics_business_key_prefix": timed(
                    api,
                    f"/api/v1/definitions/{key}/statistics/",
                    args.requests,
                    business_key_prefix="B-00001",
                ),
            }
            return {**what, "data": setup_info, "latency_ms": results}

    return run_benchmark("insights", measure)


if __name__ == "__main__":
    raise SystemExit(main())
