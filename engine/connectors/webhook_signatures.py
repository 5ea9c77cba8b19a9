"""HMAC-SHA256 signatures of webhook bodies, the two common styles, both ways.

- GitHub style: header `X-Hub-Signature-256: sha256=<hex HMAC(secret, body)>`. It carries no
  time: a replay of a captured delivery is stopped by its delivery id (or body) being kept.
- Timestamped (Stripe-like): header `t=<unix seconds>,v1=<hex HMAC(secret, "<t>.<body>")>`,
  several `v1=` allowed (a sender rotating its secret). The time must lie within the
  tolerance of now, so a captured delivery cannot be replayed later.

Comparison is constant-time (`hmac.compare_digest`).
"""

import hashlib
import hmac
import time

GITHUB_HEADER = "X-Hub-Signature-256"
TIMESTAMPED_HEADER = "Webhook-Signature"
# Longest signature header read: several v1 entries fit, a flood does not.
MAX_HEADER_LENGTH = 2048


class BadSignature(Exception):
    """The signature is missing, malformed, stale or does not match."""


def _digest(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def github_signature(secret: str, body: bytes) -> str:
    return "sha256=" + _digest(secret, body)


def timestamped_signature(secret: str, body: bytes, timestamp: int | None = None) -> str:
    moment = int(time.time()) if timestamp is None else timestamp
    return f"t={moment},v1={_digest(secret, str(moment).encode() + b'.' + body)}"


def verify_github(secret: str, body: bytes, header: str) -> None:
    if not header or len(header) > MAX_HEADER_LENGTH:
        raise BadSignature("No signature header.")
    scheme, _, given = header.strip().partition("=")
    if scheme != "sha256" or not given:
        raise BadSignature("The signature is not of the form sha256=<hex>.")
    if not hmac.compare_digest(given.lower().encode(), _digest(secret, body).encode()):
        raise BadSignature("The signature does not match the body.")


def verify_timestamped(
    secret: str, body: bytes, header: str, tolerance_seconds: int, now: float | None = None
) -> int:
    """Check a `t=...,v1=...` header; returns its timestamp."""
    if not header or len(header) > MAX_HEADER_LENGTH:
        raise BadSignature("No signature header.")
    timestamp, candidates = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value.lower())
    if timestamp is None or not candidates:
        raise BadSignature("The signature is not of the form t=<unix time>,v1=<hex>.")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        raise BadSignature("The signature's timestamp is outside the tolerance.")
    expected = _digest(secret, str(timestamp).encode() + b"." + body).encode()
    # Every candidate is compared (no early exit on the first match).
    matches = [hmac.compare_digest(candidate.encode(), expected) for candidate in candidates]
    if not any(matches):
        raise BadSignature("The signature does not match the body.")
    return timestamp
