"""The limits of a connection, shared by every worker process through Redis: a rate limit,
a concurrency cap and a circuit breaker, each decided by one atomic Lua script per call
(one round trip before the call, one after).

- Rate limit: a sliding log of call starts (a sorted set); a call may start while fewer
  than `rate_limit` calls started in the last window, so no window of that length ever
  holds more (the window is padded by RATE_MARGIN_SECONDS). After a 429 the limit is halved
  for `SLOWED_SECONDS`, and no call starts before its `Retry-After` (1 s when it gives
  none) has passed.
- Concurrency cap: held slots (a sorted set of job id -> lease end). A slot is given back
  after the call; the slot of a worker that died expires with its lease.
- Circuit breaker: closed -> open after `breaker_failures` failures in a row, or when
  `breaker_error_rate` percent of the calls of a window failed; open -> half-open after the
  cool-down, when one call (the probe) may run; the probe's success closes the breaker, its
  failure opens it again. An operator may hold it open, close or reset it.

A call that may not start gets how long to wait. Redis time is the clock of every worker.
When Redis cannot be reached the call goes ahead (logged): limits protect an API, they must
not stop Baton.
"""

import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, cast

import redis
from django.conf import settings

from .connections import ConnectionConfig

logger = logging.getLogger(__name__)

SLOWED_SECONDS = 60  # how long a 429 halves the rate limit
# The rate window is this much longer than its period: a call reaches the API a moment after
# it was let through, and that moment varies; the API's own count must never see more.
RATE_MARGIN_SECONDS = 0.1
DEFAULT_RETRY_AFTER = 1.0  # the pause after a 429 that names no Retry-After
LEASE_MARGIN_SECONDS = 30  # a slot outlives the call's timeout by this much
MAX_WAIT_SECONDS = 30.0
WAITER_SECONDS = 10  # a waiter not seen again for this long no longer counts

# KEYS: rate log, slots, state hash, waiters. ARGV: job, rate limit (0: none), window,
# cap (0: none), lease seconds. Returns {verdict, seconds to wait, "probe" or ""}.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local job = ARGV[1]
local limit = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local cap = tonumber(ARGV[4])
local lease = tonumber(ARGV[5])
local st = redis.call('HMGET', KEYS[3], 'state', 'open_until', 'probe', 'probe_until',
                      'pause_until', 'slow_until', 'avg_hold')
local state = st[1] or 'closed'
local probe = false
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - tonumber(ARGV[6]))
local function wait(verdict, seconds)
  redis.call('ZADD', KEYS[4], now, job)
  redis.call('EXPIRE', KEYS[4], 3600)
  return {verdict, tostring(seconds), tostring(redis.call('ZCARD', KEYS[4]))}
end
if state == 'open' then
  local open_until = tonumber(st[2]) or 0
  if open_until < 0 then return wait('open', -1) end
  if now < open_until then return wait('open', open_until - now) end
  probe = true
elseif state == 'half_open' then
  local holder = st[3] or ''
  local hold_until = tonumber(st[4]) or 0
  if holder ~= '' and holder ~= job and now < hold_until then
    return wait('open', -2)
  end
  probe = true
end
local pause = tonumber(st[5]) or 0
if now < pause then return wait('paused', pause - now) end
if cap > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if not redis.call('ZSCORE', KEYS[2], job) and redis.call('ZCARD', KEYS[2]) >= cap then
    return wait('busy', tonumber(st[7]) or 0.1)
  end
end
if limit > 0 then
  if now < (tonumber(st[6]) or 0) then limit = math.max(1, math.floor(limit / 2)) end
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
  local count = redis.call('ZCARD', KEYS[1])
  if count >= limit then
    local oldest = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
    return wait('rate', tonumber(oldest[2]) + window - now)
  end
  redis.call('ZADD', KEYS[1], now, job .. '@' .. now)
  redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000) + 1000)
