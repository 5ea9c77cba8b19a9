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
import dataclasses
import functools
import html
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
from urllib.parse import urljoin, urlsplit

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
# The heavy user: every tab, sort and API variant, first and deep pages. `{...}` is filled in
# from what was built (`heavy_paths`); "deep" follows the page's own links from its first page
# (`next`, however the page names it) `--deep-pages` times.
HEAVY_PAGES = {
    "heavy_inbox_default": "/tasks/",
    "heavy_inbox_mine": "/tasks/?tab=mine",
    "heavy_inbox_mine_deep": "deep:/tasks/?tab=mine",
    "heavy_inbox_mine_by_due_deep": "deep:/tasks/?tab=mine&sort=due",
    "heavy_inbox_mine_newest_deep": "deep:/tasks/?tab=mine&sort=-created",
    "heavy_inbox_groups": "/tasks/?tab=groups",
    "heavy_inbox_groups_deep": "deep:/tasks/?tab=groups",
    "heavy_inbox_groups_by_name_deep": "deep:/tasks/?tab=groups&sort=name",
    "heavy_inbox_groups_oldest": "/tasks/?tab=groups&sort=created",
    "heavy_inbox_groups_process": "/tasks/?tab=groups&process={process}",
    "heavy_inbox_mine_search": "/tasks/?tab=mine&q=Taxi",
    "heavy_inbox_completed": "/tasks/?tab=completed",
    "heavy_inbox_completed_deep": "deep:/tasks/?tab=completed",
    "heavy_api_tasks": "/api/v1/tasks/",
    "heavy_api_tasks_deep": "deep:/api/v1/tasks/",
    "heavy_api_tasks_500": "/api/v1/tasks/?page_size=500",
    "heavy_api_mine": "/api/v1/tasks/?mine=1",
    "heavy_api_mine_deep": "deep:/api/v1/tasks/?mine=1",
    "heavy_api_group": "/api/v1/tasks/?group={group}",
    "heavy_api_group_deep": "deep:/api/v1/tasks/?group={group}",
    "heavy_api_instance": "/api/v1/tasks/?instance={instance}",
    "heavy_api_completed": "/api/v1/tasks/?status=completed",
    "heavy_api_completed_deep": "deep:/api/v1/tasks/?status=completed",
}
GROUPS = 50
TARGET_USER = "inbox_bench"
TARGET_GROUPS = 5
TARGET_ASSIGNED = 15  # claimed by / assigned to the target user: the "mine" tab
TARGET_GROUP_UNCLAIMED = 22  # unclaimed, for one of the target's groups
TARGET_CANDIDATE_USER = 3  # unclaimed, naming the target as a candidate user
TARGET_ACTIONABLE = TARGET_ASSIGNED + TARGET_GROUP_UNCLAIMED + TARGET_CANDIDATE_USER  # 40
TARGET_COMPLETED = 30
HEAVY_USER = "inbox_heavy"
HEAVY_GROUPS = 3  # groups of their own ("desk-0" ...), which no random task names
HEAVY_GROUP_MEMBERS = 20  # other users in each of them, who claim some of their tasks
PRIORITIES = [50] * 12 + [20, 30, 30, 40, 60, 70, 70, 80, 90, 100]
WORDS = ["Team dinner", "Laptop", "Conference travel", "Office chairs", "Taxi", "Hotel"]
# One line per table rather than one per column.
INSTANCE_COLUMNS = (  # noqa: SIM905
    "id definition_id business_key status state variables lock_version started_by_id "
    "created_at updated_at completed_at cancel_reason"
).split()
TASK_COLUMNS = (  # noqa: SIM905
    "id instance_id spiff_task_id process_key element_id name lane assignee candidate_users "
    "candidate_groups form due_at priority status completed_by_id completed_at submitted_data "
    "created_at"
).split()


def group_name(index: int) -> str:
    return f"team-{index:02d}"


def heavy_group_name(index: int) -> str:
    return f"desk-{index}"


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
    desk_groups: list[int] = dataclasses.field(default_factory=list)


