"""Secrets named in parameters as `secret:NAME`, resolved on the worker just before a call.

Values come from `settings.BATON_SECRETS` or the environment variable `NAME`; they are
never written to the job row, the instance state, logs or audit events.
"""
import os
from typing import Any

from django.conf import settings

PREFIX = "secret:"


class MissingSecret(LookupError):
    pass


def _lookup(name: str) -> str:
    configured: dict[str, str] = getattr(settings, "BATON_SECRETS", {}) or {}
    value = configured.get(name) or os.environ.get(name)
    if not value:
        raise MissingSecret(f"The secret {name!r} is not configured (settings or environment).")
    return value


def _resolve_string(text: str, used: list[str]) -> str:
    if text.startswith(PREFIX):
        value = _lookup(text[len(PREFIX):].strip())
        used.append(value)
        return value
    # A secret may also stand inside a string, e.g. "Bearer secret:CRM_TOKEN".
    marker = f" {PREFIX}"
    if marker in text:
        head, _, name = text.partition(marker)
        if name and " " not in name.strip():
            value = _lookup(name.strip())
            used.append(value)
            return f"{head} {value}"
    return text


def resolve_secrets(value: Any, used: list[str]) -> Any:
    """A copy of `value` with `secret:NAME` strings replaced; resolved values go into `used`."""
    if isinstance(value, str):
        return _resolve_string(value, used)
    if isinstance(value, dict):
        return {k: resolve_secrets(v, used) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_secrets(v, used) for v in value]
    return value


def redact(value: Any, secrets: list[str]) -> Any:
    """`value` with every occurrence of a resolved secret replaced by `***`."""
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, "***")
        return value
    if isinstance(value, dict):
        return {k: redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, secrets) for v in value]
    return value
