"""Request bodies are capped before anything reads them (DESIGN section 8).

A body whose Content-Length is over its cap is refused with a 413 problem at once; a body
without one (chunked) is counted while it is read and refused as soon as it passes the cap.
What is left of a refused body is read and dropped 64 KiB at a time, never kept.
The deployment endpoints (and the modeler's save) may carry a whole deployment; every other
request at most BATON_MAX_JSON_BYTES. Django's own checks (DATA_UPLOAD_MAX_MEMORY_SIZE and
friends) stay behind this as a second line: they do not count uploaded files, which is how a
300 MiB upload used to be spooled and read into memory before the deployment's size check.
"""
from collections.abc import Callable
from dataclasses import dataclass
from tempfile import SpooledTemporaryFile
from typing import IO

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

from api.errors import problem_response

# The views that take a deployment's files, by URL name.
UPLOAD_VIEWS = frozenset({"api:deployments", "api:deployments-validate", "processes:save"})
# Room for the multipart framing (boundaries, part headers) and the other fields of an upload.
UPLOAD_FRAMING_BYTES = 1024 * 1024
_CHUNK_BYTES = 64 * 1024


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
        return BodyLimit(settings.BATON_MAX_DEPLOYMENT_BYTES + UPLOAD_FRAMING_BYTES,
                         "BATON_MAX_DEPLOYMENT_BYTES plus 1 MiB for the multipart framing")
    return BodyLimit(settings.BATON_MAX_JSON_BYTES, "BATON_MAX_JSON_BYTES")


def _declared_length(request: HttpRequest) -> int | None:
    try:
        return int(request.META["CONTENT_LENGTH"])
    except (KeyError, TypeError, ValueError):
        return None


def _is_chunked(request: HttpRequest) -> bool:
    return "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()


def _discard(stream: IO[bytes] | None, remaining: int | None) -> None:
    """Read and drop what is left of a refused body, a piece at a time. A client that is still
    sending reads the answer only once it has sent everything (otherwise it meets a reset
    connection), and Django's development server would read the rest in one go."""
    while stream is not None and (remaining is None or remaining > 0):
        size = _CHUNK_BYTES if remaining is None else min(_CHUNK_BYTES, remaining)
        try:
            piece = stream.read(size)
        except OSError:  # the client went away
            return
        if not piece:
            return
        if remaining is not None:
            remaining -= len(piece)


def _too_large(request: HttpRequest, limit: BodyLimit, read: int = 0) -> HttpResponse:
    length = _declared_length(request)
    _discard(request.META.get("wsgi.input"), None if length is None else length - read)
    return problem_response(413, "Request body too large",
                            f"The request body is larger than {limit.bytes} bytes, the limit "
                            f"here ({limit.source}).")


def _buffer_chunked(request: HttpRequest, limit: BodyLimit) -> HttpResponse | None:
    """Read a body of unknown length up to its cap, then hand it to Django as if it had come
    with a Content-Length (Django reads nothing of a body without one)."""
    if not request.META.get("wsgi.input_terminated"):
        # The server does not decode chunked bodies (Django's development server).
        return problem_response(411, "Length required",
                                "Send the request body with a Content-Length header.")
    source: IO[bytes] = request.META["wsgi.input"]
    # Outlives this function: the request reads it.
    spool = SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE)  # noqa: SIM115
    read = 0
    while piece := source.read(_CHUNK_BYTES):
        read += len(piece)
        if read > limit.bytes:
            spool.close()
            return _too_large(request, limit, read)
        spool.write(piece)
    spool.seek(0)
    request.META["CONTENT_LENGTH"] = str(read)
    request._stream = spool  # type: ignore[assignment]  # what HttpRequest.read() reads
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
