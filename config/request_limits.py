"""Request bodies are capped before anything reads them (DESIGN section 8).

A body whose Content-Length is over its cap is refused with a 413 problem at once; a body
without one (chunked) is counted while it is read and refused as soon as it passes the cap.
What is left of a refused body is read and dropped 64 KiB at a time, never kept, and only for a
while (DRAIN_BYTES, DRAIN_SECONDS): the server closes the connection after such a 413.
The deployment endpoints (and the modeler's save) may carry a whole deployment; every other
request at most BATON_MAX_JSON_BYTES. Django's own checks (DATA_UPLOAD_MAX_MEMORY_SIZE and
friends) stay behind this as a second line: they do not count uploaded files, which is how a
300 MiB upload used to be spooled and read into memory before the deployment's size check.
"""

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from tempfile import SpooledTemporaryFile
from typing import IO, Any

from django.conf import settings
from django.core.handlers.wsgi import LimitedStream
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

from api.errors import problem_response
from engine.bpmn.xml import CHUNK_BYTES

# The views that take a deployment's files, by URL name.
UPLOAD_VIEWS = frozenset({"api:deployments", "api:deployments-validate", "processes:save"})
# Inbound webhooks: posted by anyone who knows the URL, so capped lower than API bodies.
WEBHOOK_VIEW = "api:webhook-receive"
# Room for the multipart framing (boundaries, part headers) and the other fields of an upload.
UPLOAD_FRAMING_BYTES = 1024 * 1024
# What is read of a refused body before the 413 is sent, at most. A client reads the answer only
# once it has sent its body, and a server that closes a connection with unread data resets it,
# which can lose the answer: draining lets a client that sent a little too much read its 413.
# Past either bound the rest is left unread and the connection closes: a body announced as
# 10 GB, a chunked body that never ends or one that never comes would otherwise hold the worker
# for as long as the client likes.
DRAIN_BYTES = 1024 * 1024
DRAIN_SECONDS = 3.0


@dataclass(frozen=True)
class BodyLimit:
    bytes: int
    source: str  # the settings the cap comes from, for the 413's detail


def body_limit(request: HttpRequest) -> BodyLimit:
    """The cap on the body of `request`, decided by the view its URL resolves to."""
    try:
        view_name = resolve(request.path_info).view_name
    except Resolver404:
        view_name = ""
    if view_name in UPLOAD_VIEWS:
        return BodyLimit(
            settings.BATON_MAX_DEPLOYMENT_BYTES + UPLOAD_FRAMING_BYTES,
            "BATON_MAX_DEPLOYMENT_BYTES plus 1 MiB for the multipart framing",
        )
    if view_name == WEBHOOK_VIEW:
        return BodyLimit(settings.BATON_WEBHOOK_MAX_BYTES, "BATON_WEBHOOK_MAX_BYTES")
    return BodyLimit(settings.BATON_MAX_JSON_BYTES, "BATON_MAX_JSON_BYTES")


def _declared_length(request: HttpRequest) -> int | None:
    try:
        return int(request.META["CONTENT_LENGTH"])
    except (KeyError, TypeError, ValueError):
        return None


def _is_chunked(request: HttpRequest) -> bool:
    return "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()


def _client_socket(meta: Mapping[str, Any]) -> socket.socket | None:
    """The connection's socket, where the server hands it to the application (gunicorn)."""
    sock = meta.get("gunicorn.socket")
    return sock if isinstance(sock, socket.socket) else None


def _stop_reading(sock: socket.socket) -> None:
    """Ends the reads on `sock`, the one blocked in another thread included: they see the end of
    the body. The server closes the connection after the answer."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)


def _discard(meta: Mapping[str, Any], remaining: int | None) -> None:
    """Read and drop what is left of a refused body (`remaining` bytes of it, None: up to its
    end), a piece at a time, at most DRAIN_BYTES of it for at most DRAIN_SECONDS.

    The time bound needs the socket: a timeout on it would bound each read from the socket,
    not their sum, so a timer ends the reading instead. Without the socket (Django's development
    server) only the byte bound holds while the client sends nothing."""
    stream: IO[bytes] | None = meta.get("wsgi.input")
    if stream is None:
        return
    budget = DRAIN_BYTES if remaining is None else min(DRAIN_BYTES, remaining)
    deadline = time.monotonic() + DRAIN_SECONDS
    sock = _client_socket(meta)
    timer = None if sock is None else threading.Timer(DRAIN_SECONDS, _stop_reading, (sock,))
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        while budget > 0 and time.monotonic() < deadline:
            try:
                piece = stream.read(min(CHUNK_BYTES, budget))
            # The client went away, or the reading was stopped: gunicorn raises its own errors
            # for a body that ends early or a broken chunk, not all of them OSErrors.
            except Exception:  # noqa: BLE001 -- see above
                break
            if not piece:
                break
            budget -= len(piece)
    finally:
        if timer is not None:
            timer.cancel()
    if isinstance(stream, LimitedStream):
        # Django's development server reads whatever is left once the answer is sent
        # (ServerHandler.close), in one read of that size: leave it nothing to read. It closes
        # the connection after the answer, which has no Content-Length.
        stream.limit = 0


def _too_large(request: HttpRequest, limit: BodyLimit, read: int = 0) -> HttpResponse:
    length = _declared_length(request)
    _discard(request.META, None if length is None else length - read)
    return problem_response(
        413,
        "Request body too large",
        f"The request body is larger than {limit.bytes} bytes, the limit here ({limit.source}).",
    )


def _buffer_chunked(request: HttpRequest, limit: BodyLimit) -> HttpResponse | None:
    """Read a body of unknown length up to its cap, then hand it to Django as if it had come
    with a Content-Length (Django reads nothing of a body without one)."""
    if not request.META.get("wsgi.input_terminated"):
        # The server does not decode chunked bodies (Django's development server).
        return problem_response(
            411, "Length required", "Send the request body with a Content-Length header."
        )
    source: IO[bytes] = request.META["wsgi.input"]
    # Outlives this function: the request reads it.
    spool = SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE)  # noqa: SIM115
    read = 0
    while piece := source.read(CHUNK_BYTES):
        read += len(piece)
        if read > limit.bytes:
            spool.close()
            return _too_large(request, limit, read)
        spool.write(piece)
    spool.seek(0)
    request.META["CONTENT_LENGTH"] = str(read)
    request._stream = spool  # type: ignore[assignment]  # noqa: SLF001 -- what HttpRequest.read() reads; no public setter
    return None


class RequestBodyLimitMiddleware:
    """Before every other middleware that could read the body (CSRF reads forms)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = body_limit(request)
        length = _declared_length(request)
        if length is not None and length > limit.bytes:
            return _too_large(request, limit)
        if length is None and _is_chunked(request):
            refusal = _buffer_chunked(request, limit)
            if refusal is not None:
                return refusal
        return self.get_response(request)
