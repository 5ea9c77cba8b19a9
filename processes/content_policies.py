"""The Content-Security-Policy exceptions for diagrams: the XML leaves Baton as a file to save,
never as a page of Baton's origin; thumbnails are images that can do nothing but draw; the
modeler page allows inline styles.

A diagram is untrusted input: an `html:script` inside `extensionElements` would run if a
browser rendered the XML inline. So the XML is an attachment, its type may not be sniffed,
and its own Content-Security-Policy (`DOWNLOAD_POLICY`, instead of the pages' policy) allows
nothing and sandboxes whatever a browser might still show.
"""

from collections.abc import Callable
from typing import Any

from csp.decorators import csp, csp_update
from django.http import HttpResponse
from django.utils.http import content_disposition_header

DOWNLOAD_POLICY = {"default-src": ["'none'"], "sandbox": True}
# A thumbnail is an SVG image of Baton's own drawing, with inline styles and nothing else.
THUMBNAIL_POLICY = {"default-src": ["'none'"], "style-src": ["'unsafe-inline'"]}

thumbnail_only: Callable[[Any], Any] = csp(THUMBNAIL_POLICY)
# The modeler's properties panel edits expressions in CodeMirror, which adds its own <style>
# elements (without a way to give them a nonce from outside): that page, and only that page,
# allows inline styles. Scripts stay as strict as everywhere.
inline_styles: Callable[[Any], Any] = csp_update({"style-src": ["'unsafe-inline'"]})


_under_download_policy: Callable[[Any], Any] = csp(DOWNLOAD_POLICY)


def diagram_download(xml: str, file_name: str) -> HttpResponse:
    """The response that serves a diagram's XML, under `DOWNLOAD_POLICY`."""
    response = HttpResponse(xml, content_type="application/xml; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(True, file_name)
    response["X-Content-Type-Options"] = "nosniff"
    # django-csp's decorator marks the response its function returns; the middleware reads it.
    policed: HttpResponse = _under_download_policy(lambda: response)()
    return policed
