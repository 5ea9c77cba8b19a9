"""Benchmark: the task inbox (`GET /tasks/`) and the task list API (`GET /api/v1/tasks/`) with
100,000 open human tasks in the database.

    .venv/bin/python bench/inbox.py [--tasks 100000] [--requests 200] [--warmup 20]

Builds the data directly (COPY, no engine): the example definitions, 1,000 users in 50
groups, one waiting process instance per open task, 100,000 open or claimed human tasks (most
unclaimed for one or two groups, a quarter claimed, due dates, priorities) and a history of
completed ones. One user, `inbox_bench`, is built to have exactly 40 actionable tasks in 5
groups: 15 assigned to them (the "Assigned to me" tab), 25 unclaimed for them (22 for their
groups, 3 naming them as a candidate user: the "My groups" tab); every other task of their
groups is claimed by someone else or completed. The counts are checked with the selectors
(`inbox_tasks`, `tasks_for_user`, `open_task_count`) before anything is measured. Then
VACUUM (ANALYZE).

Measured, N requests per page after a warm-up, one at a time over one keep-alive connection:
  1. a real gunicorn server (config.settings.prod, DEBUG off): the client's wall time and the
     server's own time per request (gunicorn's access log, `%(D)s`);
With --diagnose also (bench/diagnostics.py):
  2. in this process with Django's test Client (the same settings and middleware): time per
     request, the time spent in SQL, the queries per page;
  3. EXPLAIN (ANALYZE, BUFFERS) of every human-task query the pages run;
  4. the same pages in process for a busy user (3 large groups), for comparison.
Prints ONE JSON object to stdout; progress goes to stderr. The goal: p95 < 50 ms server time.

Postgres: whatever DATABASE_URL names, otherwise an embedded one under `.data/bench-inbox`.
Either way the benchmark uses its own database, `baton_bench_inbox`, dropped and recreated at
every start. Everything the benchmark starts is stopped at the end, on error and on Ctrl-C.
"""

import argparse
import json
import os
import random
import re
import secrets
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (
    BASE_DIR,
    SETTINGS_MODULE,
    CpuMeter,
    bench_database_url,
    database_label,
    django_env,
    gunicorn_version,
    latency_summary,
    log,
    postgres_backends,
    recreate_database,
    run_benchmark,
    services,
)
from bench.diagnostics import explain, query_kind, shorten, timed_sql
from tests.faults.stack import Baton

BENCH_DATABASE = "baton_bench_inbox"
GOAL_P95_MS = 50.0

PAGES = {
    "inbox_default": "/tasks/",
    "inbox_groups": "/tasks/?tab=groups",
    "inbox_mine_by_due": "/tasks/?tab=mine&sort=due",
    "api_tasks": "/api/v1/tasks/",
}
HTML_PAGES = ("inbox_default", "inbox_groups", "inbox_mine_by_due")

GROUPS = 50
TARGET_USER = "inbox_bench"
TARGET_GROUPS = 5
TARGET_ASSIGNED = 15  # claimed by / assigned to the target user: the "mine" tab
TARGET_GROUP_UNCLAIMED = 22  # unclaimed, for one of the target's groups
TARGET_CANDIDATE_USER = 3  # unclaimed, naming the target as a candidate user
TARGET_ACTIONABLE = TARGET_ASSIGNED + TARGET_GROUP_UNCLAIMED + TARGET_CANDIDATE_USER  # 40
TARGET_COMPLETED = 30

PRIORITIES = [50] * 12 + [20, 30, 30, 40, 60, 70, 70, 80, 90, 100]
WORDS = [
    "Team dinner",
    "Laptop",
    "Conference travel",
    "Office chairs",
    "Client lunch",
    "Training course",
    "Software licence",
    "Taxi",
    "Hotel",
    "Monitor",
]


def group_name(index: int) -> str:
    return f"team-{index:02d}"


# --------------------------------------------------------------------------------------------
# Data


@dataclass
class Template:
    """A user task of a deployed example: what its rows look like."""

    definition_id: int
    key: str
    element_id: str
    name: str
    lane: str
    form: str  # JSON


@dataclass
class Dataset:
    users: dict[str, int]  # username -> id
    groups: dict[str, int]  # name -> id
    members: dict[int, list[str]]  # group index -> usernames (other users only)
    user_groups: dict[str, list[int]]  # username -> group indexes
    counts: Counter[str] = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=dict)