@dataclass
class People:
    users: dict[str, int]  # username -> id
    members: dict[int, list[str]]  # group index -> usernames (other users only)
    user_groups: dict[str, list[int]]  # username -> group indexes

    heavy_members: dict[int, list[str]]  # heavy group index -> usernames (other users only)

    @property
    def others(self) -> list[str]:
        return [name for name in self.users if name not in (TARGET_USER, HEAVY_USER)]


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
    Group.objects.bulk_create([Group(name=heavy_group_name(i)) for i in range(HEAVY_GROUPS)])
    groups = dict(Group.objects.values_list("name", "id"))
    unusable = make_password(None)  # the others never log in; one hash for all
    others = [f"user{i:04d}" for i in range(1, users)]
    target = User(username=TARGET_USER, password=make_password(password), first_name="Inbox")
    heavy = User(username=HEAVY_USER, password=make_password(password), first_name="Heavy")
    accounts = [User(username=name, password=unusable) for name in others]
    User.objects.bulk_create([*accounts, target, heavy], batch_size=5000)
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
    # The heavy user is in the desks only, so that their group tasks are the ones built for
    # them; so are 20 others per desk.
    user_groups[HEAVY_USER] = []
    heavy_members = {i: rng.sample(others, HEAVY_GROUP_MEMBERS) for i in range(HEAVY_GROUPS)}
    through = User.groups.through
    links = [
        through(user_id=ids[name], group_id=groups[group_name(index)])
        for name, indexes in user_groups.items()
        for index in indexes
    ]
    links += [
        through(user_id=ids[name], group_id=groups[heavy_group_name(index)])
        for index, names in heavy_members.items()
        for name in [HEAVY_USER, *names]
    ]
    through.objects.bulk_create(links, batch_size=5000)
    return People(users=ids, members=members, user_groups=user_groups, heavy_members=heavy_members)


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


def heavy_tasks(rng: random.Random, people: People, args: argparse.Namespace) -> list[TaskSpec]:
    """The heavy user's actionable tasks (assigned to them; unclaimed for their desks or naming
    them as a candidate user) and more tasks of their desks, claimed by other members."""
    specs = []
    for i in range(args.heavy_assigned):
        # Most claimed from a desk, some assigned by the diagram (open, with an assignee).
        status = "claimed" if i % 4 else "open"
        desks = [i % HEAVY_GROUPS] if status == "claimed" else []
        specs.append(TaskSpec(status, HEAVY_USER, [], [], desks))
    for i in range(args.heavy_group):
        if i % 20 == 0:  # a candidate user by name
            specs.append(TaskSpec("open", None, [HEAVY_USER, rng.choice(people.others)], []))
            continue
        teams = [rng.randrange(TARGET_GROUPS, GROUPS)] if i % 5 == 0 else []
        specs.append(TaskSpec("open", None, [], teams, [i % HEAVY_GROUPS]))
    for i in range(args.heavy_claimed_by_others):
        desk = i % HEAVY_GROUPS
        assignee = rng.choice(people.heavy_members[desk])
        specs.append(TaskSpec("claimed", assignee, [], [], [desk]))
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


def task_specs(rng: random.Random, people: People, args: argparse.Namespace) -> list[TaskSpec]:
    """The target's tasks; more active tasks of the target's groups, all claimed by other
    members; the heavy user's; then tasks of other groups."""
    others, tasks = people.others, args.tasks
    specs = target_tasks(rng, people) + heavy_tasks(rng, people, args)
    for index in range(TARGET_GROUPS):
        for _ in range(args.group_claimed):
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
    specs = task_specs(rng, people, args)
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
            yield (*row, json.dumps(variables), 0, rng.choice(user_ids), at, at, None, "")

    def active_rows() -> Iterable[tuple[Any, ...]]:
        for spec, (instance_id, template), at in zip(specs, instances, created, strict=True):
            at += timedelta(seconds=rng.uniform(1, 3600))
            due = at + timedelta(days=rng.uniform(1, 21)) if rng.random() < 0.6 else None
            counts[f"active_{spec.status}"] += 1
            groups = [group_name(i) for i in spec.candidate_groups]
            groups += [heavy_group_name(i) for i in spec.desk_groups]
            ids = (new_uuid(), instance_id, new_uuid(), template.key)
            row = (*ids, *template.element, spec.assignee)
            task = (spec.candidate_users, groups, template.form, due, rng.choice(PRIORITIES))
            yield (*row, *task, spec.status, None, None, None, at)

    def completed_rows() -> Iterable[tuple[Any, ...]]:
        for n in range(args.completed):
            index = rng.randrange(len(instances))
            instance_id, template = instances[index]
            who = TARGET_USER if n < TARGET_COMPLETED else rng.choice(others)
            if TARGET_COMPLETED <= n < TARGET_COMPLETED + args.heavy_completed:
                who = HEAVY_USER
            groups = [group_name(rng.randrange(GROUPS))]  # the target's groups too
            at = created[index] - timedelta(seconds=rng.uniform(3600, 5 * 86400))
            done = at + timedelta(seconds=rng.uniform(60, 3 * 86400))
            ids = (new_uuid(), instance_id, new_uuid(), template.key)
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


