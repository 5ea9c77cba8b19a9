"""Keeping Celery messages in this process while process tests run.

The tests' operations commit (on a test database of their own under `manage.py
test_processes`), so the engine hands their work to the broker after commit as it always
does: a job, an event delivery, a webhook delivery. `ProcessTester` does the workers' part
itself (`settle`), so those messages are for nobody, and on the real broker a real worker
would take them and look for rows of the test database in the real one. While
`messages_kept_in_process()` is open, the current Celery app is one on Kombu's in-memory
transport: the engine's hand-over code runs unchanged, and its messages never leave.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from celery import Celery, current_app


@contextmanager
def messages_kept_in_process() -> Iterator[Celery]:
    """Make an app on the in-memory broker this thread's current Celery app, meanwhile."""
    previous = current_app._get_current_object()  # noqa: SLF001 -- the proxy's documented target
    in_process = Celery("baton-process-tests", broker="memory://", set_as_current=False)
    in_process.set_current()
    try:
        yield in_process
    finally:
        previous.set_current()
        in_process.close()