def copy_rows(table: str, columns: list[str], rows: Iterable[tuple[Any, ...]]) -> int:
    """COPY rows into `table` over Django's connection (psycopg 3); returns how many."""
    from django.db import connection

    count = 0
    with connection.cursor() as cursor:
        sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
        with cursor.cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
    return count


def user_task_templates() -> list[Template]:
    from processes.models import ProcessDefinition
    from processes.services import deploy_examples

    deploy_examples()
    templates = []
    for definition in ProcessDefinition.objects.order_by("key"):
        for element_id, info in sorted((definition.elements or {}).items()):
            if isinstance(info, dict) and "form" in info and "candidate_groups" in info:
                templates.append(
                    Template(
                        definition_id=definition.pk,
                        key=definition.key,
                        element_id=element_id,
                        name=info.get("name") or element_id,
                        lane=info.get("lane") or "",
                        form=json.dumps(info.get("form") or {}),
                    )
                )
    if not templates:
        raise RuntimeError("the deployed examples have no user tasks")
    return templates


def create_people(rng: random.Random, users: int, password: str) -> Dataset:
    """`users` users (one of them the target) in GROUPS groups."""
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group, User

    Group.objects.bulk_create([Group(name=group_name(i)) for i in range(GROUPS)])
    groups = dict(Group.objects.values_list("name", "id"))
    unusable = make_password(None)  # the others never log in; one hash for all
    others = [f"user{i:04d}" for i in range(1, users)]
    User.objects.bulk_create(
        [User(username=name, password=unusable, is_active=True) for name in others]
        + [
            User(
                username=TARGET_USER,
                password=make_password(password),
                is_active=True,
                first_name="Inbox",
                last_name="Bench",
            )
        ],
        batch_size=5000,
    )
    ids = dict(User.objects.values_list("username", "id"))
    # Everybody else is in 1-3 groups, any of the 50 (so also in the target's groups).
    user_groups = {
        name: sorted(rng.sample(range(GROUPS), rng.choice([1, 1, 2, 2, 2, 3]))) for name in others
    }
    user_groups[TARGET_USER] = list(range(TARGET_GROUPS))
    members: dict[int, list[str]] = {i: [] for i in range(GROUPS)}
    for name, indexes in user_groups.items():
        if name != TARGET_USER:
            for index in indexes:
                members[index].append(name)
    through = User.groups.through
    through.objects.bulk_create(
        [
            through(user_id=ids[name], group_id=groups[group_name(index)])
            for name, indexes in user_groups.items()
            for index in indexes
        ],
        batch_size=5000,
    )
    return Dataset(users=ids, groups=groups, members=members, user_groups=user_groups)


@dataclass
class TaskSpec:
    status: str
    assignee: str | None
    candidate_users: list[str]
    candidate_groups: list[int]


def target_tasks(rng: random.Random, data: Dataset) -> list[TaskSpec]:
    """The 40 actionable tasks of the target user."""
    mine = list(range(TARGET_GROUPS))
    specs = []
    for i in range(TARGET_ASSIGNED):
        # Two thirds claimed from one of their groups, the rest assigned by the diagram.
        groups = [mine[i % TARGET_GROUPS]] if i % 3 else []
        specs.append(TaskSpec("claimed", TARGET_USER, [], groups))
    for i in range(TARGET_GROUP_UNCLAIMED):
        groups = [mine[i % TARGET_GROUPS]]
        if i % 4 == 0:  # also offered to a group the target is not in
            groups.append(rng.randrange(TARGET_GROUPS, GROUPS))
        specs.append(TaskSpec("open", None, [], groups))
    for _ in range(TARGET_CANDIDATE_USER):
        colleague = rng.choice(data.members[rng.randrange(TARGET_GROUPS, GROUPS)])
        specs.append(TaskSpec("open", None, [TARGET_USER, colleague], []))
    return specs


