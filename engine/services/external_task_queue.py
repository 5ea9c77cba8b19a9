"""Waking workers that wait (long-poll) for external tasks: a Postgres notification on the
channel `baton_external_tasks`, sent in the transaction that makes a task fetchable, so that
it reaches listeners only when that transaction commits."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection

CHANNEL = "baton_external_tasks"
# A waiting fetch also looks again this often: locks that ran out and retries whose timeout
# passed make tasks fetchable without anyone announcing them.
LOOK_AGAIN_SECONDS = 1.0


def announce_external_task(topic: str) -> None:
    """Tell waiting fetches that a task of `topic` may be there (inside the writer's
    transaction: Postgres delivers it at commit, and drops it on rollback)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, topic[:7000]])


def _listener() -> Any:
    """The connection's psycopg connection, when it can listen (outside any transaction)."""
    connection.ensure_connection()
    raw = connection.connection
    if raw is None or connection.in_atomic_block or not hasattr(raw, "notifies"):
        return None
    return raw


@contextmanager
def listening() -> Iterator[None]:
    """Listen for announcements while the block runs (before looking for tasks: one
    announced between a look and the wait is not missed)."""
    if _listener() is None:
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute(f"LISTEN {CHANNEL}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"UNLISTEN {CHANNEL}")


def wait_for_announcement(seconds: float) -> None:
    """Inside `listening()`: wait until a task is announced or `seconds` pass. The
    connection is idle meanwhile, never idle in a transaction."""
    if seconds <= 0:
        return
    raw = _listener()
    if raw is None:
        time.sleep(seconds)  # nothing to listen on: look again after the wait
        return
    for _ in raw.notifies(timeout=seconds, stop_after=1):
        break
