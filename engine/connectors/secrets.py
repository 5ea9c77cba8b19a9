"""Secrets for connector parameters: where they come from, how a diagram names them, and how
their values are kept out of everything Baton stores or logs.

- The store: `settings.BATON_SECRETS` (a mapping) and the JSON file or directory named by the
  environment variable BATON_SECRETS (`settings.BATON_SECRETS_PATH`): a JSON object of
  name -> value, or one file per secret (file name = secret name) as Docker and Kubernetes
  mount them. Nothing else: the worker's environment at large is never read.
- References: `secret:NAME`, in literal diagram text only. The scheduler stores, next to a
  job's parameters, the places where such literal text stands (`LITERALS_KEY`); the worker
  resolves references at those places and nowhere else, so a `secret:NAME` that came from
  instance data or an expression is sent as the plain text it is.
- Redaction: `redact` replaces every resolved value, and its common encodings, with `***`.
  A process that resolved a secret also passes every log record through it. A secret is
  8 characters at least: a shorter one would mask ordinary text everywhere.
"""

import base64
import contextlib
import contextvars
import functools
import html
import json
import logging
import re
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from django.conf import settings

from engine.bpmn.connector_tasks import ParamPath
from engine.connectors import TASK_HEADERS_KEY

# A name ends in a letter, digit or underscore, so "see secret:X." names "X".
REFERENCE = re.compile(r"(?<![\w])secret:([A-Za-z_][A-Za-z0-9_]*(?:[.-][A-Za-z0-9_]+)*)")
# The key, next to a job's parameters, listing the paths of literal text with references.
LITERALS_KEY = "$literal_secrets"
MASK = "***"
# Shorter values would mask every occurrence of some ordinary text in every log line.
MIN_SECRET_LENGTH = 8


class MissingSecret(LookupError):
    """A reference to a secret the store does not declare, or declares with a value too short
    to be masked; the job becomes an incident."""


# -- the store ---------------------------------------------------------------------------------


def _from_path(name: str) -> str | None:
    configured = str(getattr(settings, "BATON_SECRETS_PATH", "") or "")
    if not configured:
        return None
    path = Path(configured)
    try:
        if path.is_dir():
            # REFERENCE admits no "/" and no leading dot: a name cannot leave the directory.
            file = path / name
            return file.read_text(encoding="utf-8").rstrip("\r\n") if file.is_file() else None
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MissingSecret(
            f"The secret store {configured} cannot be read ({type(exc).__name__})."
        ) from None
    value = values.get(name) if isinstance(values, dict) else None
    return value if isinstance(value, str) else None


def lookup(name: str) -> str:
    """The value of a declared secret; MissingSecret when the store does not declare it."""
    configured: dict[str, str] = getattr(settings, "BATON_SECRETS", {}) or {}
    value = configured.get(name) or _from_path(name)
    if not value:  # an empty value could not be redacted
        raise MissingSecret(
            f"The secret {name!r} is not declared. Declare it in BATON_SECRETS (a mapping in "
            "the settings, or the JSON file or directory named by the environment variable "
            "BATON_SECRETS)."
        )
    if len(value) < MIN_SECRET_LENGTH:
        raise MissingSecret(
            f"The secret {name!r} is too short to be kept out of logs ({MIN_SECRET_LENGTH} "
            "characters at least). Give it a longer value in the secret store."
        )
    return value


# -- references --------------------------------------------------------------------------------


def references(text: Any) -> list[str]:
    """The secret names that `text` refers to (none unless it is a string)."""
    return REFERENCE.findall(text) if isinstance(text, str) else []


def mark_literals(parameters: dict[str, Any], paths: list[ParamPath]) -> dict[str, Any]:
    """The parameters to store: with the paths of literal text that names secrets, if any."""
    return {**parameters, LITERALS_KEY: paths} if paths else dict(parameters)


def _resolve_text(text: str, used: list[str]) -> str:
    def value_of(match: re.Match[str]) -> str:
        value = lookup(match.group(1))
        used.append(value)
        _remember(value)
        return value

    return REFERENCE.sub(value_of, text)


def _resolve_at(container: Any, path: ParamPath, used: list[str]) -> None:
    for step in path[:-1]:
        container = container[step]
    if isinstance(container[path[-1]], str):
        container[path[-1]] = _resolve_text(container[path[-1]], used)


def resolve_parameters(stored: dict[str, Any], used: list[str]) -> dict[str, Any]:
    """The parameters a connector gets: the stored ones with references in literal text
    replaced by their values, which are added to `used` (and redacted in this process's
    logs from now on). Text anywhere else is left as it is."""
    params = json.loads(
        json.dumps({k: v for k, v in stored.items() if k not in (LITERALS_KEY, TASK_HEADERS_KEY)})
    )
    for path in stored.get(LITERALS_KEY) or []:
        try:
            _resolve_at(params, list(path), used)
        except (KeyError, IndexError, TypeError):
            continue  # the scheduler wrote the paths from these very parameters
    return params


# -- redaction (the one rule) ------------------------------------------------------------------
# A secret is masked in each of these forms, wherever it stands in a text:
# - as text: plain; Python- (repr) and JSON-escaped (ASCII or not, `/` escaped as `\/` or not);
#   URL-encoded (`quote`, with and without "/" safe, `quote_plus`); HTML-escaped (`html.escape`).
#   The hex digits of escapes (`%2F`, `\u00e9`, `\xe9`, `&#x27;`) match in either case;
# - hex of its UTF-8 bytes, in either case;
# - base64 and base64url, padded or not, whole or inside a longer encoded text (as in a Basic
#   auth header), with whitespace between any two characters (76-column MIME and 64-column
#   PEM lines).