def random_task(rng: random.Random, data: Dataset, others: list[str]) -> TaskSpec:
    """An active task that is not actionable for the target user."""
    group = rng.randrange(TARGET_GROUPS, GROUPS)
    roll = rng.random()
    if roll < 0.25:  # claimed (from its group), or assigned directly
        if rng.random() < 0.8:
            return TaskSpec("claimed", rng.choice(data.members[group] or others), [], [group])
        return TaskSpec("claimed", rng.choice(others), [], [])
    if roll < 0.28:  # only for named candidate users
        return TaskSpec("open", None, rng.sample(others, rng.randint(1, 3)), [])
    groups = [group]
    if rng.random() < 0.15:
        groups.append(rng.randrange(TARGET_GROUPS, GROUPS))
    users = rng.sample(others, rng.randint(1, 2)) if rng.random() < 0.05 else []
    return TaskSpec("open", None, users, sorted(set(groups)))


def build_data(
    rng: random.Random, tasks: int, users: int, completed: int, group_claimed: int, password: str
) -> Dataset:
    """Users, groups, instances and tasks, written with COPY."""
    began = time.perf_counter()
    templates = user_task_templates()
    data = create_people(rng, users, password)
    data.seconds["definitions_users_groups"] = round(time.perf_counter() - began, 2)
    others = [name for name in data.users if name != TARGET_USER]

    specs = target_tasks(rng, data)
    # The target's groups have more active tasks, all claimed by other members.
    for index in range(TARGET_GROUPS):
        for _ in range(group_claimed):
            extra = [rng.randrange(TARGET_GROUPS, GROUPS)] if rng.random() < 0.1 else []
            specs.append(
                TaskSpec("claimed", rng.choice(data.members[index] or others), [], [index, *extra])
            )
    while len(specs) < tasks:
        specs.append(random_task(rng, data, others))
    specs = specs[:tasks]
    rng.shuffle(specs)

    now = datetime.now(UTC)
    user_ids = list(data.users.values())

    def new_uuid() -> uuid.UUID:
        return uuid.UUID(int=rng.getrandbits(128), version=4)

    # One waiting instance per active task.
    began = time.perf_counter()
    instances: list[tuple[uuid.UUID, datetime, Template]] = []

    def instance_rows() -> Iterable[tuple[Any, ...]]:
        for n in range(tasks):
            template = rng.choice(templates)
            created = now - timedelta(seconds=rng.uniform(60, 45 * 86400))
            instance_id = new_uuid()
            instances.append((instance_id, created, template))
            requester = rng.choice(others)
            variables = {
                "amount": rng.randint(5, 5000),
                "description": rng.choice(WORDS),
                "requester": requester,
            }
            yield (
                instance_id,
                template.definition_id,
                f"{template.key}-{n:06d}",
                "waiting",
                "{}",
                json.dumps(variables),
                0,
                rng.choice(user_ids),
                created,
                created,
                None,
            )

    data.counts["instances"] = copy_rows(
        "engine_processinstance",
        [
            "id",
            "definition_id",
            "business_key",
            "status",
            "state",
            "variables",
            "lock_version",
            "started_by_id",
            "created_at",
            "updated_at",
            "completed_at",
        ],
        instance_rows(),
    )
    data.seconds["instances_copy"] = round(time.perf_counter() - began, 2)

    task_columns = [
        "id",
        "instance_id",
        "spiff_task_id",
        "element_id",
        "name",
        "lane",
        "assignee",
        "candidate_users",
        "candidate_groups",
        "form",
        "due_at",
        "priority",
        "status",
        "completed_by_id",
        "completed_at",
        "submitted_data",
        "created_at",
    ]

    def active_rows() -> Iterable[tuple[Any, ...]]:
        for spec, (instance_id, instance_created, template) in zip(specs, instances, strict=True):
            created = instance_created + timedelta(seconds=rng.uniform(1, 3600))
            due = (
                created + timedelta(days=rng.uniform(1, 21)) if rng.random() < 0.6 else None
            )  # some of them overdue
            data.counts[f"active_{spec.status}"] += 1
            yield (
                new_uuid(),
                instance_id,
                new_uuid(),
                template.element_id,
                template.name,
                template.lane,
                spec.assignee,
                spec.candidate_users,
                [group_name(i) for i in spec.candidate_groups],
                template.form,
                due,
                rng.choice(PRIORITIES),
                spec.status,
                None,
                None,
                None,
                created,
            )

    def completed_rows() -> Iterable[tuple[Any, ...]]:
        for n in range(completed):
            instance_id, instance_created, template = rng.choice(instances)
            who = TARGET_USER if n < TARGET_COMPLETED else rng.choice(others)
            group = rng.randrange(GROUPS)  # the target's groups too
            created = instance_created - timedelta(seconds=rng.uniform(3600, 5 * 86400))
            done = created + timedelta(seconds=rng.uniform(60, 3 * 86400))
            yield (
                new_uuid(),
                instance_id,
                new_uuid(),
                template.element_id,
                template.name,
                template.lane,
                who,
                [],
                [group_name(group)],
                template.form,
                None,
                rng.choice(PRIORITIES),
                "completed",
                data.users[who],
                done,
                json.dumps({"approved": rng.random() < 0.8}),
                created,
            )

    began = time.perf_counter()
    copied = copy_rows("engine_humantask", task_columns, active_rows())
    data.counts["completed"] = copy_rows("engine_humantask", task_columns, completed_rows())
    data.counts["human_tasks"] = copied + data.counts["completed"]
    data.seconds["tasks_copy"] = round(time.perf_counter() - began, 2)

    from django.db import connection

    began = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) engine_humantask, engine_processinstance")
        cursor.execute("ANALYZE")
    data.seconds["vacuum_analyze"] = round(time.perf_counter() - began, 2)
    data.counts["users"] = len(data.users)
    data.counts["groups"] = len(data.groups)
    data.counts["definitions"] = len({t.definition_id for t in templates})
    return data


