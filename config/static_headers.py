"""Headers of the static files WhiteNoise serves (WHITENOISE_ADD_HEADERS_FUNCTION).

WhiteNoise answers before django-csp's middleware sees the request, so a static file (an SVG
may hold a script) would go out with no Content-Security-Policy: it gets the pages' policy."""

import functools
from typing import Any


@functools.cache
def _policy() -> str:
    from csp.utils import build_policy  # imported once the settings are loaded

    return build_policy()


def add_static_headers(headers: Any, path: str, url: str) -> None:
    headers["Content-Security-Policy"] = _policy()
