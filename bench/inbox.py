"""Benchmark: the task inbox (`GET /tasks/`) and the task list API (`GET /api/v1/tasks/`) with
100,000 open human tasks in the database.

    .venv/bin/python bench/inbox.py [--tasks 100000] [--requests 200] [--warmup 20] [--diagnose]

Builds the data directly (COPY, no engine): the example definitions, 1,000 users in 50 groups,
one waiting instance per open task, open or claimed human tasks (a quarter claimed, due dates,
priorities) and a history of completed ones. One user, `inbox_bench`, has exactly 40
actionable tasks in 5 groups: 15 assigned to them ("Assigned to me"), 25 unclaimed for them
(22 for their groups, 3 naming them as a candidate user: "My groups"); every other task of
their groups is claimed by someone else or completed. The selectors' counts are checked
before anything is measured, after VACUUM (ANALYZE).

Measured: each page N times after a warm-up, one request at a time over one keep-alive
connection, on a real gunicorn server (config.settings.prod): the client's wall time and the
server's own time (gunicorn's access log, `%(D)s`). The goal: p95 < 50 ms server time. With
--diagnose also (bench/diagnostics.py), in this process with Django's test Client: time per
request, SQL time and queries per page, EXPLAIN (ANALYZE, BUFFERS) of every human-task query,
and the same for a busy user (3 large groups).

Its own database: `baton_bench_inbox` (see bench/common.py).
"""

import argparse
import functools
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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (
    CpuMeter,
    argument_parser,
    gunicorn_version,
    latency_summary,
    log,
    postgres_backends,
    run_benchmark,
    web_server,
)
from bench.diagnostics import explain, postgres_settings, query_kind, shorten, timed_sql
from tests.faults.stack import wait_until

BENCH_DATABASE = "baton_bench_inbox"
GOAL_P95_MS = 50.0
PAGES = {
    "inbox_default": "/tasks/",
    "inbox_groups": "/tasks/?tab=groups",
    "inbox_mine_by_due": "/tasks/?tab=mine&sort=due",
    "api_tasks": "/api/v1/tasks/",
}
GROUPS = 50
TARGET_USER = "inbox_bench"
TARGET_GROUPS = 5
TARGET_ASSIGNED = 15  # claimed by / assigned to the target user: the "mine" tab
TARGET_GROUP_UNCLAIMED = 22  # unclaimed, for one of the target's groups
TARGET_CANDIDATE_USER = 3  # unclaimed, naming the target as a candidate user
TARGET_ACTIONABLE = TARGET_ASSIGNED + TARGET_GROUP_UNCLAIMED + TARGET_CANDIDATE_USER  # 40
TARGET_COMPLETED = 30
PRIORITIES = [50] * 12 + [20, 30, 30, 40, 60, 70, 70, 80, 90, 100]
WORDS = ["Team dinner", "Laptop", "Conference travel", "Office chairs", "Taxi", "Hotel"]
# One line per table rather than one per column.
INSTANCE_COLUMNS = (  # noqa: SIM905
    "id definition_id business_key status state variables lock_version started_by_id "
    "created_at updated_at completed_at"
).split()
TASK_COLUMNS = (  # noqa: SIM905
    "id instance_id spiff_task_id element_id name lane assignee candidate_users "
    "candidate_groups form due_at priority status completed_by_id completed_at submitted_data "
    "created_at"
).split()


def group_name(index: int) -> str:
    return f"team-{index:02d}"


@dataclass
class Template:
    """A user task of a deployed example: what its rows look like."""

    definition_id: int
    key: str
    element: tuple[str, str, str]  # element id, name, lane
    form: str  # JSON


@dataclass
class TaskSpec:
    status: str
    assignee: str | None
    candidate_users: list[str]
    candidate_groups: list[int]


@dataclass
class People:
    users: dict[str, int]  # username -> id
    members: dict[int, list[str]]  # group index -> usernames (other users only)
    user_groups: dict[str, list[int]]  # username -> group indexes

    @property
    def others(self) -> list[str]:
        return [name for name in self.users if name != TARGET_USER]


