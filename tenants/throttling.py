"""Token-bucket rate limiting in Redis, per API key and per account.

One Lua script checks and takes a token from both buckets atomically, so many web
processes share the same limits. Limits come from the account's plan.

When Redis does not answer, the API keeps serving: the limiter fails open to token
buckets kept in this process (same limits, per process instead of shared), says so in
the log (rate-limited) and in /health, and tries Redis again after a short pause, so
it is back on the shared buckets by itself once Redis is.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import TypedDict

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from nixflex import outages
from tenants.authentication import ApiPrincipal

logger = logging.getLogger(__name__)

# KEYS: bucket keys. ARGV: now (s), then per key: rate (tokens/s), burst.
# Returns 0 when allowed, else the seconds (float, as string) until a token is free.
_TAKE_TOKENS = """
local now = tonumber(ARGV[1])
local wait = 0
local states = {}
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(state[1]) or burst
  local ts = tonumber(state[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
  if tokens < 1 then
    wait = math.max(wait, (1 - tokens) / rate)
  end
  states[i] = tokens
end
if wait > 0 then
  return tostring(wait)
end
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  redis.call('HSET', key, 'tokens', states[i] - 1, 'ts', now)
  redis.call('EXPIRE', key, math.ceil(burst / rate) + 1)
end
return '0'
"""

KEY_PREFIX = "ratelimit:"
Bucket = tuple[str, float, float]  # (key, rate in tokens/s, burst)


@lru_cache(maxsize=4)
def _script(url: str) -> redis.commands.core.Script:
    # Short timeouts and one immediate retry (a pooled connection that died with a Redis
    # restart is replaced once): an absent Redis costs a request milliseconds, not the
    # client's default of ten backed-off retries.
    timeout = settings.RATE_LIMIT_REDIS_TIMEOUT_SECONDS
    client = redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), retries=1)
    )
    return client.register_script(_TAKE_TOKENS)


class LocalBuckets:
    """The same token buckets as the Lua script, in this process's memory (thread-safe)."""

    MAX_BUCKETS = 50_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, buckets: list[Bucket], now: float) -> float:
        with self._lock:
            if len(self._state) > self.MAX_BUCKETS:
                self._state.clear()  # bounded memory; a cleared bucket is merely full again
            wait = 0.0
            refilled = []
            for key, rate, burst in buckets:
                tokens, at = self._state.get(key, (burst, now))
                tokens = min(burst, tokens + max(0.0, now - at) * rate)
                if tokens < 1:
                    wait = max(wait, (1 - tokens) / rate)
                refilled.append(tokens)
            if wait > 0:
                return wait
            for (key, _, _), tokens in zip(buckets, refilled, strict=True):
                self._state[key] = (tokens - 1, now)
            return 0.0


@dataclass
class LimiterStatus:
    """What /health shows: where decisions are made now, and how often Redis failed."""

    redis_down_since: float | None = None
    retry_redis_at: float = 0.0
    redis_failures: int = 0
    local_decisions: int = 0


_local = LocalBuckets()
_status = LimiterStatus()
_status_lock = threading.Lock()


def take_token(buckets: list[Bucket]) -> float:
    """Take one token from every (key, rate, burst) bucket; 0.0 if allowed, else the wait."""
    now = time.time()
    if time.monotonic() >= _status.retry_redis_at:
        try:
            wait = _take_from_redis(buckets, now)
        except redis.exceptions.RedisError as exc:
            _redis_failed(exc)
        else:
            if _status.redis_down_since is not None:
                _redis_recovered()
            return wait
    with _status_lock:
        _status.local_decisions += 1
    return _local.take(buckets, now)


def _take_from_redis(buckets: list[Bucket], now: float) -> float:
    keys = [f"{KEY_PREFIX}{key}" for key, _, _ in buckets]
    args: list[float] = [now]
    for _, rate, burst in buckets:
        args += [rate, burst]
    return float(_script(settings.REDIS_URL)(keys=keys, args=args))


def _redis_failed(exc: redis.exceptions.RedisError) -> None:
    with _status_lock:
        _status.redis_failures += 1
        _status.retry_redis_at = time.monotonic() + settings.RATE_LIMIT_REDIS_RETRY_SECONDS
        starting = _status.redis_down_since is None
        if starting:
            _status.redis_down_since = time.time()
    if starting:
        outages.record(
            "rate_limiter",
            "rate limiter: Redis unavailable (%s: %s); limiting with per-process buckets until it answers",
            type(exc).__name__,
            exc,
            always_log=True,
        )
    else:
        outages.record("rate_limiter", "rate limiter: Redis still down (%s: %s)", type(exc).__name__, exc)


def _redis_recovered() -> None:
    with _status_lock:
        down_since, _status.redis_down_since = _status.redis_down_since, None
    if down_since is not None:
        logger.warning("rate limiter: Redis is back after %.1f s; limits are shared again", time.time() - down_since)


class LimiterReport(TypedDict):
    backend: str  # "redis" (shared buckets) or "local" (this process's, Redis down)
    redis_failures: int
    local_decisions: int


def status() -> LimiterReport:
    with _status_lock:
        return {
            "backend": "local" if _status.redis_down_since is not None else "redis",
            "redis_failures": _status.redis_failures,
            "local_decisions": _status.local_decisions,
        }


class TokenBucketThrottle(BaseThrottle):
    """Runs in APIView.initial(), after authentication and before the handler."""

    _wait: float = 0.0

    def allow_request(self, request: Request, view: object) -> bool:
        principal = request.user
        if not isinstance(principal, ApiPrincipal):  # unauthenticated endpoints (the docs)
            return True
        account = principal.account
        rate, burst = account.api_rate_per_second, account.api_burst
        # The account's bucket is a little larger than one key's, so one busy key cannot
        # starve the others, yet the account as a whole stays bounded.
        self._wait = take_token(
            [
                (f"key:{principal.api_key.key_id}", rate, burst),
                (f"account:{account.schema_name}", rate * 2, burst * 2),
            ]
        )
        return self._wait == 0.0

    def wait(self) -> float:
        return self._wait
