"""Which instance, element and job the current work is about: for log lines and trace spans.

The services and the job runner name them (`bind`) as they learn them; each web request and
each Celery task starts with none (`clear`). A logging filter (`LogContextFilter`) puts them,
and the current trace id, on every log record, so that JSON logs carry them as fields and the
text format shows them. Only ids: never variable values or parameters.
"""

import contextvars
import logging
from typing import Any

from opentelemetry import trace

_instance_id: contextvars.ContextVar[str] = contextvars.ContextVar("baton_instance_id", default="")
_element_id: contextvars.ContextVar[str] = contextvars.ContextVar("baton_element_id", default="")
_job_id: contextvars.ContextVar[str] = contextvars.ContextVar("baton_job_id", default="")

FIELDS = ("instance_id", "element_id", "job_id", "trace_id")


def clear() -> None:
    """A new unit of work (a request, a task) begins: it is about nothing yet."""
    _instance_id.set("")
    _element_id.set("")
    _job_id.set("")


def bind(*, instance: object = None, element: str | None = None, job: object = None) -> None:
    """The current work is about this instance / element / job (None leaves one as it is).
    The current trace span gets them as attributes too."""
    attributes: dict[str, str] = {}
    if instance is not None:
        attributes["baton.instance_id"] = str(instance)
        _instance_id.set(str(instance))
    if element is not None:
        attributes["baton.element_id"] = element
        _element_id.set(element)
    if job is not None:
        attributes["baton.job_id"] = str(job)
        _job_id.set(str(job))
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(attributes)


def current() -> dict[str, str]:
    """The ids of the current work, and the current trace id ("" for those unknown)."""
    span_context = trace.get_current_span().get_span_context()
    return {
        "instance_id": _instance_id.get(),
        "element_id": _element_id.get(),
        "job_id": _job_id.get(),
        "trace_id": format(span_context.trace_id, "032x") if span_context.is_valid else "",
    }


class LogContextFilter(logging.Filter):
    """Adds `instance_id`, `element_id`, `job_id` and `trace_id` to every record, and
    `context`: the known ones as ` [instance=... element=...]` for the text format."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = current()
        for name, value in ids.items():
            setattr(record, name, value)
        shown = " ".join(f"{name[:-3]}={value}" for name, value in ids.items() if value)
        record.context = f" [{shown}]" if shown else ""
        return True


def as_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {name: getattr(record, name, "") for name in FIELDS}
