"""The `http` connector, built on httpx.

Parameters: `url` (required), `method` (GET), `query`, `headers`, `json` or `form` body,
`basic_auth` (`{"username", "password"}`, which may name secrets),
`timeout` in seconds (10), `connect_timeout`, `success_statuses` (a list; default 200-299),
`response_headers` (header names to keep in the result; default content-type). The result is
`{"status": int, "headers": {...}, "body": parsed JSON or text}`.
Timeouts, connection errors, 5xx and 429 are transient (retried); any other status outside
`success_statuses` is a BPMN error with code `HTTP_<status>`. A body larger than
BATON_HTTP_MAX_RESPONSE_BYTES (decoded) is the BPMN error `HTTP_RESPONSE_TOO_LARGE`.

Long-running calls (`async_callback: true`): the request carries the headers
`Baton-Callback-Url` and `Baton-Callback-Token` (and `{{callback_url}}`, `{{callback_token}}`
in the strings of `json`, `form`, `query` and `headers` are replaced by them). A 202 answer
then parks the job until the called API posts the outcome to the callback URL, for at most
`callback_timeout` seconds (default BATON_CALLBACK_TIMEOUT_SECONDS); see
engine.services.job_callbacks. Without `async_callback` a 202 is a success like any 2xx.

Every call passes the outbound policy (`outbound.py`) before anything is sent, and every
connection is opened only to an address the policy checked; a refused call is
`HTTP_REFUSED` and is not retried.
A task may name a connection instead (`connection`, with a `path` under its base URL): the
worker expands it into these parameters (connections.py); an OAuth2 connection's client
credentials (a parameter only the connection sets, never the diagram) get a shared access
token, fetched again once when the API answers 401.
"""

import os
import re
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
from django.conf import settings

from . import (
    AwaitCallback,
    BusinessError,
    ConnectorCall,
    RateLimited,
    TransientError,
    callbacks,
    connector,
)
from .connections import OAUTH2_PARAM
from .oauth2 import access_token
from .outbound import check_url
from .outbound import client as policy_client

DEFAULT_TIMEOUT_SECONDS = 10.0
MAX_BODY_CHARS = 1_000_000


def _body(response: httpx.Response) -> Any:
    if "json" in response.headers.get("content-type", ""):
        try:
            return response.json()
        except ValueError:
            pass
    return response.text[:MAX_BODY_CHARS]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


# Query parameters whose values are credentials by their name; masked wherever a URL is shown.
_CREDENTIAL_NAME = re.compile(
    r"token|key|secret|passw|pwd|auth|sig|credential|session|code", re.IGNORECASE
)


# A path segment or query value that looks like a token (a webhook's key, a bot token, an
# access token in the path): 16 or more characters of letters, digits, _ and -, or any with ':'.
_TOKEN_LIKE = re.compile(r"^[A-Za-z0-9_-]{16,}$")
MASK = "***"


def _masked(value: str) -> str:
    return MASK if _TOKEN_LIKE.match(value) or ":" in value else value


def shown_url(url: str) -> str:
    """The URL of a call as an incident may show it: scheme, host and path, with any userinfo
    (user and password) masked entirely, and token-like path segments masked (see
    `_TOKEN_LIKE`); in the query, the values of parameters named like credentials (token,
    api_key, signature, ...) and token-like values masked. Values from the secret store are
    masked wherever they stand by the worker (secrets.redact)."""
    try:
        parts = urlsplit(url)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        host = parts.netloc.rpartition("@")[2]
        netloc = f"{MASK}@{host}" if "@" in parts.netloc else host
        path = "/".join(_masked(segment) for segment in parts.path.split("/"))
        query = urlencode(
            [
                (name, MASK if _CREDENTIAL_NAME.search(name) else _masked(value))
                for name, value in pairs
            ],
            safe="*",
        )
        return urlunsplit((parts.scheme, netloc, path, query, ""))
    except ValueError:
        return "(an invalid URL)"


def _called_url(options: dict[str, Any]) -> str:
    """The URL called, with the `query` parameter's pairs added as the client adds them."""
    try:
        called = httpx.URL(options["url"])
        url = str(called.copy_merge_params(options["params"]) if options["params"] else called)
    except (httpx.InvalidURL, TypeError, ValueError):
        url = str(options["url"])
    return f"{options['method']} {shown_url(url)}"


