"""Callbacks of long-running calls: the URL and the per-job token given to the called API.

A token is `<call>.<HMAC-SHA256 of "job id:call" keyed with SECRET_KEY>`, where the call is
`<operator retries before it>.<attempt>`: it opens only the callback of that job, and of
that call of it (a retried call has a token of its own, which an earlier call's late answer
does not have). Nothing is stored: the
token is computed again to check it, under SECRET_KEY or any of SECRET_KEY_FALLBACKS (so a
key rotation does not break the calls in flight).
"""

import re

from django.conf import settings
from django.urls import reverse
from django.utils.crypto import constant_time_compare, salted_hmac

SALT = "baton.job-callback"
URL_HEADER = "Baton-Callback-Url"
TOKEN_HEADER = "Baton-Callback-Token"  # noqa: S105 -- a header name
# Placeholders replaced in the strings of a call's body, query and headers.
URL_PLACEHOLDER = "{{callback_url}}"
TOKEN_PLACEHOLDER = "{{callback_token}}"  # noqa: S105 -- a placeholder


_CALL = re.compile(r"\d{1,9}\.\d{1,9}")


def call_number(retries: int, attempt: int) -> str:
    """Which call of a job: the operator's retries before it, and its attempt among them."""
    return f"{retries}.{attempt}"


def _signature(job_id: str, call: str, secret: str) -> str:
    return salted_hmac(SALT, f"{job_id}:{call}", secret=secret, algorithm="sha256").hexdigest()


def callback_token(job_id: str, call: str) -> str:
    return f"{call}.{_signature(str(job_id), call, settings.SECRET_KEY)}"


def callback_url(job_id: str) -> str:
    base = str(settings.BATON_BASE_URL).rstrip("/")
    return base + reverse("api:job-callback", kwargs={"pk": job_id})


def token_call(job_id: str, token: str) -> str | None:
    """The call (`call_number`) a token was given to, or None when it is not a token of
    this job."""
    call, _, signature = token.strip().rpartition(".")
    if not _CALL.fullmatch(call) or not signature:
        return None
    for secret in [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]:
        if constant_time_compare(signature, _signature(str(job_id), call, secret)):
            return call
    return None