def copy_rows(table: str, columns: list[str], rows: Iterable[tuple[Any, ...]]) -> int:
    """COPY rows into `table` over Django's connection (psycopg 3); returns how many."""
    from django.db import connection

    count = 0
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
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
                element = (element_id, info.get("name") or element_id, info.get("lane") or "")
                form = json.dumps(info.get("form") or {})
                templates.append(Template(definition.pk, definition.key, element, form))
    if not templates:
        raise RuntimeError("the deployed examples have no user tasks")
    return templates


def create_people(rng: random.Random, users: int, password: str) -> People:
    """`users` users (one of them the target) in GROUPS groups."""
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group, User

    Group.objects.bulk_create([Group(name=group_name(i)) for i in range(GROUPS)])
    groups = dict(Group.objects.values_list("name", "id"))
    unusable = make_password(None)  # the others never log in; one hash for all
    others = [f"user{i:04d}" for i in range(1, users)]
    target = User(username=TARGET_USER, password=make_password(password), first_name="Inbox")
    accounts = [User(username=name, password=unusable) for name in others]
    User.objects.bulk_create([*accounts, target], batch_size=5000)
    ids = dict(User.objects.values_list("username", "id"))
    # Everybody else is in 1-3 groups, any of the 50 (so also in the target's groups).
    user_groups = {
        name: sorted(rng.sample(range(GROUPS), rng.choice([1, 1, 2, 2, 2, 3]))) for name in others
    }
    members: dict[int, list[str]] = {i: [] for i in range(GROUPS)}
    for name, indexes in user_groups.items():
        for index in indexes:
            members[index].append(name)
    user_groups[TARGET_USER] = list(range(TARGET_GROUPS))
    through = User.groups.through
    links = [
        through(user_id=ids[name], group_id=groups[group_name(index)])
        for name, indexes in user_groups.items()
        for index in indexes
    ]
    through.objects.bulk_create(links, batch_size=5000)
    return People(users=ids, members=members, user_groups=user_groups)


def target_tasks(rng: random.Random, people: People) -> list[TaskSpec]:
    """The 40 actionable tasks of the target user."""
    specs = []
    for i in range(TARGET_ASSIGNED):
        # Two thirds claimed from one of their groups, the rest assigned by the diagram.
        specs.append(TaskSpec("claimed", TARGET_USER, [], [i % TARGET_GROUPS] if i % 3 else []))
    for i in range(TARGET_GROUP_UNCLAIMED):
        groups = [i % TARGET_GROUPS]
        if i % 4 == 0:  # also offered to a group the target is not in
            groups.append(rng.randrange(TARGET_GROUPS, GROUPS))
        specs.append(TaskSpec("open", None, [], groups))
    for _ in range(TARGET_CANDIDATE_USER):
        colleague = rng.choice(
            people.members[rng.randrange(TARGET_GROUPS, GROUPS)] or people.others
        )
        specs.append(TaskSpec("open", None, [TARGET_USER, colleague], []))
    return specs


def random_task(rng: random.Random, people: People, others: list[str]) -> TaskSpec:
    """An active task that is not actionable for the target user."""
    group = rng.randrange(TARGET_GROUPS, GROUPS)
    roll = rng.random()
    if roll < 0.25:  # claimed (from its group), or assigned directly
        if rng.random() < 0.8:
            return TaskSpec("claimed", rng.choice(people.members[group] or others), [], [group])
        return TaskSpec("claimed", rng.choice(others), [], [])
    if roll < 0.28:  # only for named candidate users
        return TaskSpec("open", None, rng.sample(others, rng.randint(1, 3)), [])
    groups = {group, rng.randrange(TARGET_GROUPS, GROUPS) if rng.random() < 0.15 else group}
    users = rng.sample(others, rng.randint(1, 2)) if rng.random() < 0.05 else []
    return TaskSpec("open", None, users, sorted(groups))


