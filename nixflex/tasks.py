"""Platform diagnostics tasks."""

from __future__ import annotations

import json

import redis
from django.conf import settings

from agents.models import Agent
from nixflex.celery import tenant_task
from tenants.db import tenant_connection


@tenant_task(name="nixflex.worker_ping")
def worker_ping(token: str) -> None:
    """Report which schema the worker ran this task in (used by health checks and tests)."""
    report = {"schema": tenant_connection().schema_name, "agents": Agent.objects.count()}
    redis.Redis.from_url(settings.REDIS_URL).set(f"worker_ping:{token}", json.dumps(report), ex=300)
