"""Live-call admission: a per-account limit (the plan) and a platform-wide limit
(Deepgram's plans cap concurrent streams), shared by every web process through Redis.

Each admitted call holds a lease (a sorted-set member scored by its expiry), so a call
whose process died stops counting once its lease runs out.
"""

from __future__ import annotations

import time
from functools import lru_cache

import redis
from django.conf import settings

_ADMIT = """
local now = tonumber(ARGV[1])
local expires = tonumber(ARGV[2])
local call = ARGV[3]
local account_limit = tonumber(ARGV[4])
local platform_limit = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZSCORE', KEYS[1], call) then
  return 1
end
if redis.call('ZCARD', KEYS[1]) >= account_limit then
  return -1
end
if redis.call('ZCARD', KEYS[2]) >= platform_limit then
  return -2
end
redis.call('ZADD', KEYS[1], expires, call)
redis.call('ZADD', KEYS[2], expires, call)
return 1
"""

ACCOUNT_FULL = "account"
PLATFORM_FULL = "platform"


@lru_cache(maxsize=1)
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


@lru_cache(maxsize=1)
def _admit_script():  # type: ignore[no-untyped-def]
    return _redis().register_script(_ADMIT)


def _keys(schema_name: str) -> list[str]:
    prefix = settings.CALL_LEASE_PREFIX
    return [f"{prefix}:account:{schema_name}", f"{prefix}:platform"]


def admit(*, schema_name: str, call_id: str, account_limit: int, lease_seconds: float) -> str | None:
    """Take a slot for the call. None when admitted, else which limit is full."""
    now = time.time()
    result = _admit_script()(keys=_keys(schema_name),
                             args=[now, now + lease_seconds, call_id, account_limit,
                                   settings.PLATFORM_MAX_CONCURRENT_CALLS])
    return {1: None, -1: ACCOUNT_FULL, -2: PLATFORM_FULL}[int(result)]


def release(*, schema_name: str, call_id: str) -> None:
    pipe = _redis().pipeline()
    for key in _keys(schema_name):
        pipe.zrem(key, call_id)
    pipe.execute()


def active_calls(schema_name: str) -> int:
    key = _keys(schema_name)[0]
    _redis().zremrangebyscore(key, "-inf", time.time())
    return int(_redis().zcard(key))
