"""Telephony background jobs. Thin: they take ids, set the tenant, call a service."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery.signals import worker_ready
from django.conf import settings
from django.db import connection
from django_tenants.utils import tenant_context

from agents.anthropic_client import LlmFailure
from nixflex.celery import platform_task, tenant_task
from telephony.models import PhoneNumber
from telephony.services import calls, jobs, numbers
from tenants.models import Account

logger = logging.getLogger(__name__)


@tenant_task(name="telephony.bulk_import_numbers", acks_late=True)
def bulk_import_numbers(job_id: str) -> None:
    jobs.run_bulk_import(account=connection.tenant, job_id=job_id)


@tenant_task(name="telephony.check_account_webhooks")
def check_account_webhooks() -> None:
    for number in PhoneNumber.objects.all():
        numbers.check_webhooks(number)


def _accounts() -> Any:
    """Accounts whose schema is ready (a row is visible a moment before its schema is cloned)."""
    ready = set(schema_names())
    return [a for a in Account.objects.exclude(schema_name="public").filter(is_active=True)
            if a.schema_name in ready]


def schema_names() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT table_schema FROM information_schema.tables WHERE table_name = 'telephony_job'")
        return [row[0] for row in cursor.fetchall()]


@platform_task(name="telephony.resume_stalled_jobs")
def resume_stalled_jobs() -> None:
    stall_after = timedelta(seconds=settings.JOB_STALL_SECONDS)
    for account in _accounts():
        with tenant_context(account):
            for job in jobs.stalled_jobs(stall_after):
                logger.warning("job %s of %s lost its worker; queueing it again", job.id, account.schema_name)
                bulk_import_numbers.delay(job.id)


@platform_task(name="telephony.check_all_webhooks")
def check_all_webhooks() -> None:
    for account in _accounts():
        with tenant_context(account):
            check_account_webhooks.delay()


@worker_ready.connect
def _resume_jobs_on_worker_start(**kwargs: Any) -> None:
    # A worker that comes back after a crash picks up what the dead one left.
    resume_stalled_jobs.delay()


@tenant_task(name="telephony.summarize_call", autoretry_for=(LlmFailure,), retry_backoff=5, max_retries=3)
def summarize_call(call_id: str) -> None:
    calls.write_summary(call_id)