end
if cap > 0 then
  redis.call('ZADD', KEYS[2], now + lease, job)
  redis.call('PEXPIRE', KEYS[2], math.ceil(lease * 1000) + 1000)
end
redis.call('ZREM', KEYS[4], job)
if probe then
  redis.call('HSET', KEYS[3], 'state', 'half_open', 'probe', job, 'probe_until', now + lease)
  return {'go', '0', 'probe'}
end
return {'go', '0', ''}
"""

# KEYS: slots, state hash. ARGV: job, outcome (ok, fail, limited, none), retry after (0:
# none), failures to open (0: off), error rate percent (0: off), window, minimum calls,
# cool-down, seconds the call held its slot, slowed seconds. Returns the breaker's
# transition ("open", "closed" or "").
_RELEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local job = ARGV[1]
local outcome = ARGV[2]
local failures_to_open = tonumber(ARGV[4])
local rate_to_open = tonumber(ARGV[5])
local window = tonumber(ARGV[6])
local cooldown = tonumber(ARGV[8])
redis.call('ZREM', KEYS[1], job)
local st = redis.call('HMGET', KEYS[2], 'state', 'probe', 'failures', 'win_start',
                      'win_total', 'win_failed', 'pause_until', 'avg_hold')
local avg = tonumber(st[8])
local held = tonumber(ARGV[9])
if avg then avg = avg * 0.8 + held * 0.2 else avg = held end
redis.call('HSET', KEYS[2], 'avg_hold', avg)
if outcome == 'limited' then
  local after = tonumber(ARGV[3])
  if after <= 0 then after = 1 end
  local pause = math.max(tonumber(st[7]) or 0, now + after)
  redis.call('HSET', KEYS[2], 'pause_until', pause, 'slow_until', now + tonumber(ARGV[10]),
             'last_429', now)
end
local state = st[1] or 'closed'
if state == 'half_open' then
  if st[2] ~= job then return '' end
  if outcome == 'ok' then
    redis.call('HSET', KEYS[2], 'state', 'closed', 'probe', '', 'failures', 0,
               'win_start', now, 'win_total', 0, 'win_failed', 0)
    return 'closed'
  elseif outcome == 'fail' then
    redis.call('HSET', KEYS[2], 'state', 'open', 'probe', '', 'open_until', now + cooldown,
               'opened_at', now)
    return 'open'
  end
  redis.call('HSET', KEYS[2], 'probe', '')
  return ''
end
if state ~= 'closed' or (outcome ~= 'ok' and outcome ~= 'fail') then return '' end
if failures_to_open == 0 and rate_to_open == 0 then return '' end
local start = tonumber(st[4]) or 0
local total = tonumber(st[5]) or 0
local failed = tonumber(st[6]) or 0
local failures = tonumber(st[3]) or 0
if now - start > window then start = now; total = 0; failed = 0 end
total = total + 1
if outcome == 'fail' then
  failed = failed + 1
  failures = failures + 1
else
  failures = 0
end
redis.call('HSET', KEYS[2], 'failures', failures, 'win_start', start, 'win_total', total,
           'win_failed', failed)
if (failures_to_open > 0 and failures >= failures_to_open)
   or (rate_to_open > 0 and total >= tonumber(ARGV[7]) and failed * 100 >= rate_to_open * total)
then
  redis.call('HSET', KEYS[2], 'state', 'open', 'open_until', now + cooldown, 'opened_at', now,
             'failures', 0, 'win_start', now, 'win_total', 0, 'win_failed', 0)
  return 'open'
end
return ''
"""


class Verdict:
    GO = "go"
    OPEN = "open"  # the circuit breaker is open (or half-open with its probe running)
    PAUSED = "paused"  # a 429's Retry-After has not passed
    BUSY = "busy"  # every slot of the concurrency cap is held
    RATE = "rate"  # the rate limit is reached


WAIT_REASONS = {
    Verdict.OPEN: "circuit breaker open",
    Verdict.PAUSED: "paused after HTTP 429",
    Verdict.BUSY: "concurrency cap reached",
    Verdict.RATE: "rate limit reached",
}


