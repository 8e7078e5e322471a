"""Test harness: a real PostgreSQL database of its own, real Redis, and personas.

Each test creates the accounts it needs (cloning a schema takes well under a second),
so tests are isolated by tenancy itself rather than by rolled-back transactions; that
lets real servers and Celery workers in other processes see what a test wrote.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from django.conf import settings
from django.core.management import call_command
from django.db import connections
from django.test import Client

from tenants.db import tenant_connection
from tenants.models import Account
from tenants.services import IssuedKey, create_account

ROOT = Path(__file__).resolve().parent.parent


def _admin_dsn() -> dict[str, Any]:
    db = settings.DATABASES["default"]
    return {
        "host": db.get("HOST") or None,
        "port": db.get("PORT") or None,
        "user": db.get("USER") or None,
        "password": db.get("PASSWORD") or None,
        "dbname": "postgres",
    }


@pytest.fixture(scope="session")
def django_db_setup(django_db_blocker: Any) -> Iterator[None]:
    """A fresh database for the session: dropped, created, migrated (public, template)."""
    name = settings.DATABASES["default"]["NAME"]
    assert "_test_" in name, f"refusing to recreate non-test database {name!r}"
    base = name.rsplit("_", 1)[0]
    with django_db_blocker.unblock():
        connections.close_all()
        with psycopg.connect(**{k: v for k, v in _admin_dsn().items() if v}, autocommit=True) as admin:
            # Databases of earlier runs that died without cleaning up.
            for (stale,) in admin.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", [base.replace("_", r"\_") + r"\_%"]
            ).fetchall():
                suffix = stale.rsplit("_", 1)[-1]
                if stale != name and suffix.isdigit() and not os.path.exists(f"/proc/{suffix}"):
                    admin.execute(f'DROP DATABASE IF EXISTS "{stale}" WITH (FORCE)')
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
        call_command("migrate_all", verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
    yield
    with django_db_blocker.unblock():
        connections.close_all()
        with psycopg.connect(**{k: v for k, v in _admin_dsn().items() if v}, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(autouse=True, scope="session")
def _real_database(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Tests talk to the database for real (committed), like the servers they start."""
    django_db_blocker.unblock()
    yield


@pytest.fixture(autouse=True)
def _public_schema_between_tests() -> Iterator[None]:
    tenant_connection().set_schema_to_public()
    yield
    tenant_connection().set_schema_to_public()


_seq = itertools.count(1)


@dataclass
class Persona:
    """An account with an API key and an HTTP client that sends it."""

    account: Account
    key: IssuedKey

    @property
    def bearer(self) -> str:
        return f"Bearer {self.key.api_key.key_id}:{self.key.secret}"

    def client(self, **extra: str) -> ApiClient:
        return ApiClient(self.bearer, **extra)


class ApiClient:
    """Django's test client, JSON in and out, with the persona's key."""

    def __init__(self, authorization: str | None, host: str = "api.localhost") -> None:
        self.client = Client(HTTP_HOST=host)
        self.authorization = authorization

    def _headers(self) -> dict[str, Any]:  # Client's **extra: WSGI environ entries
        return {"HTTP_AUTHORIZATION": self.authorization} if self.authorization else {}

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.client.get(path, params or {}, **self._headers())

    def post(self, path: str, body: Any = None, raw: str | None = None) -> Any:
        data = raw if raw is not None else json.dumps(body if body is not None else {})
        return self.client.post(path, data, content_type="application/json", **self._headers())

    def patch(self, path: str, body: Any) -> Any:
        return self.client.patch(path, json.dumps(body), content_type="application/json", **self._headers())

    def delete(self, path: str) -> Any:
        return self.client.delete(path, **self._headers())

    def put(self, path: str, body: Any) -> Any:
        return self.client.put(path, json.dumps(body), content_type="application/json", **self._headers())


@pytest.fixture
def make_persona() -> Callable[..., Persona]:
    def make(name: str = "Account", **plan: Any) -> Persona:
        n = next(_seq)
        domain = f"{name.lower().replace(' ', '-')}-{n}-{uuid.uuid4().hex[:6]}.localhost"
        account, key = create_account(name=f"{name} {n}", domain=domain, **plan)
        tenant_connection().set_schema_to_public()
        return Persona(account=account, key=key)

    return make


@pytest.fixture
def alice(make_persona: Callable[..., Persona]) -> Persona:
    """The account under test."""
    return make_persona("Alice")


@pytest.fixture
def bob(make_persona: Callable[..., Persona]) -> Persona:
    """Another account: the outsider in isolation tests."""
    return make_persona("Bob")