def log_in(base_url: str, username: str, password: str) -> str:
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
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": found.group(1),
        }
        headers = {"Cookie": f"csrftoken={csrf}", "Referer": f"{base_url}/accounts/login/"}
        response = client.post("/accounts/login/", data=form, headers=headers)
        session = response.cookies.get("sessionid")
        if response.status_code != 302 or not session:
            raise RuntimeError(f"login failed: HTTP {response.status_code}")
        return f"csrftoken={response.cookies.get('csrftoken') or csrf}; sessionid={session}"


def check_response(page: str, status: int, body: str, expected: dict[str, int]) -> None:
    """What a correct response for the page's user contains: its count of tasks waiting for
    them (pages) or of tasks in the list (first pages of the API and of the tabs)."""
    if page in PAGES:  # the target user's
        groups = TARGET_GROUP_UNCLAIMED + TARGET_CANDIDATE_USER
        expected = {
            "actionable": TARGET_ACTIONABLE,
            "list": groups if page == "inbox_groups" else TARGET_ASSIGNED,
        }
        if page == "api_tasks":
            expected["list"] = TARGET_ACTIONABLE
    wanted = []
    if "/api/" not in (PAGES | HEAVY_PAGES)[page]:
        wanted.append(f'title="Tasks waiting for you">{expected["actionable"]}</span>')
    count = expected.get("list")
    if count is not None:
        api = "/api/" in (PAGES | HEAVY_PAGES)[page]
        wanted.append(f'"count":{count}' if api else f"{count} tasks</caption>")
    missing = [text for text in wanted if text not in body]
    if status != 200 or missing:
        raise RuntimeError(f"{page}: HTTP {status}, the response lacks {missing}")


def heavy_expected(page: str, counts: dict[str, int]) -> dict[str, int]:
    """The counts the first page of a heavy user's page shows (deep pages: none)."""
    lists = {
        "heavy_inbox_default": counts["inbox_tasks_mine"],
        "heavy_inbox_mine": counts["inbox_tasks_mine"],
        "heavy_inbox_groups": counts["inbox_tasks_groups"],
        "heavy_inbox_groups_oldest": counts["inbox_tasks_groups"],
        "heavy_api_tasks": counts["tasks_for_user"],
        "heavy_api_tasks_500": counts["tasks_for_user"],
        "heavy_api_mine": counts["inbox_tasks_mine"],
        "heavy_inbox_completed": counts["completed"],
        "heavy_api_completed": counts["completed"],
    }
    expected = {"actionable": counts["open_task_count"]}
    if page in lists:
        expected["list"] = lists[page]
    return expected


def next_link(path: str, body: str) -> str | None:
    """The path of the page after this one: the API's `next`, or the pager's rel="next"."""
    if "/api/" in path:
        url = json.loads(body).get("next")
    else:
        found = re.search(r'<a [^>]*rel="next"[^>]*>|<a [^>]*>Next</a>', body)
        href = re.search(r'href="([^"]+)"', found.group(0)) if found else None
        url = html.unescape(href.group(1)) if href else None
    if not url:
        return None
    parts = urlsplit(urljoin(f"http://host{path}", url))
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def deepest_page(get: Callable[[str], Any], path: str, limit: int) -> tuple[str, int, int]:
    """Follow the page's next links from its first page, at most `limit` times: the path of
    the last page reached, how many links were followed and how many requests that took."""
    followed = fetched = 0
    while followed < limit:
        response = get(path)
        fetched += 1
        if response.status_code != 200:
            raise RuntimeError(f"{path}: HTTP {response.status_code}")
        following = next_link(path, response.content.decode())
        if following is None:
            break
        path, followed = following, followed + 1
    return path, followed, fetched