def check_target(username: str) -> dict[str, int]:
    """What each selector counts as actionable for `username`."""
    from django.contrib.auth.models import User

    from engine import selectors

    user = User.objects.get(username=username)
    return {
        "inbox_tasks_mine": selectors.inbox_tasks(user, tab="mine").count(),
        "inbox_tasks_groups": selectors.inbox_tasks(user, tab="groups").count(),
        "tasks_for_user": selectors.tasks_for_user(user).count(),
        "open_task_count": selectors.open_task_count(user),
        "groups": len(user.groups.all()),
    }


def pick_busy_user(data: Dataset) -> str:
    """A user in 3 groups (the most anyone but the target is in), none of them the target's."""
    for name, indexes in sorted(data.user_groups.items()):
        if len(indexes) == 3 and min(indexes) >= TARGET_GROUPS:
            return name
    return next(name for name in sorted(data.users) if name != TARGET_USER)


# --------------------------------------------------------------------------------------------
# The real server


def access_log_times(path: Path, page_path: str) -> list[float]:
    """Server seconds of every logged GET of `page_path`, in order."""
    times = []
    for line in path.read_text().splitlines():
        parts = line.split("|")  # "GET /tasks/?tab=groups HTTP/1.1|200|12345"
        if len(parts) == 3 and parts[0].split(" ")[:2] == ["GET", page_path]:
            times.append(int(parts[2]) / 1e6)
    return times


