"""The signed, short-lived, single-use token that lets Twilio's media stream in.

It travels as a TwiML <Parameter> (stream URLs carry no query string) and names the
call and the account's schema; the media consumer refuses any other socket.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from functools import lru_cache

import redis
from django.conf import settings
from django.core import signing

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


@lru_cache(maxsize=1)
def _redis() -> redis.asyncio.Redis:
    return redis.asyncio.Redis.from_url(settings.REDIS_URL)


def verify(token: str, *, call_id: str) -> StreamGrant:
    """Signature, age and call must match. (Single use is `consume`'s job.)"""
    try:
        payload = signing.loads(token, key=settings.STREAM_TOKEN_SECRET, salt=_SALT,
                                max_age=settings.STREAM_TOKEN_MAX_AGE_SECONDS)
    except signing.BadSignature as exc:  # includes SignatureExpired
        raise InvalidStreamToken(str(exc)) from None
    if not isinstance(payload, dict) or payload.get("c") != call_id:
        raise InvalidStreamToken("token is for another call")
    return StreamGrant(call_id=payload["c"], schema_name=payload["s"], nonce=payload["n"])


async def consume(grant: StreamGrant) -> bool:
    """Mark the token used; False if it was used before (a replay)."""
    key = f"{settings.CALL_LEASE_PREFIX}:stream-token:{grant.nonce}"
    return bool(await _redis().set(key, "1", nx=True, ex=settings.STREAM_TOKEN_MAX_AGE_SECONDS * 2))