def timed_requests(
    get: Callable[[str], Any],
    path: str,
    requests: int,
    warmup: int,
    check: Callable[[int, str], None] | None = None,
) -> list[float]:
    """The seconds of each of `requests` GETs of `path`, one at a time, after `warmup`
    unmeasured ones (`check` sees the first response)."""
    for n in range(warmup):
        response = get(path)
        if check and n == 0:
            check(response.status_code, response.content.decode())
    times = []
    for _ in range(requests):
        began = time.perf_counter()
        response = get(path)
        times.append(time.perf_counter() - began)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: HTTP {response.status_code}")
    return times


@dataclass
class AccessLog:
    """gunicorn's access log, read in order: every request of the benchmark goes through one
    connection at a time, so the lines of a page are the next ones after those before it."""

    path: Path
    seen: int = 0

    def lines(self) -> list[list[str]]:
        """The complete lines: one read while gunicorn writes may end in half a line."""
        text = self.path.read_text() if self.path.exists() else ""
        return [line.split("|") for line in text.split("\n")[:-1]]

    def settle(self, sent: int) -> None:
        """Wait until the `sent` requests so far are logged (a line follows its response)."""
        wait_until(lambda: len(self.lines()) >= sent, 10, "the access log")
        self.seen = sent

    def settle_after_mark(self, base_url: str) -> None:
        """Skip what came before (the readiness checks: one the client gave up on may be
        logged late) by a request of our own, and wait for its line."""
        mark = f"bench-mark={uuid.uuid4().hex}"
        httpx.get(f"{base_url}/accounts/login/?{mark}", timeout=30).raise_for_status()

        def marked() -> int:
            found = [i for i, line in enumerate(self.lines()) if mark in line[0]]
            return found[0] + 1 if found else 0

        self.seen = wait_until(marked, 10, "the access log's mark")

    def server_seconds(self, path: str, sent: int, last: int) -> list[float]:
        """The server seconds of the last `last` of the requests since the previous call
        (all of them GETs of `path`: "GET /tasks/ HTTP/1.1|200|12345")."""
        start = self.seen
        self.settle(sent)
        lines = self.lines()[start:sent]
        if any(line[0].split(" ")[:2] != ["GET", path] for line in lines):
            raise RuntimeError(f"the access log does not follow the requests of {path}")
        return [int(line[2]) / 1e6 for line in lines][-last:]


@dataclass
class Visitor:
    """One user's clients (session cookie for pages, token for the API)."""

    html: httpx.Client
    api: httpx.Client

    def get(self, path: str) -> Any:
        return (self.api if "/api/" in path else self.html).get(path)


def measure_http(
    visitors: dict[str, Visitor],
    args: argparse.Namespace,
    access_log: AccessLog,
    heavy: dict[str, Any],
) -> dict[str, Any]:
    """Each page N times after a warm-up, one request at a time over one keep-alive
    connection per client; the client's wall time and gunicorn's own time."""
    results: dict[str, dict[str, Any]] = {}
    sent = access_log.seen
    pages = [(page, path, "target") for page, path in PAGES.items()]
    pages += [(page, path, "heavy") for page, path in HEAVY_PAGES.items()]
    for page, template, who in pages:
        visitor = visitors[who]
        path = template.removeprefix("deep:").format(**heavy["fill"])
        followed = None
        if template.startswith("deep:"):
            path, followed, fetched = deepest_page(visitor.get, path, args.deep_pages)
            sent += fetched
            access_log.settle(sent)
        expected = heavy_expected(page, heavy["counts"]) if who == "heavy" else {}

        def check(
            status: int, body: str, page: str = page, expected: dict[str, int] = expected
        ) -> None:
            check_response(page, status, body, expected)

        times = timed_requests(visitor.get, path, args.requests, args.warmup, check)
        sent += args.warmup + args.requests
        server = access_log.server_seconds(path, sent, args.requests)
        results[page] = {
            "path": path,
            **({"next_links_followed": followed} if followed is not None else {}),
            "client_wall_ms": latency_summary(times),
            "server_ms_gunicorn": latency_summary(server),
        }
        log(f"http {page}: server p95 {results[page]['server_ms_gunicorn']['p95']} ms ({path})")
    return results


