"""Redis stopped and started again under a running API (a redis-server of the test's own).

Reads keep working through the outage (the rate limiter falls back to per-process
buckets and says so), what needs Redis answers with the envelope instead of a
traceback, and everything is back on Redis by itself once it answers again.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ApiClient, OwnRedis, Persona, assert_error, start_uvicorn, wait_for

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs the redis-server binary")


# --- The rate limiter in this process ------------------------------------------------------


def test_rate_limiter_fails_open_to_local_buckets_and_comes_back(
    own_redis: OwnRedis, make_persona: Any, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from tenants import throttling

    settings.REDIS_URL = own_redis.url
    settings.RATE_LIMIT_REDIS_RETRY_SECONDS = 0.2
    persona = make_persona("Outage", api_rate_per_second=1, api_burst=3)
    client = persona.client()
    bucket = f"{throttling.KEY_PREFIX}key:{persona.key.api_key.key_id}"

    assert client.get("/v1/agents").status_code == 200
    assert own_redis.client().exists(bucket)  # decided in Redis
    failures_before = throttling.status()["redis_failures"]

    own_redis.stop()
    caplog.set_level(logging.WARNING)
    started = time.monotonic()
    statuses = [client.get("/v1/agents").status_code for _ in range(4)]
    assert time.monotonic() - started < 3  # no long retries against a Redis that is gone
    # Served without Redis, yet still limited: burst 3 in this process, then 429.
    assert statuses == [200, 200, 200, 429]
    assert throttling.status()["backend"] == "local"
    assert throttling.status()["redis_failures"] > failures_before
    outage_lines = [r for r in caplog.records if "Redis unavailable" in r.getMessage()]
    assert len(outage_lines) == 1  # logged once, not once per request
    assert outage_lines[0].exc_info is None

    own_redis.start()
    time.sleep(1.2)  # the local bucket refills; the retry pause passes
    wait_for(
        lambda: client.get("/v1/agents").status_code == 200 and throttling.status()["backend"] == "redis",
        timeout=10,
        interval=0.3,
    )
    assert own_redis.client().exists(bucket)  # back on the shared bucket
    assert any("Redis is back" in r.getMessage() for r in caplog.records)


def test_local_buckets_match_the_shared_semantics() -> None:
    from tenants.throttling import LocalBuckets

    buckets = LocalBuckets()
    pair = [("key:a", 1.0, 2.0), ("account:x", 2.0, 4.0)]
    assert [buckets.take(pair, now=100.0) for _ in range(3)] == [0.0, 0.0, pytest.approx(1.0)]
    assert buckets.take(pair, now=101.0) == 0.0  # one token back after a second
    # The account's bucket (4 at t=101) is shared by its keys: other keys take the rest.
    assert [buckets.take([(f"key:{k}", 1.0, 2.0), ("account:x", 2.0, 4.0)], now=101.0) for k in "bcde"] == [
        0.0,
        0.0,
        0.0,
        pytest.approx(0.5),
    ]


# --- A real server whose Redis goes away -------------------------------------------------


class _Response:
    def __init__(self, status: int, body: bytes, headers: Any) -> None:
        self.status_code, self.content, self.headers = status, body, headers

    def json(self) -> Any:
        return json.loads(self.content)

    def __getitem__(self, name: str) -> str:
        return self.headers[name]


def _call(url: str, persona: Persona | None, method: str = "GET", body: Any = None) -> _Response:
    request = urllib.request.Request(
        url,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={
            "Host": "api.localhost",
            "Content-Type": "application/json",
            **({"Authorization": persona.bearer} if persona else {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return _Response(response.status, response.read(), response.headers)
    except urllib.error.HTTPError as error:
        return _Response(error.code, error.read(), error.headers)


def test_api_through_a_redis_outage_and_back(own_redis: OwnRedis, make_persona: Any, tmp_path: Path) -> None:
    persona = make_persona("Outage")
    log_path = tmp_path / "server.log"
    env = {"REDIS_URL": own_redis.url, "CELERY_BROKER_URL": own_redis.url, "RATE_LIMIT_REDIS_RETRY_SECONDS": "0.2"}
    with start_uvicorn(env, log_path) as (_, url):
        agent = _call(f"{url}/v1/agents", persona, "POST", {"name": "Front desk"}).json()
        bulk_row = {
            "phone_number": "+442011110000",
            "twilio_sid": "AC" + "a" * 32,
            "twilio_token": "t",
            "agent_id": agent["id"],
        }
        assert _call(f"{url}/v1/agents", persona).status_code == 200

        own_redis.stop()
        # Reads keep working, quickly.
        started = time.monotonic()
        for _ in range(5):
            response = _call(f"{url}/v1/agents/{agent['id']}", persona)
            assert response.status_code == 200, response.content
        assert time.monotonic() - started < 5
        health = _call(f"{url}/health", None).json()
        assert health["rate_limiter"]["backend"] == "local" and health["rate_limiter"]["local_decisions"] >= 5
        # The admin and other pages do not need Redis either (the Django cache is unused).
        assert _call(f"{url}/admin/login/", None).status_code == 200
        # Queuing a job needs the broker: the job is kept (queued) and accepted, never a
        # traceback; the reaper sends it once the broker is back (tests/telephony/test_job_faults.py).
        started = time.monotonic()
        response = _call(f"{url}/v1/phone-numbers/bulk", persona, "POST", {"numbers": [bulk_row]})
        assert response.status_code == 202, response.content
        assert response.json()["status"] == "queued"
        assert time.monotonic() - started < 20

        own_redis.start()
        wait_for(
            lambda: (
                _call(f"{url}/v1/agents", persona).status_code == 200
                and _call(f"{url}/health", None).json()["rate_limiter"]["backend"] == "redis"
            ),
            timeout=20,
            interval=0.5,
        )
        assert own_redis.client().exists(f"ratelimit:key:{persona.key.api_key.key_id}")
        assert _call(f"{url}/v1/phone-numbers/bulk", persona, "POST", {"numbers": [bulk_row]}).status_code == 202
    log = log_path.read_text()
    assert "Traceback" not in log, log[-3000:]
    assert log.count("unavailable") <= 4, log[-3000:]  # a line per kind of outage, not per request


def test_redis_error_escaping_an_api_view_is_the_retryable_envelope(
    own_redis: OwnRedis, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.REDIS_URL = own_redis.url
    assert ApiClient(None).get("/v1/_test/needs-redis").json() == {"pong": True}
    own_redis.stop()
    caplog.set_level(logging.WARNING)
    for _ in range(3):
        response = ApiClient(None).get("/v1/_test/needs-redis")
        error = assert_error(response, 500, "server_error", "server_error")
        assert error["details"] == {"reason": "dependency_unavailable", "retryable": True}
        assert "Traceback" not in response.content.decode() and str(own_redis.port) not in response.content.decode()
    assert not [r for r in caplog.records if r.exc_info]  # no traceback in the log either
    own_redis.start()
    assert ApiClient(None).get("/v1/_test/needs-redis").json() == {"pong": True}