def _request_options(params: dict[str, Any], call: ConnectorCall) -> dict[str, Any]:
    url = params.get("url")
    if not isinstance(url, str) or not url:
        raise BusinessError("HTTP_BAD_PARAMETERS", "The http connector needs a `url`.")
    headers = {str(k): str(v) for k, v in (params.get("headers") or {}).items()}
    headers.setdefault("Idempotency-Key", call.idempotency_key)
    options: dict[str, Any] = {
        "method": str(params.get("method") or "GET").upper(),
        "url": url,
        "params": params.get("query") or None,
        "headers": headers,
        "timeout": float(params.get("timeout") or DEFAULT_TIMEOUT_SECONDS),
    }
    auth = params.get("basic_auth")
    if isinstance(auth, dict) and auth.get("username"):
        options["auth"] = (str(auth["username"]), str(auth.get("password") or ""))
    if params.get("connect_timeout"):
        options["timeout"] = httpx.Timeout(
            options["timeout"], connect=float(params["connect_timeout"])
        )
    if params.get("json") is not None:
        options["json"] = params["json"]
    elif params.get("form") is not None:
        options["data"] = params["form"]
    if params.get("async_callback") is True:
        _add_callback(options, call)
    return options


def _replaced(value: Any, placeholders: dict[str, str]) -> Any:
    if isinstance(value, str):
        for placeholder, text in placeholders.items():
            value = value.replace(placeholder, text)
        return value
    if isinstance(value, dict):
        return {k: _replaced(v, placeholders) for k, v in value.items()}
    if isinstance(value, list):
        return [_replaced(v, placeholders) for v in value]
    return value


def _add_callback(options: dict[str, Any], call: ConnectorCall) -> None:
    """Tell the called API where and with which token to post its answer."""
    url = callbacks.callback_url(call.job_id)
    token = callbacks.callback_token(call.job_id, callbacks.call_number(call.retries, call.attempt))
    placeholders = {callbacks.URL_PLACEHOLDER: url, callbacks.TOKEN_PLACEHOLDER: token}
    for name in ("json", "data", "params", "headers"):
        if options.get(name) is not None:
            options[name] = _replaced(options[name], placeholders)
    options["headers"].setdefault(callbacks.URL_HEADER, url)
    options["headers"].setdefault(callbacks.TOKEN_HEADER, token)


def _callback_timeout(params: dict[str, Any]) -> float:
    value = params.get("callback_timeout")
    limit = settings.BATON_CALLBACK_MAX_TIMEOUT_SECONDS
    try:
        seconds = float(settings.BATON_CALLBACK_TIMEOUT_SECONDS if value is None else value)
    except (TypeError, ValueError):
        seconds = -1.0
    if not 0 < seconds <= limit:
        raise BusinessError(
            "HTTP_BAD_PARAMETERS", f"callback_timeout must be 1 to {limit:g} seconds."
        )
    return seconds


_client: httpx.Client | None = None
_client_pid = 0
_client_lock = threading.Lock()


def _shared_client() -> httpx.Client:
    """One client per process: building one loads the CA bundle, which costs more than a call.
    Worker processes are forked, so a client is never carried across a fork."""
    global _client, _client_pid
    with _client_lock:
        if _client is None or _client_pid != os.getpid():
            _client = policy_client(follow_redirects=False)
            _client_pid = os.getpid()
        return _client


def _send(options: dict[str, Any]) -> httpx.Response:
    try:
        return _capped(_shared_client(), options)
    except httpx.TimeoutException:
        timeout = options["timeout"]
        seconds = timeout.read if isinstance(timeout, httpx.Timeout) else timeout
        raise TransientError(f"Timed out after {seconds:g} s: {_called_url(options)}") from None
    except httpx.TransportError as exc:
        raise TransientError(
            f"Connection failed: {type(exc).__name__} ({_called_url(options)})"
        ) from None