def measure_in_process(
    username: str, paths: dict[str, str], requests: int, warmup: int
) -> dict[str, Any]:
    """--diagnose: per page in this process, time per request, SQL time, the queries of one
    request and the plans of those on engine_humantask."""
    from django.contrib.auth.models import User
    from django.test import Client
    from rest_framework.authtoken.models import Token

    user = User.objects.get(username=username)
    html_client = Client(HTTP_HOST="127.0.0.1")
    html_client.force_login(user)
    token = Token.objects.get_or_create(user=user)[0].key
    api = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Token {token}")
    pages: dict[str, Any] = {}
    plans: dict[str, dict[str, Any]] = {}
    for page, path in paths.items():
        client = api if "/api/" in path else html_client
        timed_requests(client.get, path, 0, warmup)
        with timed_sql() as one:
            client.get(path)
        with timed_sql() as timer:
            times = timed_requests(client.get, path, requests, 0)
        repeated = Counter(sql for sql, _ in one.queries)
        pages[page] = {
            "path": path,
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


def diagnose(args: argparse.Namespace, people: People, http: dict[str, Any]) -> dict[str, Any]:
    """--diagnose: the pages in process for the target, the heavy user (the paths measured
    over HTTP, deep ones included) and a busy user (3 large groups, none of the target's)."""
    meter = CpuMeter(in_process_roles())
    target = measure_in_process(TARGET_USER, PAGES, args.requests, args.warmup)
    cpu = meter.usage(len(PAGES) * (args.requests + args.warmup + 1), "request")
    heavy_paths = {page: http[page]["path"] for page in HEAVY_PAGES}
    heavy = measure_in_process(HEAVY_USER, heavy_paths, args.requests, min(args.warmup, 5))
    busy = next(
        (
            name
            for name, groups in sorted(people.user_groups.items())
            if len(groups) == 3 and min(groups, default=0) >= TARGET_GROUPS
        ),
        people.others[0],
    )
    busy_user = measure_in_process(busy, PAGES, args.requests, min(args.warmup, 5))
    return {
        "in_process": target,
        "cpu_during_in_process": cpu,
        "heavy_user_in_process": heavy,
        "busy_user_in_process": busy_user,
    }


def heavy_counts(args: argparse.Namespace) -> dict[str, int]:
    """What the heavy user should see, from how their tasks were built."""
    return {
        "inbox_tasks_mine": args.heavy_assigned,
        "inbox_tasks_groups": args.heavy_group,
        "tasks_for_user": args.heavy_assigned + args.heavy_group,
        "open_task_count": args.heavy_assigned + args.heavy_group,
        "groups": HEAVY_GROUPS,
    }


def heavy_fill() -> dict[str, str]:
    """The values of the heavy user's paths: a desk, a process and an instance of theirs."""
    from engine.models import HumanTask

    task = (
        HumanTask.objects.filter(assignee=HEAVY_USER, status=HumanTask.Status.CLAIMED)
        .select_related("instance__definition")
        .order_by("created_at")
        .first()
    )
    if task is None:
        raise RuntimeError("the heavy user has no claimed task")
    key = task.instance.definition.key
    return {"group": heavy_group_name(0), "process": key, "instance": str(task.instance_id)}


def set_up(env: dict[str, str], args: argparse.Namespace, password: str) -> dict[str, Any]:
    """This process configured like the server; the data built and checked; tokens."""
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
    data["heavy_actionable"] = check_target(HEAVY_USER)
    if data["heavy_actionable"] != heavy_counts(args):
        raise RuntimeError(f"the heavy user has {data['heavy_actionable']}, not {heavy_counts}")
    people = data["people"]
    data["token"] = Token.objects.create(user_id=people.users[TARGET_USER]).key
    data["heavy_token"] = Token.objects.create(user_id=people.users[HEAVY_USER]).key
    data["heavy"] = {
        "fill": heavy_fill(),
        "counts": {**data["heavy_actionable"], "completed": args.heavy_completed},
    }
    names = ("shared_buffers", "work_mem", "effective_cache_size", "random_page_cost", "jit")
    data["postgres_settings"] = postgres_settings(*names)
    connections.close_all()
    return data


def visitor(base_url: str, username: str, password: str, token: str) -> Visitor:
    cookie = log_in(base_url, username, password)
    return Visitor(
        html=httpx.Client(base_url=base_url, headers={"Cookie": cookie}, timeout=60),
        api=httpx.Client(
            base_url=base_url, headers={"Authorization": f"Token {token}"}, timeout=60
        ),
    )


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from django.db import connections

    password, data = secrets.token_urlsafe(16), {}

    def setup(env: dict[str, str]) -> str:
        data.update(set_up(env, args, password))
        return str(data["token"])

    log_file = Path(tempfile.mkdtemp()) / "access.log"
    visitors: dict[str, Visitor] = {}
    with web_server(args.data_dir, BENCH_DATABASE, setup, access_log=log_file) as (
        server,
        token,
        what,
    ):
        try:
            access_log = AccessLog(log_file)
            access_log.settle_after_mark(server.url)
            for who, username, key in (
                ("target", TARGET_USER, token),
                ("heavy", HEAVY_USER, data["heavy_token"]),
            ):
                visitors[who] = visitor(server.url, username, password, key)
                access_log.settle(access_log.seen + 2)  # the login form and its POST
            roles = {"server": lambda: server.pids("web"), **in_process_roles()}
            meter, before = CpuMeter(roles), access_log.seen
            http = measure_http(visitors, args, access_log, data["heavy"])
            http_cpu = meter.usage(access_log.seen - before, "request")
        finally:
            for each in visitors.values():
                each.html.close()
                each.api.close()
            log_file.unlink(missing_ok=True)
            log_file.parent.rmdir()
        diagnosis = diagnose(args, data["people"], http) if args.diagnose else None
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
            "heavy_user": HEAVY_USER,
            "heavy_groups": [heavy_group_name(i) for i in range(HEAVY_GROUPS)],
            "heavy_actionable": data["heavy_actionable"],
            "heavy_completed": args.heavy_completed,
            "heavy_group_tasks_claimed_by_others": args.heavy_claimed_by_others,
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
    parser.add_argument(
        "--heavy-assigned", type=int, default=2000, help="tasks assigned to the heavy user"
    )
    parser.add_argument(
        "--heavy-group", type=int, default=1400, help="unclaimed tasks for the heavy user"
    )
    parser.add_argument(
        "--heavy-claimed-by-others",
        type=int,
        default=300,
        help="tasks of the heavy user's groups claimed by others",
    )
    parser.add_argument(
        "--heavy-completed", type=int, default=1000, help="tasks the heavy user completed"
    )
    parser.add_argument(
        "--deep-pages", type=int, default=200, help="next links followed to a deep page"
    )
    parser.add_argument("--requests", type=int, default=200, help="measured requests per page")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured requests per page")
    parser.add_argument(
        "--diagnose", action="store_true", help="the pages in process, query plans, a busy user"
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    heavy = args.heavy_assigned + args.heavy_group + args.heavy_claimed_by_others
    minimum = TARGET_ACTIONABLE + args.group_claimed * TARGET_GROUPS + heavy
    if args.tasks < minimum:
        parser.error(f"--tasks must be at least {minimum}")
    if args.completed < TARGET_COMPLETED + args.heavy_completed:
        parser.error(f"--completed must be at least {TARGET_COMPLETED + args.heavy_completed}")
    if (
        args.users < 50 + HEAVY_GROUP_MEMBERS
        or min(args.requests, args.warmup, args.heavy_assigned) < 1
    ):
        parser.error("--users at least 70; counts at least 1")
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