def log_in(base_url: str, password: str) -> str:
    """Log in through the login form; returns the Cookie header of the session.

    The prod settings mark the session and CSRF cookies Secure, so a cookie jar never sends
    them back over plain http; they are carried in an explicit Cookie header instead."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        page = client.get("/accounts/login/")
        page.raise_for_status()
        found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        csrf_cookie = page.cookies.get("csrftoken")
        if not found or not csrf_cookie:
            raise RuntimeError("the login page has no CSRF token")
        response = client.post(
            "/accounts/login/",
            data={
                "username": TARGET_USER,
                "password": password,
                "csrfmiddlewaretoken": found.group(1),
                "next": "",
            },
            headers={
                "Cookie": f"csrftoken={csrf_cookie}",
                "Referer": f"{base_url}/accounts/login/",
            },
        )
        session = response.cookies.get("sessionid")
        if response.status_code != 302 or not session:
            raise RuntimeError(f"login failed: HTTP {response.status_code}")
        csrf = response.cookies.get("csrftoken") or csrf_cookie
        return f"csrftoken={csrf}; sessionid={session}"


def expected_text(page: str) -> list[str]:
    """What a correct response for the target user contains."""
    if page == "api_tasks":
        return [f'"count":{TARGET_ACTIONABLE}']
    shown = (
        TARGET_GROUP_UNCLAIMED + TARGET_CANDIDATE_USER
        if page == "inbox_groups"
        else TARGET_ASSIGNED
    )
    return [f'title="Tasks waiting for you">{TARGET_ACTIONABLE}</span>', f"{shown} tasks</caption>"]


def check_response(page: str, status: int, body: str) -> None:
    if status != 200:
        raise RuntimeError(f"{page}: HTTP {status}")
    missing = [text for text in expected_text(page) if text not in body]
    if missing:
        raise RuntimeError(f"{page}: the response lacks {missing}")


def measure_http(
    base_url: str, cookie: str, token: str, requests: int, warmup: int, access_log: Path
) -> dict[str, Any]:
    """Each page N times after a warm-up, one request at a time over one keep-alive
    connection per client; the client's wall time and gunicorn's own time."""
    clients = {
        "html": httpx.Client(base_url=base_url, headers={"Cookie": cookie}, timeout=60),
        "api": httpx.Client(
            base_url=base_url, headers={"Authorization": f"Token {token}"}, timeout=60
        ),
    }
    wall: dict[str, list[float]] = {}
    try:
        for page, path in PAGES.items():
            client = clients["html" if page in HTML_PAGES else "api"]
            for n in range(warmup):
                response = client.get(path)
                if n == 0:
                    check_response(page, response.status_code, response.text)
            times = []
            for _ in range(requests):
                began = time.perf_counter()
                response = client.get(path)
                times.append(time.perf_counter() - began)
                if response.status_code != 200:
                    raise RuntimeError(f"{page}: HTTP {response.status_code}")
            wall[page] = times
            log(f"http {page}: p50 {latency_summary(times)['p50']} ms")
    finally:
        for client in clients.values():
            client.close()
    time.sleep(0.3)  # the access log is written after the response
    results = {}
    for page, path in PAGES.items():
        server = access_log_times(access_log, path)[-requests:]
        results[page] = {
            "path": path,
            "client_wall_ms": latency_summary(wall[page]),
            "server_ms_gunicorn": latency_summary(server) if len(server) == requests else None,
        }
    return results


# --------------------------------------------------------------------------------------------
# In process: Django's test Client, queries, plans


def in_process_clients(username: str, token: str | None) -> dict[str, Any]:
    from django.contrib.auth.models import User
    from django.test import Client

    user = User.objects.get(username=username)
    html = Client(HTTP_HOST="127.0.0.1")
    html.force_login(user)
    if token is None:
        from rest_framework.authtoken.models import Token

        token = Token.objects.get_or_create(user=user)[0].key
    api = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Token {token}")
    return {page: html if page in HTML_PAGES else api for page in PAGES}


def measure_in_process(
    username: str, token: str | None, requests: int, warmup: int, check: bool
) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """Per page: time per request, SQL time, the queries of one request (and their SQL)."""
    clients = in_process_clients(username, token)
    results: dict[str, Any] = {}
    captured: dict[str, list[dict[str, Any]]] = {}
    for page, path in PAGES.items():
        client = clients[page]
        for _ in range(warmup):
            response = client.get(path)
        if check:
            check_response(page, response.status_code, response.content.decode())
        with timed_sql() as timer:
            client.get(path)
        captured[page] = [
            {"sql": sql, "ms": round(seconds * 1000, 3)} for sql, seconds in timer.queries
        ]
        times = []
        with timed_sql() as timer:
            for _ in range(requests):
                began = time.perf_counter()
                response = client.get(path)
                times.append(time.perf_counter() - began)
                if response.status_code != 200:
                    raise RuntimeError(f"{page}: HTTP {response.status_code}")
        shapes = Counter(query_kind(q["sql"]) for q in captured[page])
        repeated = Counter(q["sql"] for q in captured[page])
        results[page] = {
            "path": path,
            "server_ms": latency_summary(times),
            "sql_ms_per_request": round(timer.seconds / requests * 1000, 2),
            "python_ms_per_request": round((sum(times) - timer.seconds) / requests * 1000, 2),
            "queries": len(captured[page]),
            "query_kinds": dict(sorted(shapes.items())),
            "identical_queries_repeated": sum(n - 1 for n in repeated.values() if n > 1),
            "queries_ms": [
                f"{q['ms']:.3f} {query_kind(q['sql'])}: {shorten(q['sql'])}" for q in captured[page]
            ],
        }
        log(
            f"in process ({username}) {page}: p95 {results[page]['server_ms']['p95']} ms, "
            f"{len(captured[page])} queries"
        )
    return results, captured


def explain_task_queries(captured: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """EXPLAIN ANALYZE each distinct query on engine_humantask that the pages ran."""
    seen: dict[str, dict[str, Any]] = {}
    for page, queries in captured.items():
        for query in queries:
            sql = query["sql"]
            if '"engine_humantask"' not in sql.split(" WHERE ")[0]:
                continue
            if sql in seen:
                seen[sql]["pages"].append(page)
                continue
            seen[sql] = {"query": query_kind(sql), "pages": [page], "sql": sql}
    # Run each twice; report the second (warm cache, as the pages see it).
    for entry in seen.values():
        explain(entry["sql"])
        entry.update(explain(entry["sql"]))
    return list(seen.values())


def label_plans(plans: list[dict[str, Any]]) -> None:
    """Name each query after what it is for."""
    for plan in plans:
        sql = plan["sql"]
        pages = plan["pages"]
        if plan["query"].startswith("exists"):
            role = "inbox default tab: does the user have own tasks? (inbox_tasks mine)"
        elif plan["query"].startswith("distinct"):
            role = "process filter (inbox_processes, _actionable_for)"
        elif plan["query"].startswith("count") and "IS NULL" in sql and "LIMIT" not in sql:
            if pages == ["api_tasks"]:
                role = "API paginator count (tasks_for_user, _actionable_for)"
            elif "api_tasks" in pages or len(pages) > 1:
                role = "header badge (open_task_count, _actionable_for); API paginator count"
            else:
                role = "inbox paginator count (inbox_tasks groups)"
        elif plan["query"].startswith("count"):
            role = "inbox paginator count (inbox_tasks mine)"
        elif pages == ["api_tasks"]:
            role = "API page (tasks_for_user, _actionable_for)"
        elif "IS NULL" in sql:
            role = "inbox page rows (inbox_tasks groups)"
        else:
            role = "inbox page rows (inbox_tasks mine)"
        plan["role"] = role


def main_query(plans: list[dict[str, Any]]) -> dict[str, Any] | None:
    for plan in plans:
        if plan["role"] == "inbox page rows (inbox_tasks groups)":
            return plan
    return None


# --------------------------------------------------------------------------------------------


def setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)


def postgres_settings() -> dict[str, str]:
    from django.db import connection

    settings = {}
    with connection.cursor() as cursor:
        for name in (
            "shared_buffers",
            "work_mem",
            "effective_cache_size",
            "random_page_cost",
            "jit",
        ):
            cursor.execute(f"SHOW {name}")
            settings[name] = cursor.fetchone()[0]
    return settings


def findings(
    http: dict[str, Any],
    local: dict[str, Any],
    plans: list[dict[str, Any]],
    busy: dict[str, Any] | None,
) -> list[str]:
    """Facts the numbers show, for the recommendations."""
    notes = []
    for page, result in http.items():
        server = result["server_ms_gunicorn"]
        if server and server["p95"] is not None and server["p95"] >= GOAL_P95_MS:
            notes.append(
                f"{page}: server p95 {server['p95']} ms misses the {GOAL_P95_MS:.0f} ms goal"
            )
    for page, result in local.items():
        if result["identical_queries_repeated"]:
            notes.append(
                f"{page}: {result['identical_queries_repeated']} of its "
                f"{result['queries']} queries repeat an identical earlier one"
            )
    for plan in plans:
        if plan["seq_scan_on_humantask"]:
            notes.append(
                f"sequential scan of engine_humantask in '{plan['role']}' "
                f"({plan['execution_ms']} ms)"
            )
        if plan["execution_ms"] >= 10:
            notes.append(f"'{plan['role']}' takes {plan['execution_ms']} ms in Postgres")
    if busy:
        for page, result in busy["pages"].items():
            if result["server_ms"]["p95"] is not None and result["server_ms"]["p95"] >= GOAL_P95_MS:
                notes.append(
                    f"busy user ({busy['actionable']['open_task_count']} actionable): "
                    f"{page} in-process p95 {result['server_ms']['p95']} ms"
                )
    return notes


def diagnose(
    args: argparse.Namespace, data: Dataset, token: str, http: dict[str, Any]
) -> dict[str, Any]:
    """--diagnose: the pages in process (queries, SQL time), the query plans, a busy user."""
    meter = CpuMeter(
        {
            "benchmark_process": lambda: [os.getpid()],
            "postgres_backends": lambda: postgres_backends(BENCH_DATABASE),
        }
    )
    local, captured = measure_in_process(TARGET_USER, token, args.requests, args.warmup, check=True)
    local_cpu = meter.usage(len(PAGES) * (args.requests + args.warmup + 1), "request")
    plans = explain_task_queries(captured)
    label_plans(plans)
    busy = None
    if args.busy_requests:
        busy_user = pick_busy_user(data)
        busy_pages, busy_captured = measure_in_process(
            busy_user, None, args.busy_requests, min(args.warmup, 5), check=False
        )
        busy_plans = explain_task_queries(busy_captured)
        label_plans(busy_plans)
        busy = {
            "user": busy_user,
            "groups": [group_name(i) for i in data.user_groups[busy_user]],
            "actionable": check_target(busy_user),
            "requests": args.busy_requests,
            "pages": {
                page: {
                    key: result[key]
                    for key in (
                        "server_ms",
                        "sql_ms_per_request",
                        "python_ms_per_request",
                        "queries",
                    )
                }
                for page, result in busy_pages.items()
            },
            "plans": [
                {key: plan[key] for key in ("role", "execution_ms", "indexes", "scans", "plan")}
                for plan in busy_plans
            ],
        }

    main = main_query(plans)
    return {
        "in_process": local,
        "cpu_during_in_process": local_cpu,
        "main_inbox_query": {
            key: main[key]
            for key in ("role", "execution_ms", "planning_ms", "indexes", "scans", "plan", "sql")
        }
        if main
        else None,
        "plans": [
            {
                key: plan[key]
                for key in (
                    "role",
                    "query",
                    "pages",
                    "execution_ms",
                    "planning_ms",
                    "indexes",
                    "scans",
                    "shared_buffers_hit",
                    "shared_buffers_read",
                    "plan",
                )
            }
            for plan in plans
        ],
        "busy_user_in_process": busy,
        "findings": findings(http, local, plans, busy),
    }


def measure(args: argparse.Namespace, embedded: Any, gunicorn: str) -> dict[str, Any]:
    postgres_version = recreate_database(os.environ["DATABASE_URL"], BENCH_DATABASE)
    env = django_env(bench_database_url(os.environ["DATABASE_URL"], BENCH_DATABASE))
    env.update({"BATON_API_USER_RATE": "", "BATON_API_ANON_RATE": ""})  # no throttling
    log(f"database {BENCH_DATABASE} recreated (Postgres {postgres_version}); migrating")
    began = time.perf_counter()
    setup_django(env)
    migrate_seconds = round(time.perf_counter() - began, 2)
    from django.db import connections
    from rest_framework.authtoken.models import Token

    password = secrets.token_urlsafe(16)
    log(f"building {args.tasks} active tasks, {args.completed} completed, {args.users} users")
    began = time.perf_counter()
    data = build_data(
        random.Random(args.seed),
        args.tasks,
        args.users,
        args.completed,
        args.group_claimed,
        password,
    )
    build_seconds = round(time.perf_counter() - began, 2)
    log(f"data built in {build_seconds}s: {dict(data.counts)}")
    actionable = check_target(TARGET_USER)
    wanted = {
        "inbox_tasks_mine": TARGET_ASSIGNED,
        "inbox_tasks_groups": TARGET_GROUP_UNCLAIMED + TARGET_CANDIDATE_USER,
        "tasks_for_user": TARGET_ACTIONABLE,
        "open_task_count": TARGET_ACTIONABLE,
        "groups": TARGET_GROUPS,
    }
    if actionable != wanted:
        raise RuntimeError(f"the target user has {actionable}, not {wanted}")
    token = Token.objects.create(user_id=data.users[TARGET_USER]).key
    pg_settings = postgres_settings()
    connections.close_all()

    with tempfile.TemporaryDirectory(prefix="baton-bench-inbox-") as log_dir:
        access_log = Path(log_dir) / "access.log"
        server = Baton(
            env,
            Path(log_dir),
            web_workers=args.workers,
            web_threads=args.server_threads,
            keep_alive=30,
            access_log=access_log,
        )
        server_name = (
            f"gunicorn {gunicorn} gthread, {args.workers} workers x "
            f"{args.server_threads} threads, keep-alive 30s, {SETTINGS_MODULE} "
            "(DEBUG off)"
        )
        try:
            server.start_web()
            server.wait_ready()
            log(f"{server_name} on {server.url}")
            cookie = log_in(server.url, password)
            meter = CpuMeter(
                {
                    "server": lambda: server.pids("web"),
                    "postgres_backends": lambda: postgres_backends(BENCH_DATABASE),
                    "benchmark_process": lambda: [os.getpid()],
                }
            )
            http = measure_http(server.url, cookie, token, args.requests, args.warmup, access_log)
            http_cpu = meter.usage(len(PAGES) * (args.requests + args.warmup), "request")
        finally:
            server.stop()

    diagnosis = diagnose(args, data, token, http) if args.diagnose else None
    connections.close_all()

    goal_pages = {
        page: result["server_ms_gunicorn"]["p95"] if result["server_ms_gunicorn"] else None
        for page, result in http.items()
    }
    return {
        "server": server_name,
        "database": f"{database_label(embedded)} {postgres_version}, database {BENCH_DATABASE}",
        "postgres_settings": pg_settings,
        "data": {
            **dict(data.counts),
            "target_user": TARGET_USER,
            "target_groups": [group_name(i) for i in range(TARGET_GROUPS)],
            "target_actionable": actionable,
            "target_group_tasks_claimed_by_others": args.group_claimed * TARGET_GROUPS,
            "seconds": {"migrate": migrate_seconds, **data.seconds, "total": build_seconds},
        },
        "goal": {
            "p95_server_ms_below": GOAL_P95_MS,
            "server_p95_ms_by_page": goal_pages,
            "met": all(p95 is not None and p95 < GOAL_P95_MS for p95 in goal_pages.values()),
        },
        "http": http,
        "cpu_during_http": http_cpu,
        "diagnosis": diagnosis,
    }


def parse_args() -> argparse.Namespace:
    cpus = os.cpu_count() or 1
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000, help="open and claimed tasks")
    parser.add_argument("--completed", type=int, default=25_000, help="completed tasks")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument(
        "--group-claimed",
        type=int,
        default=400,
        help="tasks of each of the target's groups claimed by others",
    )
    parser.add_argument("--requests", type=int, default=200, help="measured requests per page")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured requests per page")
    parser.add_argument(
        "--diagnose",
        action="store_true",
        help="also the pages in process, their query plans and a busy user",
    )
    parser.add_argument(
        "--busy-requests",
        type=int,
        default=50,
        help="with --diagnose: in-process requests per page for a busy user",
    )
    parser.add_argument("--workers", type=int, default=cpus, help="gunicorn workers")
    parser.add_argument(
        "--server-threads", type=int, default=4, help="threads per gunicorn worker (gthread)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=BASE_DIR / ".data" / "bench-inbox",
        help="where an embedded Postgres keeps its data",
    )
    args = parser.parse_args()
    minimum = TARGET_ACTIONABLE + args.group_claimed * TARGET_GROUPS
    if args.tasks < minimum:
        parser.error(f"--tasks must be at least {minimum}")
    if args.users < 50 or min(args.requests, args.warmup, args.workers, args.server_threads) < 1:
        parser.error("--users at least 50; counts at least 1")
    return args


def main() -> int:
    args = parse_args()
    gunicorn = gunicorn_version()

    def measure_all() -> dict[str, Any]:
        with services(args.data_dir) as embedded:
            result = measure(args, embedded, gunicorn)
        return {
            "requests_per_page": args.requests,
            "warmup_per_page": args.warmup,
            "sequential": "one request at a time, one keep-alive connection per client",
            "notes": {
                "inbox_default": "no tab given: the view runs an EXISTS query and shows the "
                "'mine' tab, since the target user has tasks of their own",
                "server_ms_gunicorn": "gunicorn's access log %(D)s: parsed request to last byte",
                "in_process": "Django test Client in the benchmark process, same settings",
            },
            **result,
        }

    return run_benchmark("inbox", measure_all)


if __name__ == "__main__":
    sys.exit(main())
