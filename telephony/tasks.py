"""Telephony background jobs. Thin: they take ids, set the tenant, call a service."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from celery.signals import worker_ready
from django.conf import settings
from django.db import connection
from django_tenants.utils import tenant_context

from agents.anthropic_client import LlmFailure
from nixflex.celery import platform_task, tenant_task
from telephony.models import Job, PhoneNumber
from telephony.services import calls, jobs, numbers
from tenants.db import tenant_connection
from tenants.models import Account

logger = logging.getLogger(__name__)


@tenant_task(name="telephony.bulk_import_numbers", acks_late=True)
def bulk_import_numbers(job_id: str) -> None:
    jobs.run_bulk_import(account=tenant_connection().tenant, job_id=job_id, enqueue=enqueue_bulk_import)


def enqueue_bulk_import(job: Job) -> None:
    """Send a dispatched job's task (from inside the account's schema)."""
    bulk_import_numbers.delay(job.id)


@tenant_task(name="telephony.check_account_webhooks")
def check_account_webhooks() -> None:
    for number in PhoneNumber.objects.all():
        numbers.check_webhooks(number)


def _accounts() -> Any:
    """Accounts whose schema is ready (a row is visible a moment before its schema is cloned)."""
    ready = set(schema_names())
    return [a for a in Account.objects.exclude(schema_name="public").filter(is_active=True) if a.schema_name in ready]


def schema_names() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT table_schema FROM information_schema.tables WHERE table_name = 'telephony_job'")
        return [row[0] for row in cursor.fetchall()]


@platform_task(name="telephony.resume_stalled_jobs")
def resume_stalled_jobs() -> None:
    """The reaper: jobs that lost their worker or their message, and jobs waiting for a slot."""
    for account in _accounts():
        with tenant_context(account):
            jobs.recover_jobs(account=account, enqueue=enqueue_bulk_import)


@platform_task(name="telephony.check_all_webhooks")
def check_all_webhooks() -> None:
    for account in _accounts():
        with tenant_context(account):
            check_account_webhooks.delay()


@worker_ready.connect
def _resume_jobs_on_worker_start(**kwargs: Any) -> None:
    # A worker that comes back after a crash picks up what the dead one left.
    resume_stalled_jobs.delay()


@tenant_task(name="telephony.summarize_call", bind=True, max_retries=settings.SUMMARY_MAX_RETRIES)
def summarize_call(self: Task, call_id: str) -> None:
    try:
        calls.write_summary(call_id, last_attempt=self.request.retries >= self.max_retries)
    except LlmFailure as exc:
        # Claude failed and another try may help: back off (doubling) and retry.
        raise self.retry(exc=exc, countdown=settings.SUMMARY_RETRY_DELAY_SECONDS * 2**self.request.retries) from exc