# Escapes whose hex digits a decoder reads in either case.
_ESCAPE = re.compile(
    r"%[0-9A-Fa-f]{2}|\\(?:x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8})"
    r"|&#[xX][0-9A-Fa-f]+;"
)


def _text_forms(secret: str) -> set[str]:
    json_forms = {json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    return {
        secret,
        repr(secret)[1:-1],
        *json_forms,
        *(f.replace("/", "\\/") for f in json_forms),
        quote(secret),
        quote(secret, safe=""),
        quote_plus(secret),
        html.escape(secret),
        html.escape(secret, quote=False),
    }


def _text_pattern(form: str) -> str:
    """`form` as a regular expression in which the hex digits of escapes match in any case."""
    parts, last = [], 0
    for escape in _ESCAPE.finditer(form):
        parts += [re.escape(form[last : escape.start()]), f"(?i:{re.escape(escape.group())})"]
        last = escape.end()
    return "".join([*parts, re.escape(form[last:])])


def _base64_forms(raw: bytes) -> set[str]:
    """The base64 texts of `raw`, and for each of the three alignments it can have inside a
    longer encoded text (e.g. `user:secret` in a Basic auth header) the part of its base64
    text that does not depend on its neighbours."""
    forms = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        text = encode(raw).decode()
        forms |= {text, text.rstrip("=")}
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode()
        start, end = -(-8 * offset // 6), 8 * (offset + len(raw)) // 6
        core = encoded[start:end]
        if len(core) >= 6:  # shorter pieces would mask ordinary text
            forms |= {core, core.replace("+", "-").replace("/", "_")}
    return forms


def _forms(secret: str) -> dict[str, int]:
    """Every form of `secret` as a regular expression, with the length of its text."""
    raw = secret.encode()
    forms = {_text_pattern(form): len(form) for form in _text_forms(secret) if form}
    forms[f"(?i:{raw.hex()})"] = 2 * len(raw)
    for text in _base64_forms(raw):  # line breaks may fall between any two characters
        forms[r"\s*".join(re.escape(char) for char in text)] = len(text)
    return forms


@functools.lru_cache(maxsize=256)
def _pattern(secrets: frozenset[str]) -> re.Pattern[str]:
    forms: dict[str, int] = {}
    for secret in secrets:
        forms.update(_forms(secret))
    # Longest first, so that a whole encoding is masked rather than a piece of it.
    return re.compile("|".join(sorted(forms, key=lambda form: (-forms[form], form))))


def redact(value: Any, secrets: Iterable[str]) -> Any:
    """`value` (text, or JSON-like data, keys included) with every secret in `secrets`, plain
    or in one of the forms above (base64, URL, hex, repr, JSON, HTML), replaced by `***`."""
    wanted = frozenset(s for s in secrets if s)
    if not wanted:
        return value
    return _redact_with(_pattern(wanted), value)


def _redact_with(pattern: re.Pattern[str], value: Any) -> Any:
    if isinstance(value, str):
        return pattern.sub(MASK, value)
    if isinstance(value, dict):
        return {_redact_with(pattern, k): _redact_with(pattern, v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_with(pattern, v) for v in value]
    return value


# -- logs: every record of a process that resolved secrets is redacted -------------------------

_resolved: set[str] = set()
_resolved_lock = threading.Lock()


def _remember(value: str) -> None:
    with _resolved_lock:
        if not _resolved:
            logging.setLogRecordFactory(_redacting_factory(logging.getLogRecordFactory()))
        _resolved.add(value)


# The values to mask in what the current connector call returns or raises (see `collecting`).
_call_secrets: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "baton_call_secrets", default=None
)


@contextlib.contextmanager
def collecting(used: list[str]) -> Iterator[None]:
    """Within: every credential a connector obtains itself (`remember_secret_value`) is also
    added to `used`, the values the caller masks in what the call returns or raises."""
    token = _call_secrets.set(used)
    try:
        yield
    finally:
        _call_secrets.reset(token)


def remember_secret_value(value: str) -> None:
    """Mask `value` in every log record of this process from now on, and in what the current
    call returns or raises (`collecting`): a credential a connector obtained itself (an
    OAuth2 access token), not one from the store."""
    if len(value) >= MIN_SECRET_LENGTH:
        _remember(value)
        used = _call_secrets.get()
        if used is not None and value not in used:
            used.append(value)


def _redacting_factory(
    previous: Callable[..., logging.LogRecord],
) -> Callable[..., logging.LogRecord]:
    # A record factory, not a handler filter: it sees every record of every logger, whatever
    # handlers Celery or a deployment installs, before any of them formats it.
    def create(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        with _resolved_lock:
            secrets = frozenset(_resolved)
        redact_record(record, secrets)
        return record

    return create


def redact_record(record: logging.LogRecord, secrets: frozenset[str]) -> None:
    """Mask secrets in a log record's message, traceback and stack, in place."""
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 -- a bad format string
        return  # a bad format string; logging reports it when the record is formatted
    clean = redact(message, secrets)
    if clean != message:
        record.msg, record.args = clean, None
    if record.exc_info and record.exc_info[1] is not None:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        clean = redact(text, secrets)
        if clean != text:
            # Formatters print exc_text; the exception itself, holding the value, is dropped.
            record.exc_info, record.exc_text = None, clean
    if record.stack_info:
        record.stack_info = redact(record.stack_info, secrets)
