"""Token-bucket rate limiting in Redis, per API key and per account.

One Lua script checks and takes a token from both buckets atomically, so many web
processes share the same limits. Limits come from the account's plan.
"""

from __future__ import annotations

import time
from functools import lru_cache

import redis
from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle


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


@lru_cache(maxsize=1)
def _script() -> redis.commands.core.Script:
    client = redis.Redis.from_url(settings.REDIS_URL)
    return client.register_script(_TAKE_TOKENS)


def take_token(buckets: list[tuple[str, float, float]]) -> float:
    """Take one token from every (key, rate, burst) bucket; 0.0 if allowed, else the wait."""
    keys = [f"ratelimit:{key}" for key, _, _ in buckets]
    args: list[float] = [time.time()]
    for _, rate, burst in buckets:
        args += [rate, burst]
    return float(_script()(keys=keys, args=args))


class TokenBucketThrottle(BaseThrottle):
    """Runs in APIView.initial(), after authentication and before the handler."""

    def allow_request(self, request: Request, view: object) -> bool:
        principal = request.user
        if principal is None or not getattr(principal, "is_authenticated", False):
            return True
        account = principal.account
        rate, burst = account.api_rate_per_second, account.api_burst
        # The account's bucket is a little larger than one key's, so one busy key cannot
        # starve the others, yet the account as a whole stays bounded.
        self._wait = take_token([
            (f"key:{principal.api_key.key_id}", rate, burst),
            (f"account:{account.schema_name}", rate * 2, burst * 2),
        ])
        return self._wait == 0.0

    def wait(self) -> float:
        return self._wait