def task_specs(
    rng: random.Random, people: People, tasks: int, group_claimed: int
) -> list[TaskSpec]:
    """The target's tasks; more active tasks of the target's groups, all claimed by other
    members; then tasks of other groups."""
    others = people.others
    specs = target_tasks(rng, people)
    for index in range(TARGET_GROUPS):
        for _ in range(group_claimed):
            extra = [rng.randrange(TARGET_GROUPS, GROUPS)] if rng.random() < 0.1 else []
            assignee = rng.choice(people.members[index] or others)
            specs.append(TaskSpec("claimed", assignee, [], [index, *extra]))
    while len(specs) < tasks:
        specs.append(random_task(rng, people, others))
    specs = specs[:tasks]
    rng.shuffle(specs)
    return specs


def build_data(rng: random.Random, args: argparse.Namespace, password: str) -> dict[str, Any]:
    """Users, groups, instances and tasks, written with COPY; what was built and how long."""
    from django.db import connection

    began = time.perf_counter()
    templates = user_task_templates()
    people = create_people(rng, args.users, password)
    specs = task_specs(rng, people, args.tasks, args.group_claimed)
    others, user_ids, now = people.others, list(people.users.values()), datetime.now(UTC)
    counts = Counter(users=len(people.users), definitions=len({t.key for t in templates}))

    def new_uuid() -> uuid.UUID:
        return uuid.UUID(int=rng.getrandbits(128), version=4)

    instances = [(new_uuid(), rng.choice(templates)) for _ in specs]
    created = [now - timedelta(seconds=rng.uniform(60, 45 * 86400)) for _ in specs]

    def instance_rows() -> Iterable[tuple[Any, ...]]:  # one waiting instance per active task
        for n, ((instance_id, template), at) in enumerate(zip(instances, created, strict=True)):
            amount, requester = rng.randint(5, 5000), rng.choice(others)
            variables = {"amount": amount, "description": rng.choice(WORDS), "requester": requester}
            row = (instance_id, template.definition_id, f"{template.key}-{n:06d}", "waiting", "{}")
            yield (*row, json.dumps(variables), 0, rng.choice(user_ids), at, at, None)

    def active_rows() -> Iterable[tuple[Any, ...]]:
        for spec, (instance_id, template), at in zip(specs, instances, created, strict=True):
            at += timedelta(seconds=rng.uniform(1, 3600))
            due = at + timedelta(days=rng.uniform(1, 21)) if rng.random() < 0.6 else None
            counts[f"active_{spec.status}"] += 1
            groups = [group_name(i) for i in spec.candidate_groups]
            row = (new_uuid(), instance_id, new_uuid(), *template.element, spec.assignee)
            task = (spec.candidate_users, groups, template.form, due, rng.choice(PRIORITIES))
            yield (*row, *task, spec.status, None, None, None, at)

    def completed_rows() -> Iterable[tuple[Any, ...]]:
        for n in range(args.completed):
            index = rng.randrange(len(instances))
            instance_id, template = instances[index]
            who = TARGET_USER if n < TARGET_COMPLETED else rng.choice(others)
            groups = [group_name(rng.randrange(GROUPS))]  # the target's groups too
            at = created[index] - timedelta(seconds=rng.uniform(3600, 5 * 86400))
            done = at + timedelta(seconds=rng.uniform(60, 3 * 86400))
            ids = (new_uuid(), instance_id, new_uuid())
            task: tuple[Any, ...] = (*template.element, who, [], groups, template.form, None)
            completion = ("completed", people.users[who], done)
            data = json.dumps({"approved": rng.random() < 0.8})
            yield (*ids, *task, rng.choice(PRIORITIES), *completion, data, at)

    counts["instances"] = copy_rows("engine_processinstance", INSTANCE_COLUMNS, instance_rows())
    counts["completed"] = copy_rows("engine_humantask", TASK_COLUMNS, completed_rows())
    active = copy_rows("engine_humantask", TASK_COLUMNS, active_rows())
    counts["human_tasks"] = active + counts["completed"]
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) engine_humantask, engine_processinstance")
        cursor.execute("ANALYZE")
    seconds = round(time.perf_counter() - began, 2)
    return {"people": people, "counts": {**counts, "groups": GROUPS}, "seconds": seconds}


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


