"""Failures of the services the web process depends on (Redis, the Celery broker,
PostgreSQL's connection): recognised, counted and logged without flooding the log.

During an outage every request fails the same way; one line per failure (or a traceback
each) would bury everything else. Each kind is logged once per LOG_EVERY_SECONDS, with
how many were left out, and counted for /health.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

import kombu.exceptions
import redis.exceptions
from django.db import InterfaceError as DatabaseInterfaceError
from django.db import OperationalError as DatabaseOperationalError

logger = logging.getLogger(__name__)

LOG_EVERY_SECONDS = 30.0

# Errors that say "the dependency did not answer", not "the request was wrong": retrying
# later can help. (redis' BusyLoadingError, Redis restarting, is a ConnectionError.)
DEPENDENCY_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    kombu.exceptions.OperationalError,
    DatabaseOperationalError,
    DatabaseInterfaceError,
)

_lock = threading.Lock()
_counts: Counter[str] = Counter()
_last_logged: dict[str, float] = {}
_suppressed: Counter[str] = Counter()


def is_dependency_outage(exc: BaseException) -> bool:
    return isinstance(exc, DEPENDENCY_ERRORS)


def dependency_name(exc: BaseException) -> str:
    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        return "redis"
    if isinstance(exc, kombu.exceptions.OperationalError):
        return "broker"
    return "database"


def record(kind: str, message: str, *args: object, always_log: bool = False) -> None:
    """Count one failure of `kind`; log it (one line, no traceback) unless one was logged
    within LOG_EVERY_SECONDS (`always_log`: the start of an outage, which is always news)."""
    now = time.monotonic()
    with _lock:
        _counts[kind] += 1
        recently = now - _last_logged.get(kind, -LOG_EVERY_SECONDS) < LOG_EVERY_SECONDS
        if recently and not always_log:
            _suppressed[kind] += 1
            return
        _last_logged[kind] = now
        left_out, _suppressed[kind] = _suppressed[kind], 0
    suffix = f" ({left_out} more since the last report)" if left_out else ""
    logger.warning(message + suffix, *args)


def record_exception(exc: BaseException) -> None:
    kind = dependency_name(exc)
    record(kind, "%s unavailable while serving a request: %s: %s", kind, type(exc).__name__, exc)


def counts() -> dict[str, int]:
    with _lock:
        return dict(_counts)
