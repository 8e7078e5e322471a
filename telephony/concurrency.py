"""Live-call admission: call slots shared by every web process through Redis.

A call's slot is a lease (a sorted-set member scored by its expiry) counted against
three limits at once, in one Lua script:

- the account's plan (`Account.max_concurrent_calls`);
- the platform pool: the smaller of PLATFORM_MAX_CONCURRENT_CALLS (Deepgram's plans cap
  concurrent streams) and the capacity the live web processes advertise;
- the account's share of that pool (PLATFORM_ACCOUNT_SHARE), so one account's burst
  never takes every slot on the platform.

Leases are short until the call is real: the voice webhook takes one for
CALL_ADMISSION_LEASE_SECONDS, the media stream's `start` makes it CALL_LIVE_LEASE_SECONDS,
and this process's keeper renews the leases of the calls it serves every
CALL_LEASE_RENEW_SECONDS until they end. A signed webhook for a call that never streams
frees its slot within seconds; a call whose process died stops counting once its lease
runs out.

Redis is allowed to blip. The keeper's failures are logged and retried on its next tick
(the live lease outlasts two missed renewals), and renewals re-add leases that a Redis
restart lost. Admission while Redis is unreachable falls back to this process's own
ledger, bounded by its capacity, rather than failing Twilio's webhook. Releases that fail
are retried by the keeper. Nothing here may end or crash a live call.

Each web process advertises its capacity (PROCESS_CALL_CAPACITY) and the number of calls
it serves, with an expiry its keeper keeps pushing forward. A process handed a stream
when it is already full still serves it (the caller is connected; dropping them would be
worse) and logs it: admission is what keeps processes from getting there.
"""

from __future__ import annotations

import atexit
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import redis
from django.conf import settings
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

logger = logging.getLogger(__name__)

# Why admission refused a call; each is also the refused call's `end_reason`.
ACCOUNT_FULL = "account_limit"
ACCOUNT_SHARE_FULL = "account_share_limit"
PLATFORM_FULL = "platform_limit"
CAPACITY_FULL = "capacity_full"
CALL_ENDED = "call_ended"  # released already (Twilio said the call ended): no slot again
_REFUSALS = {-1: ACCOUNT_FULL, -2: PLATFORM_FULL, -3: CAPACITY_FULL, -4: ACCOUNT_SHARE_FULL, -5: CALL_ENDED}

# KEYS: account, platform, processes, process capacities, released
# ARGV: now, lease expiry, call, account limit, platform limit, account share (fraction),
#       this process, its capacity, its advertisement's expiry, the keys' time to live
_ADMIT = """
local function done(result)
  for _, key in ipairs(KEYS) do redis.call('EXPIRE', key, ARGV[10]) end
  return result
end
local now = tonumber(ARGV[1])
local expires = tonumber(ARGV[2])
local call = ARGV[3]
local account_limit = tonumber(ARGV[4])
local platform_limit = tonumber(ARGV[5])
local share = tonumber(ARGV[6])
-- The admitting process is a live web process: it counts in the capacity.
redis.call('ZADD', KEYS[3], ARGV[9], ARGV[7])
redis.call('HSET', KEYS[4], ARGV[7], ARGV[8])
local dead = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
if #dead > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  redis.call('HDEL', KEYS[4], unpack(dead))
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
if redis.call('ZSCORE', KEYS[5], call) then
  return done(-5)
end
if redis.call('ZSCORE', KEYS[1], call) then
  -- Already admitted (a retried webhook, or the stream starting): only ever lengthen it.
  redis.call('ZADD', KEYS[1], 'GT', expires, call)
  redis.call('ZADD', KEYS[2], 'GT', expires, call)
  return done(1)
end
local held = redis.call('ZCARD', KEYS[1])
if held >= account_limit then
  return done(-1)
end
local busy = redis.call('ZCARD', KEYS[2])
if busy >= platform_limit then
  return done(-2)
end
local capacity = 0
for _, process in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  capacity = capacity + (tonumber(redis.call('HGET', KEYS[4], process)) or 0)
end
if busy >= capacity then
  return done(-3)
end
if held >= math.max(1, math.floor(math.min(platform_limit, capacity) * share)) then
  return done(-4)
end
redis.call('ZADD', KEYS[1], expires, call)
redis.call('ZADD', KEYS[2], expires, call)
return done(1)
"""