def _capped(client: httpx.Client, options: dict[str, Any]) -> httpx.Response:
    """The response, its body read as it streams in and refused past
    BATON_HTTP_MAX_RESPONSE_BYTES (decoded: a small gzip bomb counts at its full size)."""
    limit = settings.BATON_HTTP_MAX_RESPONSE_BYTES
    request = client.build_request(**{k: v for k, v in options.items() if k != "auth"})
    auth = options.get("auth") or httpx.USE_CLIENT_DEFAULT
    streamed = client.send(request, auth=auth, stream=True)
    chunks, size = [], 0
    try:
        for chunk in streamed.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise BusinessError(
                    "HTTP_RESPONSE_TOO_LARGE",
                    f"The answer of {_called_url(options)} (HTTP {streamed.status_code}) is "
                    f"larger than {limit} bytes (BATON_HTTP_MAX_RESPONSE_BYTES).",
                )
            chunks.append(chunk)
    finally:
        streamed.close()
    # The body is decoded already: the headers that described its encoding no longer apply.
    headers = [
        (name, value)
        for name, value in streamed.headers.multi_items()
        if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    ]
    return httpx.Response(
        streamed.status_code, headers=headers, content=b"".join(chunks), request=request
    )


@connector(
    "http",
    description=(
        "Calls an HTTP API: url, method (GET), headers, query, json or data, timeout; the "
        "result is {status, headers, body}. 4xx is a BPMN error HTTP_<status>, 5xx is retried."
    ),
)
def http_request(params: dict[str, Any], call: ConnectorCall) -> dict[str, Any]:
    options = _request_options(params, call)
    # Checked before the call: an API that accepted the work is not then told nothing.
    callback_seconds = _callback_timeout(params) if params.get("async_callback") is True else 0
    check_url(options["url"])  # before connecting; the client checks each connection again
    oauth = params.get(OAUTH2_PARAM)
    token = access_token(oauth) if isinstance(oauth, dict) else ""
    if token:
        options["headers"]["Authorization"] = f"Bearer {token}"
    response = _send(options)
    if response.status_code == 401 and isinstance(oauth, dict) and token:
        # The token was revoked or expired early: fetch a new one, once.
        options["headers"]["Authorization"] = f"Bearer {access_token(oauth, refused=token)}"
        response = _send(options)
    status = response.status_code
    allowed = params.get("success_statuses")
    succeeded = status in allowed if allowed else 200 <= status < 300
    body = _body(response)
    if succeeded:
        keep = [h.lower() for h in params.get("response_headers") or ["content-type"]]
        headers = {k: v for k, v in response.headers.items() if k.lower() in keep}
        answer = {"status": status, "headers": headers, "body": body}
        if status == 202 and callback_seconds:
            # Kept on the job: an API that echoes the token does not get it stored.
            token = callbacks.callback_token(
                call.job_id, callbacks.call_number(call.retries, call.attempt)
            )
            raise AwaitCallback(callback_seconds, accepted=_replaced(answer, {token: MASK}))
        return answer
    if status == 429:
        raise RateLimited(f"HTTP {status}", retry_after=_retry_after(response))
    if status >= 500:
        raise TransientError(f"HTTP {status}", retry_after=_retry_after(response))
    message = f"HTTP {status} from {_called_url(options)}"
    raise BusinessError(f"HTTP_{status}", message, {"status": status, "body": body})


def _spiffarena_request(method: str) -> Callable[[dict[str, Any], ConnectorCall], Any]:
    """SpiffArena's `http/<Method>Request` commands, translated to the `http` connector."""

    def request(params: dict[str, Any], call: ConnectorCall) -> dict[str, Any]:
        translated: dict[str, Any] = {
            "method": method,
            "url": params.get("url"),
            "headers": params.get("headers") or {},
            "query": params.get("params") or None,
            "json": params.get("data"),
        }
        if params.get("basic_auth_username"):
            translated["basic_auth"] = {
                "username": params["basic_auth_username"],
                "password": params.get("basic_auth_password") or "",
            }
        return http_request(translated, call)

    return request


for _method in ("Get", "Post", "Put", "Patch", "Delete", "Head"):
    # SpiffArena's V2 names do the same; they keep working in old diagrams, unoffered.
    for _suffix in ("", "V2"):
        connector(
            f"http/{_method}Request{_suffix}",
            description=(
                f"SpiffArena's {_method.upper()} request: url, headers, params (the query), data "
                "(the JSON body), basic_auth_username and basic_auth_password."
            ),
            listed=not _suffix,
        )(_spiffarena_request(_method.upper()))