def log_in(base_url: str, password: str) -> str:
    """Log in through the login form; returns the Cookie header of the session. The prod
    settings mark the session and CSRF cookies Secure, so a cookie jar never sends them back
    over plain http; they are carried in an explicit Cookie header instead."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        page = client.get("/accounts/login/")
        found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        csrf = page.cookies.get("csrftoken")
        if not found or not csrf:
            raise RuntimeError("the login page has no CSRF token")
        form = {
            "username": TARGET_USER,
            "password": password,
            "csrfmiddlewaretoken": found.group(1),
        }
        headers = {"Cookie": f"csrftoken={csrf}", "Referer": f"{base_url}/accounts/login/"}
        response = client.post("/accounts/login/", data=form, headers=headers)
        session = response.cookies.get("sessionid")
        if response.status_code != 302 or not session:
            raise RuntimeError(f"login failed: HTTP {response.status_code}")
        return f"csrftoken={response.cookies.get('csrftoken') or csrf}; sessionid={session}"


def check_response(page: str, status: int, body: str) -> None:
    """What a correct response for the target user contains."""
    mine = (
        TARGET_GROUP_UNCLAIMED + TARGET_CANDIDATE_USER
        if page == "inbox_groups"
        else TARGET_ASSIGNED
    )
    expected = (
        [f'"count":{TARGET_ACTIONABLE}']
        if page == "api_tasks"
        else [
            f'title="Tasks waiting for you">{TARGET_ACTIONABLE}</span>',
            f"{mine} tasks</caption>",
        ]
    )
    missing = [text for text in expected if text not in body]
    if status != 200 or missing:
        raise RuntimeError(f"{page}: HTTP {status}, the response lacks {missing}")


def timed_requests(
    get: Callable[[str], Any], page: str, requests: int, warmup: int, check: bool
) -> list[float]:
    """The seconds of each of `requests` GETs of the page, one at a time, after `warmup`
    unmeasured ones (with `check`, the first response must be right for the target user)."""
    for n in range(warmup):
        response = get(PAGES[page])
        if check and n == 0:
            check_response(page, response.status_code, response.content.decode())
    times = []
    for _ in range(requests):
        began = time.perf_counter()
        response = get(PAGES[page])
        times.append(time.perf_counter() - began)
        if response.status_code != 200:
            raise RuntimeError(f"{page}: HTTP {response.status_code}")
    return times


def measure_http(
    clients: dict[str, httpx.Client], args: argparse.Namespace, access_log: Path
) -> dict[str, Any]:
    """Each page N times after a warm-up, one request at a time over one keep-alive
    connection per client; the client's wall time and gunicorn's own time."""
    results = {}
    for page, path in PAGES.items():
        client = clients["api" if page.startswith("api") else "html"]
        times = timed_requests(client.get, page, args.requests, args.warmup, check=True)
        log(f"http {page}: p50 {latency_summary(times)['p50']} ms")
        results[page] = {"path": path, "client_wall_ms": latency_summary(times)}

    def server_times(path: str) -> list[float]:
        """Server seconds of every logged GET of `path` ("GET /tasks/ HTTP/1.1|200|12345")."""
        lines = [line.split("|") for line in access_log.read_text().splitlines()]
        return [
            int(p[2]) / 1e6 for p in lines if len(p) == 3 and p[0].split(" ")[:2] == ["GET", path]
        ]

    # The access log is written after the response.
    wanted = args.warmup + args.requests
    wait_until(
        lambda: all(len(server_times(p)) >= wanted for p in PAGES.values()), 10, "the access log"
    )
    for page, path in PAGES.items():
        results[page]["server_ms_gunicorn"] = latency_summary(server_times(path)[-args.requests :])
    return results


def measure_in_process(username: str, requests: int, warmup: int, check: bool) -> dict[str, Any]:
    """--diagnose: per page in this process, time per request, SQL time, the queries of one
    request and the plans of those on engine_humantask."""
    from django.contrib.auth.models import User
    from django.test import Client
    from rest_framework.authtoken.models import Token

    user = User.objects.get(username=username)
    html = Client(HTTP_HOST="127.0.0.1")
    html.force_login(user)
    token = Token.objects.get_or_create(user=user)[0].key
    api = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Token {token}")
    pages: dict[str, Any] = {}
    plans: dict[str, dict[str, Any]] = {}
    for page, path in PAGES.items():
        client = api if page.startswith("api") else html
        timed_requests(client.get, page, 0, warmup, check)
        with timed_sql() as one:
            client.get(path)
        with timed_sql() as timer:
            times = timed_requests(client.get, page, requests, 0, check=False)
        repeated = Counter(sql for sql, _ in one.queries)
        pages[page] = {
            "server_ms": latency_summary(times),
            "sql_ms_per_request": round(timer.seconds / requests * 1000, 2),
            "python_ms_per_request": round((sum(times) - timer.seconds) / requests * 1000, 2),
            "queries": len(one.queries),
            "query_kinds": one.kinds(),
            "identical_queries_repeated": sum(n - 1 for n in repeated.values() if n > 1),
            "queries_ms": [
                f"{s * 1000:.3f} {query_kind(sql)}: {shorten(sql)}" for sql, s in one.queries
            ],
        }
        for sql, _ in one.queries:
            if '"engine_humantask"' in sql.split(" WHERE ")[0]:
                plan = plans.setdefault(sql, {"query": query_kind(sql), "pages": [], "sql": sql})
                plan["pages"].append(page)
        log(f"in process ({username}) {page}: p95 {pages[page]['server_ms']['p95']} ms")
    for plan in plans.values():
        explain(plan["sql"])  # the second run is reported: a warm cache, as the pages see it
        plan.update(explain(plan["sql"]))
    return {
        "user": username,
        "actionable": check_target(username),
        "pages": pages,
        "plans": list(plans.values()),
    }


def in_process_roles() -> dict[str, Callable[[], list[int]]]:
    """CPU roles: this process and the Postgres backends of the benchmark database."""
    backends = functools.partial(postgres_backends, BENCH_DATABASE)
    return {"postgres_backends": backends, "benchmark_process": lambda: [os.getpid()]}


def diagnose(args: argparse.Namespace, people: People) -> dict[str, Any]:
    """--diagnose: the pages in process for the target and for a busy user (3 groups, none of
    them the target's)."""
    meter = CpuMeter(in_process_roles())
    target = measure_in_process(TARGET_USER, args.requests, args.warmup, check=True)
    cpu = meter.usage(len(PAGES) * (args.requests + args.warmup + 1), "request")
    busy = next(
        (
            name
            for name, groups in sorted(people.user_groups.items())
            if len(groups) == 3 and min(groups) >= TARGET_GROUPS
        ),
        people.others[0],
    )
    busy_user = measure_in_process(busy, args.requests, min(args.warmup, 5), check=False)
    return {"in_process": target, "cpu_during_in_process": cpu, "busy_user_in_process": busy_user}


def set_up(env: dict[str, str], args: argparse.Namespace, password: str) -> dict[str, Any]:
    """This process configured like the server; the data built and checked; a token."""
    env.update({"BATON_API_USER_RATE": "", "BATON_API_ANON_RATE": ""})  # no throttling
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections
    from rest_framework.authtoken.models import Token

    call_command("migrate", "--noinput", verbosity=0)
    log(f"building {args.tasks} active tasks, {args.completed} completed, {args.users} users")
    data = build_data(random.Random(args.seed), args, password)
    log(f"data built in {data['seconds']}s: {data['counts']}")
    data["actionable"] = check_target(TARGET_USER)
    wanted = {
        "inbox_tasks_mine": TARGET_ASSIGNED,
        "inbox_tasks_groups": TARGET_GROUP_UNCLAIMED + TARGET_CANDIDATE_USER,
        "tasks_for_user": TARGET_ACTIONABLE,
        "open_task_count": TARGET_ACTIONABLE,
        "groups": TARGET_GROUPS,
    }
    if data["actionable"] != wanted:
        raise RuntimeError(f"the target user has {data['actionable']}, not {wanted}")
    data["token"] = Token.objects.create(user_id=data["people"].users[TARGET_USER]).key
    names = ("shared_buffers", "work_mem", "effective_cache_size", "random_page_cost", "jit")
    data["postgres_settings"] = postgres_settings(*names)
    connections.close_all()
    return data


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from django.db import connections

    password, data = secrets.token_urlsafe(16), {}

    def setup(env: dict[str, str]) -> str:
        data.update(set_up(env, args, password))
        return str(data["token"])

    log_file = Path(tempfile.mkdtemp()) / "access.log"
    clients: dict[str, httpx.Client] = {}
    with web_server(args.data_dir, BENCH_DATABASE, setup, access_log=log_file) as (
        server,
        token,
        what,
    ):
        try:
            for name, header in (("html", "Cookie"), ("api", "Authorization")):
                value = log_in(server.url, password) if name == "html" else f"Token {token}"
                clients[name] = httpx.Client(
                    base_url=server.url, headers={header: value}, timeout=60
                )
            roles = {"server": lambda: server.pids("web"), **in_process_roles()}
            meter = CpuMeter(roles)
            http = measure_http(clients, args, log_file)
            http_cpu = meter.usage(len(PAGES) * (args.requests + args.warmup), "request")
        finally:
            for client in clients.values():
                client.close()
            log_file.unlink(missing_ok=True)
            log_file.parent.rmdir()
        diagnosis = diagnose(args, data["people"]) if args.diagnose else None
        connections.close_all()
    p95s = {page: result["server_ms_gunicorn"]["p95"] for page, result in http.items()}
    return {
        **what,
        "postgres_settings": data["postgres_settings"],
        "data": {
            **data["counts"],
            "target_user": TARGET_USER,
            "target_groups": [group_name(i) for i in range(TARGET_GROUPS)],
            "target_actionable": data["actionable"],
            "target_group_tasks_claimed_by_others": args.group_claimed * TARGET_GROUPS,
            "seconds": data["seconds"],
        },
        "goal": {
            "p95_server_ms_below": GOAL_P95_MS,
            "server_p95_ms_by_page": p95s,
            "met": all(p95 is not None and p95 < GOAL_P95_MS for p95 in p95s.values()),
        },
        "http": http,
        "cpu_during_http": http_cpu,
        "diagnosis": diagnosis,
    }


def parse_args() -> argparse.Namespace:
    parser = argument_parser(__doc__, "bench-inbox")
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
        "--diagnose", action="store_true", help="the pages in process, query plans, a busy user"
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    minimum = TARGET_ACTIONABLE + args.group_claimed * TARGET_GROUPS
    if args.tasks < minimum:
        parser.error(f"--tasks must be at least {minimum}")
    if args.users < 50 or min(args.requests, args.warmup) < 1:
        parser.error("--users at least 50; counts at least 1")
    return args


def main() -> int:
    args = parse_args()
    gunicorn_version()

    def measure_all() -> dict[str, Any]:
        result = measure(args)
        return {
            "requests_per_page": args.requests,
            "warmup_per_page": args.warmup,
            "sequential": "one request at a time, one keep-alive connection per client",
            **result,
        }

    return run_benchmark("inbox", measure_all)


if __name__ == "__main__":
    sys.exit(main())
