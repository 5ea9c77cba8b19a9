"""Python's cyclic garbage collector in Baton's long-running processes.

A full collection walks every object the process holds: in a web worker or a Celery pool
process, hundreds of thousands of them are Django's, SpiffWorkflow's and Baton's own modules,
loaded once and never garbage. Collecting them cost 50-100 ms in the middle of an unlucky
request (bench/inbox.py: the heavy user's 500-task API page had a p95 of 152 ms against a p50
of 41 ms, and pages of 10 ms peaked at 100 ms). Once the application is loaded, `gc.freeze()`
moves those objects out of the collector's generations: later collections walk only what the
requests and tasks made."""

import gc


def freeze_loaded_objects() -> None:
    """Leave everything loaded so far to the permanent generation (what loading left as
    garbage is freed first, not frozen)."""
    gc.collect()
    gc.freeze()


def freeze_loaded_web_application() -> None:
    """Load what the first request would otherwise import (the URLconf and every view it
    names), then freeze."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 -- evaluated for its imports
    freeze_loaded_objects()