# KEYS: platform, processes, process capacities, process live counts, released, then one
#       account key per call
# ARGV: now, lease expiry, this process, its capacity, its live calls, its advertisement's
#       expiry, the keys' time to live, then the calls
# Returns the calls that were released meanwhile (a status callback said they ended).
_RENEW = """
local now = tonumber(ARGV[1])
local expires = tonumber(ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[6], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
redis.call('HSET', KEYS[4], ARGV[3], ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
local released = {}
for i = 8, #ARGV do
  local call = ARGV[i]
  if redis.call('ZSCORE', KEYS[5], call) then
    table.insert(released, call)
  else
    -- Re-added if missing: Redis may have restarted and lost it.
    redis.call('ZADD', KEYS[i - 2], expires, call)
    redis.call('ZADD', KEYS[1], expires, call)
  end
end
for _, key in ipairs(KEYS) do redis.call('EXPIRE', key, ARGV[7]) end
return released
"""

# KEYS: account, platform, released. ARGV: call, tombstone expiry, the keys' time to live.
_RELEASE = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[3], ARGV[3])
return 1
"""


# --- Redis ------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    # Short timeouts and one quick retry: admission answers Twilio's webhook, and the
    # keeper would rather try again next tick than hang.
    timeout = settings.CALL_LEASE_REDIS_TIMEOUT_SECONDS
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), 1),
    )


def _redis() -> redis.Redis:
    return _client(settings.REDIS_URL)


@lru_cache(maxsize=12)
def _script(url: str, source: str) -> Any:
    return _client(url).register_script(source)


def _run(source: str, keys: list[str], args: list[Any]) -> Any:
    return _script(settings.REDIS_URL, source)(keys=keys, args=args)


def _account_key(schema_name: str) -> str:
    return f"{settings.CALL_LEASE_PREFIX}:account:{schema_name}"


def _key(name: str) -> str:
    return f"{settings.CALL_LEASE_PREFIX}:{name}"


def _keys_ttl(lease_seconds: float = 0) -> int:
    # Every key outlives each lease and advertisement in it, and goes once nothing is renewed.
    return int(max(lease_seconds, settings.CALL_LIVE_LEASE_SECONDS)) + 60


# --- This process: the calls it serves, and what it admitted while Redis was away -----


@dataclass
class _LiveCall:
    schema_name: str
    started: float  # time.monotonic()
    max_seconds: float  # after this it is no longer renewed: the call's own watchdog ended it


class _Ledger:
    """What this process knows without Redis. Guarded by one lock: admission runs in the
    web threads, stream start and end in database threads, renewal in the keeper."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.live: dict[str, _LiveCall] = {}
        # call -> (schema, expiry): admitted on this ledger while Redis was unreachable.
        self.admitted: dict[str, tuple[str, float]] = {}
        # call -> schema: releases that failed, retried by the keeper.
        self.unreleased: dict[str, str] = {}

    def admit(self, *, schema_name: str, call_id: str, account_limit: int, lease_seconds: float) -> str | None:
        now = time.monotonic()
        with self.lock:
            self.admitted = {c: held for c, held in self.admitted.items() if held[1] > now}
            if call_id in self.admitted or call_id in self.live:
                return None
            holders = {c: s for c, (s, _) in self.admitted.items()} | {c: lc.schema_name for c, lc in self.live.items()}
            pool = min(settings.PLATFORM_MAX_CONCURRENT_CALLS, settings.PROCESS_CALL_CAPACITY)
            held = sum(1 for schema in holders.values() if schema == schema_name)
            if held >= account_limit:
                return ACCOUNT_FULL
            if len(holders) >= pool:
                return CAPACITY_FULL
            if held >= max(1, int(pool * settings.PLATFORM_ACCOUNT_SHARE)):
                return ACCOUNT_SHARE_FULL
            self.admitted[call_id] = (schema_name, now + lease_seconds)
            return None


_ledger = _Ledger()


def live_calls_here() -> int:
    """Calls this process is serving now."""
    return len(_ledger.live)


def process_load() -> dict[str, int]:
    """What this process advertises: its capacity and the calls it serves (for /health)."""
    return {"capacity": settings.PROCESS_CALL_CAPACITY, "live": live_calls_here()}


# --- The keeper: one thread per process, one Redis round trip per tick ------------------