@dataclass(frozen=True)
class Decision:
    verdict: str
    wait_seconds: float = 0.0
    probe: bool = False

    @property
    def allowed(self) -> bool:
        return self.verdict == Verdict.GO


_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


def redis_client() -> redis.Redis:
    """This process's client of the limits' Redis (`BATON_LIMITS_REDIS_URL`)."""
    url = str(settings.BATON_LIMITS_REDIS_URL)
    if url.startswith("redis+socket://"):
        url = "unix://" + url.removeprefix("redis+socket://")
    with _clients_lock:
        client = _clients.get(url)
        if client is None:
            client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
            _clients[url] = client
            if getattr(settings, "BATON_LIMITS_REDIS_URL_GUESSED", False):
                logger.warning(
                    "BATON_LIMITS_REDIS_URL is not set and the broker is not Redis: the limits "
                    "of connections use %s. Set BATON_LIMITS_REDIS_URL to the Redis every "
                    "worker shares.",
                    url,
                )
        return client


def key_prefix(name: str) -> str:
    database = settings.DATABASES["default"]["NAME"]
    return f"baton:{database}:connection:{name}:"


def _keys(name: str) -> dict[str, str]:
    prefix = key_prefix(name)
    return {part: prefix + part for part in ("rate", "slots", "state", "waiters")}


_warned_at = 0.0


def _unreachable(exc: Exception) -> None:
    global _warned_at
    if time.monotonic() - _warned_at > 60:
        _warned_at = time.monotonic()
        logger.warning("The limits' Redis cannot be reached (%s); calls go unlimited", exc)


def _spread(seconds: float, waiters: int, config: ConnectionConfig, verdict: str) -> float:
    """How long a refused call waits: until it may start, spread over the calls that wait
    with it so that they do not all come back at the same moment."""
    if verdict == Verdict.OPEN and seconds < 0:
        # Held open by an operator (-1), or the probe is running (-2): look again soon.
        # Closing it by hand wakes the waiting jobs (services.connections).
        held = min(config.breaker_cooldown_seconds, MAX_WAIT_SECONDS)
        return random.uniform(0.5, 1.5) if seconds == -2 else held
    if verdict == Verdict.BUSY:
        slots = max(config.max_concurrent or 1, 1)
        seconds = max(seconds, 0.05) * max(waiters, 1) / slots
    elif verdict == Verdict.RATE and config.rate_limit:
        backlog = waiters / config.rate_limit * config.rate_window_seconds
        seconds = seconds + random.uniform(0, backlog)
    return float(min(max(seconds, 0.01) * random.uniform(1.0, 1.2), MAX_WAIT_SECONDS))


def acquire(config: ConnectionConfig, job_id: str) -> Decision:
    """May the job's call start now? When it may, it holds a slot (if there is a cap) until
    `release`; when it is the breaker's probe, `probe` says so."""
    keys = _keys(config.name)
    lease = config.timeout_seconds + (config.connect_timeout_seconds or 0) + LEASE_MARGIN_SECONDS
    try:
        reply = cast(
            list[bytes],
            redis_client().eval(
                _ACQUIRE,
                4,
                keys["rate"],
                keys["slots"],
                keys["state"],
                keys["waiters"],
                job_id,
                config.rate_limit or 0,
                config.rate_window_seconds + RATE_MARGIN_SECONDS,
                config.max_concurrent or 0,
                lease,
                WAITER_SECONDS,
            ),
        )
    except redis.RedisError as exc:
        _unreachable(exc)
        return Decision(Verdict.GO)
    verdict = reply[0].decode()
    if verdict == Verdict.GO:
        return Decision(Verdict.GO, probe=reply[2] == b"probe")
    seconds = _spread(float(reply[1]), int(reply[2]), config, verdict)
    return Decision(verdict, wait_seconds=seconds)


