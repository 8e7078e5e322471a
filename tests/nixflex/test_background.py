"""Celery tasks run in their account's schema; WebSockets round-trip through the ASGI app."""

from __future__ import annotations

import json
import uuid

import pytest
import redis
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django_tenants.utils import schema_context

from nixflex.asgi import application
from nixflex.celery import MissingTenantError
from nixflex.tasks import worker_ping
from tenants.db import tenant_connection
from tests.conftest import wait_for


def _report(token: str) -> dict | None:
    raw = redis.Redis.from_url(settings.REDIS_URL).get(f"worker_ping:{token}")
    return json.loads(raw) if raw else None


def test_task_runs_in_the_schema_it_was_queued_in(celery_worker, alice, bob) -> None:
    alice.client().post("/v1/agents", {"name": "one"})
    alice.client().post("/v1/agents", {"name": "two"})
    tokens = {}
    for persona in (alice, bob):
        token = uuid.uuid4().hex
        with schema_context(persona.account.schema_name):
            worker_ping.delay(token)
        tokens[persona.account.schema_name] = token
    assert wait_for(lambda: _report(tokens[alice.account.schema_name])) == {
        "schema": alice.account.schema_name,
        "agents": 2,
    }
    assert wait_for(lambda: _report(tokens[bob.account.schema_name])) == {
        "schema": bob.account.schema_name,
        "agents": 0,
    }


def test_task_without_a_tenant_fails_loudly() -> None:
    tenant_connection().set_schema_to_public()
    with pytest.raises(MissingTenantError):
        worker_ping.apply(args=[uuid.uuid4().hex], throw=True)


async def test_websocket_round_trip_through_the_asgi_app_and_redis_layer() -> None:
    communicator = WebsocketCommunicator(application, "/ws/health", headers=[(b"host", b"localhost")])
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to({"ping": 1})
    assert await communicator.receive_json_from(timeout=5) == {"echo": {"ping": 1}}
    await communicator.disconnect()