class _Keeper:
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.process_id = f"{socket.gethostname()}:{self.pid}:{secrets.token_hex(3)}"
        self.failing = False
        self.thread = threading.Thread(target=self._loop, name="call-lease-keeper", daemon=True)

    def _loop(self) -> None:
        while True:
            try:
                self.tick()
            except Exception:  # the keeper must outlive any one bad tick, or live calls lose their slots
                logger.exception("call-lease keeper tick failed; trying again next tick")
            time.sleep(settings.CALL_LEASE_RENEW_SECONDS)

    def tick(self) -> None:
        """Advertise this process, renew the leases of the calls it serves, retry releases.
        Never raises: a failed tick is tried again on the next one."""
        now, clock = time.time(), time.monotonic()
        with _ledger.lock:
            for call_id, call in list(_ledger.live.items()):
                if clock - call.started > call.max_seconds:
                    logger.warning("call %s outlived its maximum length: its slot is no longer renewed", call_id)
                    del _ledger.live[call_id]
            live = dict(_ledger.live)
            unreleased = dict(_ledger.unreleased)
        try:
            calls = list(live)
            released = _run(
                _RENEW,
                keys=[
                    _key("platform"),
                    _key("processes"),
                    _key("process-capacity"),
                    _key("process-live"),
                    _key("released"),
                    *[_account_key(live[c].schema_name) for c in calls],
                ],
                args=[
                    now,
                    now + settings.CALL_LIVE_LEASE_SECONDS,
                    self.process_id,
                    settings.PROCESS_CALL_CAPACITY,
                    len(live),
                    now + settings.CALL_LIVE_LEASE_SECONDS,
                    _keys_ttl(),
                    *calls,
                ],
            )
            for call_id, schema_name in unreleased.items():
                _release_in_redis(schema_name, call_id)
        except redis.RedisError as exc:
            if not self.failing:
                logger.warning(
                    "call-slot store unreachable (%s): %d live call(s) keep going, renewal retried every %ss",
                    exc,
                    len(live),
                    settings.CALL_LEASE_RENEW_SECONDS,
                )
            self.failing = True
            return
        if self.failing:
            logger.warning("call-slot store reachable again: %d live call lease(s) renewed", len(live))
            self.failing = False
        with _ledger.lock:
            for call_id in unreleased:
                _ledger.unreleased.pop(call_id, None)
            for call_id in released:
                # Twilio said the call ended: its stream is going too; stop renewing it.
                _ledger.live.pop(_text(call_id), None)

    def withdraw(self) -> None:
        """On a clean shutdown: stop advertising this process's capacity now."""
        try:
            pipe = _redis().pipeline()
            pipe.zrem(_key("processes"), self.process_id)
            pipe.hdel(_key("process-capacity"), self.process_id)
            pipe.hdel(_key("process-live"), self.process_id)
            pipe.execute()
        except redis.RedisError:
            pass


_keeper: _Keeper | None = None
_keeper_lock = threading.Lock()


def start_keeper() -> _Keeper:
    """Start this process's keeper (idempotent; again in a forked child). Called when the
    web server loads and by the first admission or stream of a process."""
    global _keeper
    with _keeper_lock:
        if _keeper is None or _keeper.pid != os.getpid():
            _keeper = _Keeper()
            _keeper.thread.start()
            atexit.register(_keeper.withdraw)
        return _keeper


# --- Admission, the stream, the end -----------------------------------------------------


def _admit_in_redis(
    *, schema_name: str, call_id: str, account_limit: int, lease_seconds: float, process_id: str
) -> str | None:
    now = time.time()
    result = _run(
        _ADMIT,
        keys=[
            _account_key(schema_name),
            _key("platform"),
            _key("processes"),
            _key("process-capacity"),
            _key("released"),
        ],
        args=[
            now,
            now + lease_seconds,
            call_id,
            account_limit,
            settings.PLATFORM_MAX_CONCURRENT_CALLS,
            settings.PLATFORM_ACCOUNT_SHARE,
            process_id,
            settings.PROCESS_CALL_CAPACITY,
            now + settings.CALL_LIVE_LEASE_SECONDS,
            _keys_ttl(lease_seconds),
        ],
    )
    return _REFUSALS.get(int(result))


