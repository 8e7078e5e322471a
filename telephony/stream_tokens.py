"""The signed, short-lived, single-use token that lets Twilio's media stream in.

It travels as a TwiML <Parameter> (stream URLs carry no query string) and names the
call and the account's schema; the media consumer refuses any other socket.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass
from functools import lru_cache

import redis
import redis.asyncio
from django.conf import settings
from django.core import signing
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

logger = logging.getLogger(__name__)

_SALT = "nixflex.media-stream"


@dataclass(frozen=True)
class StreamGrant:
    call_id: str
    schema_name: str
    nonce: str


def issue(*, call_id: str, schema_name: str) -> str:
    payload = {"c": call_id, "s": schema_name, "n": secrets.token_hex(8)}
    return signing.dumps(payload, key=settings.STREAM_TOKEN_SECRET, salt=_SALT, compress=False)


class InvalidStreamToken(Exception):
    pass


@lru_cache(maxsize=4)
def _client(url: str) -> redis.asyncio.Redis:
    # Short timeouts, one retry: a call is waiting for its greeting.
    timeout = settings.CALL_LEASE_REDIS_TIMEOUT_SECONDS
    return redis.asyncio.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), 1),
    )


def _redis() -> redis.asyncio.Redis:
    return _client(settings.REDIS_URL)


# Tokens used while Redis was unreachable: replays are refused on this process at least.
_used_here: dict[str, float] = {}
_used_here_lock = threading.Lock()


def _consume_here(nonce: str) -> bool:
    now = time.monotonic()
    with _used_here_lock:
        for old in [n for n, expires in _used_here.items() if expires < now]:
            del _used_here[old]
        if nonce in _used_here:
            return False
        _used_here[nonce] = now + settings.STREAM_TOKEN_MAX_AGE_SECONDS * 2
        return True


def verify(token: str, *, call_id: str) -> StreamGrant:
    """Signature, age and call must match. (Single use is `consume`'s job.)"""
    try:
        payload = signing.loads(
            token, key=settings.STREAM_TOKEN_SECRET, salt=_SALT, max_age=settings.STREAM_TOKEN_MAX_AGE_SECONDS
        )
    except signing.BadSignature as exc:  # includes SignatureExpired
        raise InvalidStreamToken(str(exc)) from None
    if not isinstance(payload, dict) or payload.get("c") != call_id:
        raise InvalidStreamToken("token is for another call")
    return StreamGrant(call_id=payload["c"], schema_name=payload["s"], nonce=payload["n"])


async def consume(grant: StreamGrant) -> bool:
    """Mark the token used; False if it was used before (a replay)."""
    key = f"{settings.CALL_LEASE_PREFIX}:stream-token:{grant.nonce}"
    try:
        return bool(await _redis().set(key, "1", nx=True, ex=settings.STREAM_TOKEN_MAX_AGE_SECONDS * 2))
    except redis.RedisError as exc:
        # A Redis blip must not refuse a call that admission let in (its token is signed,
        # short-lived and bound to the call); replays are then refused per process.
        logger.warning("stream-token store unreachable (%s): single use checked on this process only", exc)
        return _consume_here(grant.nonce)