def assert_error(response: Any, status: int, type_: str, code: str) -> dict[str, Any]:
    """The seed's envelope, with the right status, type and code."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"type", "code", "message", "doc_url", "details"}, error
    assert (error["type"], error["code"]) == (type_, code), error
    assert error["doc_url"] == f"{settings.DOCS_BASE_URL}/reference/errors#{code}"
    assert isinstance(error["details"], dict) and isinstance(error["message"], str) and error["message"]
    return error


# --- Provider stand-ins (real servers; the product reaches them through the real SDKs) --


def _serve(standin: Any, setting: str, **extra: Any) -> Iterator[Any]:
    """Start a stand-in in a thread and point this process's settings, and the servers and
    workers the tests start (through the environment), at it."""
    url = standin.start_in_thread()
    for name, value in {setting: url, **extra}.items():
        os.environ[name] = str(value)
        setattr(settings, name, value)
    yield standin
    standin.stop_thread()


@pytest.fixture(scope="session")
def twilio_standin() -> Iterator[Any]:
    from standins.twilio_api import TwilioStandin

    yield from _serve(TwilioStandin(), "TWILIO_API_BASE_URL", TWILIO_TIMEOUT_SECONDS=2.0)


@pytest.fixture(scope="session")
def deepgram_standin() -> Iterator[Any]:
    from standins.deepgram_api import DeepgramStandin

    yield from _serve(DeepgramStandin(), "DEEPGRAM_BASE_URL")


@pytest.fixture(scope="session")
def anthropic_standin() -> Iterator[Any]:
    from standins.anthropic_api import AnthropicStandin

    yield from _serve(AnthropicStandin(), "ANTHROPIC_BASE_URL")


@pytest.fixture(scope="session")
def providers(twilio_standin: Any, deepgram_standin: Any, anthropic_standin: Any) -> Any:
    """All three stand-ins, with the environment that points servers and workers at them."""
    return {"twilio": twilio_standin, "deepgram": deepgram_standin, "anthropic": anthropic_standin}


@pytest.fixture
def twilio(twilio_standin: Any) -> Iterator[Any]:
    """The Twilio stand-in, with no latency or injected failures left from other tests."""
    twilio_standin.configure(latency_ms=0, fail={"mode": "none"})
    yield twilio_standin
    twilio_standin.configure(latency_ms=0, fail={"mode": "none"})


_numbers = itertools.count(1)


def unique_e164(country: str = "+4420") -> str:
    """A fresh number per call (numbers are unique across the stand-in, as at Twilio)."""
    return f"{country}{os.getpid() % 1000:03d}{next(_numbers):05d}"


# --- Processes: a Celery worker -------------------------------------------------------


def _subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_celery_worker(
    concurrency: int = 2, hostname: str | None = None, beat: bool = True, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """A real worker (with an embedded beat, so stalled jobs are picked up quickly);
    `env` overrides its environment (e.g. another broker)."""
    name = hostname or f"test-{uuid.uuid4().hex[:6]}@%h"
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "nixflex",
        "worker",
        "-Q",
        settings.CELERY_TASK_DEFAULT_QUEUE,
        "--concurrency",
        str(concurrency),
        "--loglevel",
        "WARNING",
        "-n",
        name,
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    if beat:
        args += ["-B", "--schedule", f"/tmp/nixflex-beat-{uuid.uuid4().hex[:8]}"]
    return subprocess.Popen(args, cwd=ROOT, env={**_subprocess_env(), **(env or {})})


@pytest.fixture(scope="session")
def celery_worker(providers: Any) -> Iterator[subprocess.Popen]:
    """A real Celery worker process consuming this session's queue."""
    proc = start_celery_worker()
    time.sleep(0.5)
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


def celery_consumers() -> list[str]:
    """The workers consuming this run's queue (asked over the broker's remote control)."""
    from nixflex.celery import app

    replies = app.control.inspect(timeout=1).active_queues() or {}
    return [
        host for host, queues in replies.items() if any(q["name"] == settings.CELERY_TASK_DEFAULT_QUEUE for q in queues)
    ]


@contextmanager
def queue_paused() -> Iterator[None]:
    """The workers consuming this run's queue stop taking messages until the block ends
    (remote control, addressed to them only); workers started inside it consume as usual.
    Unlike SIGSTOP, a paused worker cannot have popped a message that it then sits on."""
    from nixflex.celery import app

    hosts = wait_for(celery_consumers, timeout=30, interval=0.5)  # the session's worker, once it is up
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    app.control.cancel_consumer(queue, destination=hosts, reply=True, timeout=5)
    assert not set(hosts) & set(celery_consumers())
    time.sleep(1.5)  # a blocking pop already under way times out (1 s) first
    try:
        yield
    finally:
        app.control.add_consumer(queue, destination=hosts, reply=True, timeout=5)


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


# --- A real ASGI server (uvicorn), HTTP + WebSocket ---------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def start_uvicorn(
    env: dict[str, str] | None = None, log_path: Path | None = None, *, http: str | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """uvicorn serving nixflex.asgi in its own process (`env` over the test environment),
    answering /health before this yields (proc, url); always terminated on the way out.
    With `log_path` its output goes there, for a test to read afterwards."""
    import urllib.request

    port = _free_port()
    command = [sys.executable, "-m", "uvicorn", "nixflex.asgi:application"]
    if http is not None:
        command += ["--http", http]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"]
    full_env = {**_subprocess_env(), **(env or {})}
    if log_path is None:
        proc = subprocess.Popen(command, cwd=ROOT, env=full_env)
    else:
        with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    where = f" (see {log_path})" if log_path is not None else ""
                    raise RuntimeError(f"uvicorn did not start{where}") from None
                time.sleep(0.1)
        yield proc, url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def asgi_server(providers: Any) -> Iterator[str]:
    """uvicorn serving nixflex.asgi in its own process, pointed at the stand-ins."""
    with start_uvicorn(http="nixflex.uvicorn_protocol:HttpProtocol") as (_, url):
        yield url


# --- A throwaway Redis of a test's own (never the machine's) -----------------------------


class OwnRedis:
    """A redis-server on a free port with no persistence, which a test can stop and start
    again: whatever it held is gone once it stops."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tempfile.mkdtemp(prefix="nixflex-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.proc is not None:
            return
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = self.client()
        wait_for(lambda: _pings(client), timeout=10)

    def stop(self, crash: bool = False) -> None:
        """Shut down (SIGTERM), or with `crash` killed as a crash would (SIGKILL)."""
        if self.proc is None:
            return
        if crash:
            self.proc.kill()
        else:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=1)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@contextmanager
def running_redis() -> Iterator[OwnRedis]:
    """An OwnRedis, started; stopped and its directory removed on the way out."""
    server = OwnRedis()
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    with running_redis() as server:
        yield server