class CallOutcome:
    OK = "ok"  # an answer from the API (a 4xx included: the API is up)
    FAIL = "fail"  # a timeout, a refused connection, a 5xx
    LIMITED = "limited"  # a 429
    NONE = "none"  # no call was made (a policy refusal, a missing secret)


def release(
    config: ConnectionConfig,
    job_id: str,
    outcome: str,
    *,
    held_seconds: float,
    retry_after: float | None = None,
) -> str:
    """Give back the job's slot and tell the breaker how the call went; returns the breaker's
    transition ("open", "closed" or "")."""
    keys = _keys(config.name)
    try:
        transition = redis_client().eval(
            _RELEASE,
            2,
            keys["slots"],
            keys["state"],
            job_id,
            outcome,
            retry_after or 0,
            config.breaker_failures or 0,
            config.breaker_error_rate or 0,
            config.breaker_window_seconds,
            config.breaker_min_calls,
            config.breaker_cooldown_seconds,
            held_seconds,
            SLOWED_SECONDS,
        )
    except redis.RedisError as exc:
        _unreachable(exc)
        return ""
    return transition.decode() if isinstance(transition, bytes) else str(transition or "")


# -- operators and the health view -------------------------------------------------------------


def hold_open(name: str) -> None:
    """Open the breaker until an operator closes or resets it."""
    redis_client().hset(
        _keys(name)["state"],
        mapping={"state": "open", "open_until": -1, "opened_at": time.time(), "probe": ""},
    )


def close(name: str) -> None:
    """Close the breaker and forget the failures counted so far."""
    redis_client().hset(
        _keys(name)["state"],
        mapping={
            "state": "closed",
            "probe": "",
            "failures": 0,
            "win_start": 0,
            "win_total": 0,
            "win_failed": 0,
        },
    )


def reset(name: str) -> None:
    """Forget everything: breaker, rate log, pause and slow-down after 429s (held slots stay:
    their calls are running)."""
    keys = _keys(name)
    redis_client().delete(keys["state"], keys["rate"], keys["waiters"])


def _number(values: dict[bytes, bytes], name: str) -> float:
    try:
        return float(values.get(name.encode(), b"0"))
    except ValueError:
        return 0.0


def health(config: ConnectionConfig) -> dict[str, Any]:
    """The breaker's state, the rate of the last window, the slots held, any pause."""
    keys = _keys(config.name)
    client = redis_client()
    seconds, micros = cast(tuple[int, int], client.time())
    now = seconds + micros / 1_000_000
    with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys["state"])
        pipe.zcount(keys["rate"], now - config.rate_window_seconds, "+inf")
        pipe.zcount(keys["slots"], now, "+inf")
        state, started, held = pipe.execute()
    values = cast(dict[bytes, bytes], state)
    breaker = values.get(b"state", b"closed").decode()
    open_until = _number(values, "open_until")
    pause_until = _number(values, "pause_until")
    slow_until = _number(values, "slow_until")
    limit = config.rate_limit
    if limit and now < slow_until:
        limit = max(1, limit // 2)
    return {
        "breaker": {
            "state": breaker,
            "held_open": breaker == "open" and open_until < 0,
            "reopens_probe_in_seconds": (
                round(open_until - now, 3) if breaker == "open" and open_until > now else None
            ),
            "consecutive_failures": int(_number(values, "failures")),
            "window_calls": int(_number(values, "win_total")),
            "window_failures": int(_number(values, "win_failed")),
        },
        "rate": {
            "limit": config.rate_limit,
            "effective_limit": limit,
            "window_seconds": config.rate_window_seconds,
            "calls_in_window": int(started),
            "slowed_after_429": now < slow_until,
            "paused_for_seconds": round(pause_until - now, 3) if pause_until > now else 0,
        },
        "concurrency": {"cap": config.max_concurrent, "in_use": int(held)},
        "average_call_seconds": round(_number(values, "avg_hold"), 4),
    }