def admit(*, schema_name: str, call_id: str, account_limit: int, lease_seconds: float | None = None) -> str | None:
    """Take a short-lived slot for a call about to stream (idempotent per call). None when
    admitted, else why not (one of the *_FULL constants)."""
    keeper = start_keeper()
    lease = settings.CALL_ADMISSION_LEASE_SECONDS if lease_seconds is None else lease_seconds
    try:
        return _admit_in_redis(
            schema_name=schema_name,
            call_id=call_id,
            account_limit=account_limit,
            lease_seconds=lease,
            process_id=keeper.process_id,
        )
    except redis.RedisError as exc:
        refused = _ledger.admit(
            schema_name=schema_name, call_id=call_id, account_limit=account_limit, lease_seconds=lease
        )
        logger.warning(
            "call-slot store unreachable (%s): call %s %s on this process's own ledger",
            exc,
            call_id,
            f"refused ({refused})" if refused else "admitted",
        )
        return refused


def hold_for_stream(*, schema_name: str, call_id: str, account_limit: int, max_call_seconds: float) -> str | None:
    """The media stream started: lengthen the call's lease and keep renewing it from this
    process until `release`. A lease that ran out (the stream came late) must be won again
    under the same limits. None when held, else why not."""
    keeper = start_keeper()
    try:
        refused = _admit_in_redis(
            schema_name=schema_name,
            call_id=call_id,
            account_limit=account_limit,
            lease_seconds=settings.CALL_LIVE_LEASE_SECONDS,
            process_id=keeper.process_id,
        )
    except redis.RedisError as exc:
        # Admitted already (by Redis or a ledger); the keeper adds the lease when Redis is back.
        logger.warning(
            "call-slot store unreachable (%s): call %s streams; its lease is renewed once it is back", exc, call_id
        )
        refused = None
    if refused is not None:
        return refused
    with _ledger.lock:
        _ledger.admitted.pop(call_id, None)
        _ledger.live[call_id] = _LiveCall(schema_name, time.monotonic(), max_call_seconds + 300)
        serving = len(_ledger.live)
    if serving > settings.PROCESS_CALL_CAPACITY:
        logger.warning(
            "process serves %d calls, over its capacity of %d: admission let call %s through "
            "(another process's advertisement?)",
            serving,
            settings.PROCESS_CALL_CAPACITY,
            call_id,
        )
    return None


def _release_in_redis(schema_name: str, call_id: str) -> None:
    _run(
        _RELEASE,
        keys=[_account_key(schema_name), _key("platform"), _key("released")],
        args=[call_id, time.time() + settings.CALL_LIVE_LEASE_SECONDS, _keys_ttl()],
    )


def release(*, schema_name: str, call_id: str) -> None:
    """Give the call's slot back (idempotent). Never raises: if Redis is unreachable the
    keeper retries, and the lease would run out on its own anyway."""
    with _ledger.lock:
        _ledger.live.pop(call_id, None)
        _ledger.admitted.pop(call_id, None)
    try:
        _release_in_redis(schema_name, call_id)
    except redis.RedisError as exc:
        logger.warning("call-slot store unreachable (%s): release of call %s retried later", exc, call_id)
        with _ledger.lock:
            _ledger.unreleased[call_id] = schema_name
        start_keeper()


# --- Reading ----------------------------------------------------------------------------


def active_calls(schema_name: str) -> int:
    key = _account_key(schema_name)
    _redis().zremrangebyscore(key, "-inf", time.time())
    return int(_redis().zcard(key))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def platform_load() -> dict[str, Any]:
    """Every live web process's advertised capacity and calls, and the slots held."""
    r, now = _redis(), time.time()
    alive = [_text(p) for p in r.zrangebyscore(_key("processes"), now, "+inf")]
    capacities = r.hmget(_key("process-capacity"), alive) if alive else []
    lives = r.hmget(_key("process-live"), alive) if alive else []
    processes = [
        {"process": p, "capacity": int(c or 0), "live": int(n or 0)}
        for p, c, n in zip(alive, capacities, lives, strict=True)
    ]
    capacity = sum(int(c or 0) for c in capacities)
    return {
        "processes": processes,
        "capacity": capacity,
        "pool": min(capacity, settings.PLATFORM_MAX_CONCURRENT_CALLS),
        "slots_held": int(r.zcount(_key("platform"), now, "+inf")),
    }
