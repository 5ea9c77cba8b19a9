"""OAuth2 client credentials for connections: the access token is fetched once and shared by
every worker through the limits' Redis, until it expires or the API answers 401.

One worker fetches (a short Redis lock); the others wait for its token. The token endpoint
passes the outbound policy like every call. The client secret comes from the secret store
(resolved and masked by the worker); the access token is masked in this process's logs.
"""

import hashlib
import hmac
import secrets
import time
from typing import Any

import httpx
from django.conf import settings

from . import BusinessError, TransientError
from .limits import key_prefix, redis_client
from .outbound import check_url
from .outbound import client as policy_client
from .secrets import remember_secret_value

# A token is used until this long before it expires; one without expires_in for this long.
EXPIRY_MARGIN_SECONDS = 30
DEFAULT_LIFETIME_SECONDS = 300
FETCH_LOCK_SECONDS = 15
TOKEN_TIMEOUT_SECONDS = 10.0

# Deletes the token only if it is still the one the API refused (another worker may have
# stored a fresh one already).
_DELETE_IF_SAME = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _key(oauth: dict[str, Any]) -> str:
    # The client secret is part of the key (as a keyed hash, never in clear): a token is only
    # ever shared with a caller who holds the very credentials it was fetched with.
    secret_mac = hmac.new(
        str(settings.SECRET_KEY).encode(),
        str(oauth.get("client_secret") or "").encode(),
        hashlib.sha256,
    ).hexdigest()
    identity = (
        f"{oauth.get('token_url')}|{oauth.get('client_id')}|{oauth.get('scope')}|{secret_mac}"
    )
    digest = hashlib.sha256(identity.encode()).hexdigest()[:24]
    return f"{key_prefix(str(oauth.get('connection') or ''))}oauth2:{digest}"


def _fetch(oauth: dict[str, Any]) -> tuple[str, float]:
    token_url = str(oauth.get("token_url") or "")
    if not token_url:
        raise BusinessError("OAUTH2_FAILED", "The connection has no token URL.")
    check_url(token_url)
    data = {"grant_type": "client_credentials"}
    if oauth.get("scope"):
        data["scope"] = str(oauth["scope"])
    try:
        with policy_client(follow_redirects=False) as client:
            response = client.post(
                token_url,
                data=data,
                auth=(str(oauth.get("client_id") or ""), str(oauth.get("client_secret") or "")),
                timeout=TOKEN_TIMEOUT_SECONDS,
            )
    except httpx.TransportError as exc:
        raise TransientError(f"The token endpoint failed: {type(exc).__name__}") from None
    if response.status_code >= 500 or response.status_code == 429:
        raise TransientError(f"The token endpoint answered HTTP {response.status_code}")
    try:
        body = response.json()
        token = str(body["access_token"])
    except (ValueError, KeyError, TypeError):
        token = ""
    if response.status_code != 200 or not token:
        raise BusinessError(
            "OAUTH2_FAILED",
            f"The token endpoint refused the client credentials (HTTP {response.status_code}).",
        )
    try:
        lifetime = float(body.get("expires_in") or DEFAULT_LIFETIME_SECONDS)
    except (TypeError, ValueError):
        lifetime = DEFAULT_LIFETIME_SECONDS
    return token, max(lifetime - EXPIRY_MARGIN_SECONDS, 1.0)


def _cached(redis: Any, key: str) -> str:
    """The shared token, or "" (known to this process's log masking once read)."""
    cached = redis.get(key)
    if not cached:
        return ""
    token = cached.decode() if isinstance(cached, bytes) else str(cached)
    remember_secret_value(token)
    return token


def access_token(oauth: dict[str, Any], *, refused: str = "") -> str:
    """A valid access token for the client credentials in `oauth`; `refused` is a token the
    API has just answered 401 to (it is dropped and a new one fetched)."""
    redis = redis_client()
    key = _key(oauth)
    if refused:
        redis.eval(_DELETE_IF_SAME, 1, key, refused)
    deadline = time.monotonic() + FETCH_LOCK_SECONDS
    while True:
        cached = _cached(redis, key)
        if cached:
            return cached
        owner = secrets.token_hex(8)
        if redis.set(key + ":fetching", owner, nx=True, ex=FETCH_LOCK_SECONDS):
            try:
                # Another worker may have stored its token and let go of the lock between
                # our look and our lock: that token is used, not fetched again.
                token = _cached(redis, key)
                if token:
                    return token
                token, lifetime = _fetch(oauth)
                redis.set(key, token, ex=max(int(lifetime), 1))
            finally:
                # Only this worker's lock: a fetch slower than the lock's expiry must not
                # free the lock another worker took since.
                redis.eval(_DELETE_IF_SAME, 1, key + ":fetching", owner)
            remember_secret_value(token)
            return token
        if time.monotonic() > deadline:
            raise TransientError("Waited too long for another worker's OAuth2 token.")
        time.sleep(0.05)  # another worker is fetching it: its token is here in a moment
