"""Bulk imports as jobs: hundreds of numbers, with progress and per-row outcomes.

A job's rows are stored (Twilio tokens encrypted) and the Celery task gets only the job
id. Rows run in parallel, at most BULK_PER_TWILIO_ACCOUNT at a time per Twilio account.
A runner holds a PostgreSQL advisory lock for its job: if its worker dies (kill -9), the
connection closes, the lock goes, and `resume_stalled_jobs` (run when a worker starts and
periodically) queues the job again; rows already done are skipped and a row that was cut
off half-way takes its own route reservation back, so nothing is lost or imported twice.
"""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Callable, Iterator

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from rest_framework.utils.encoders import JSONEncoder

from nixflex.errors import ApiError, to_api_error
from telephony.models import Job, JobRow
from telephony.serializers import JobDetailOutput, JobOutput, PhoneNumberImportInput, PhoneNumberOutput
from telephony.services.numbers import import_number
from tenants.models import Account

logger = logging.getLogger(__name__)


def render_job(job: Job, with_rows: bool = True) -> dict[str, Any]:
    return (JobDetailOutput(job) if with_rows else JobOutput(job)).data


def get_job(job_id: str) -> Job:
    job = Job.objects.filter(id=job_id).first()
    if job is None:
        raise ApiError("job_not_found", details={"job_id": job_id})
    return job


def create_bulk_import(*, api_key_id: str, rows: list[Any], enqueue: Callable[[Job], None]) -> Job:
    """POST /v1/phone-numbers/bulk: store the rows as sent (each is checked when it runs)
    and queue the job (after commit)."""
    with transaction.atomic():
        job = Job.objects.create(kind=Job.BULK_IMPORT, total=len(rows), api_key_id=api_key_id)
        JobRow.objects.bulk_create([
            JobRow(job=job, index=i,
                   params={k: v for k, v in row.items() if k != "twilio_token"} if isinstance(row, dict) else {"row": row},
                   twilio_token=row.get("twilio_token") if isinstance(row, dict) and isinstance(row.get("twilio_token"), str) else None)
            for i, row in enumerate(rows)
        ])
        transaction.on_commit(lambda: enqueue(job))
    return job


@contextmanager
def _job_lock(job: Job) -> Iterator[bool]:
    """A session-level advisory lock: held while this process runs the job, released by
    PostgreSQL if the process dies."""
    key = f"{connection.schema_name}:{job.id}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [key])
        acquired = cursor.fetchone()[0]
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(hashtext(%s))", [key])


def run_bulk_import(*, account: Account, job_id: str) -> None:
    """The body of the bulk-import task (runs in the account's schema)."""
    job = Job.objects.filter(id=job_id).first()
    if job is None or job.status in (Job.COMPLETED, Job.FAILED):
        return
    with _job_lock(job) as acquired:
        if not acquired:
            logger.info("job %s is already running elsewhere", job_id)
            return
        now = timezone.now()
        Job.objects.filter(pk=job.pk).update(status=Job.RUNNING, started_at=job.started_at or now,
                                             heartbeat_at=now, attempts=F("attempts") + 1)
        pending = list(job.rows.filter(status=JobRow.PENDING))
        _run_rows(account, job, pending)
        Job.objects.filter(pk=job.pk).update(status=Job.COMPLETED, finished_at=timezone.now(),
                                             heartbeat_at=timezone.now())


def _run_rows(account: Account, job: Job, rows: list[JobRow]) -> None:
    limits: dict[str, threading.Semaphore] = {}
    limits_lock = threading.Lock()

    def limit_for(twilio_sid: str) -> threading.Semaphore:
        with limits_lock:
            if twilio_sid not in limits:
                limits[twilio_sid] = threading.Semaphore(settings.BULK_PER_TWILIO_ACCOUNT)
            return limits[twilio_sid]

    def work(row: JobRow) -> None:
        connection.set_tenant(account)
        try:
            with limit_for(str(row.params.get("twilio_sid"))):
                _run_row(account, job, row)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=settings.BULK_WORKERS, thread_name_prefix=f"bulk-{job.id}") as pool:
        for future in [pool.submit(work, row) for row in rows]:
            future.result()


def _run_row(account: Account, job: Job, row: JobRow) -> None:
    data = {**row.params, "twilio_token": row.twilio_token} if row.twilio_token else dict(row.params)
    try:
        fields = PhoneNumberImportInput(data=data)
        fields.is_valid(raise_exception=True)
        number = import_number(account=account, api_key_id=job.api_key_id, reserved_by=f"jobrow:{job.id}:{row.index}",
                               **fields.validated_data)
    except Exception as exc:  # each row ends with exactly what the single import answers
        error = to_api_error(exc)
        status, result, counter = JobRow.FAILED, error.body(), "failed"
        http_status = error.status
    else:
        status, result, counter, http_status = JobRow.SUCCEEDED, PhoneNumberOutput(number).data, "succeeded", 201
    with transaction.atomic():
        JobRow.objects.filter(pk=row.pk).update(
            status=status, result=_jsonable(result), http_status=http_status, finished_at=timezone.now(),
            twilio_token=None)
        Job.objects.filter(pk=job.pk).update(**{counter: F(counter) + 1}, heartbeat_at=timezone.now())


def _jsonable(value: Any) -> Any:
    """Dates and the like as the API renders them, for the JSON column."""
    return json.loads(json.dumps(value, cls=JSONEncoder))


def stalled_jobs(stall_after: timedelta) -> list[Job]:
    """Queued or running jobs of this schema that nobody is running (their lock is free)."""
    cutoff = timezone.now() - stall_after
    candidates = Job.objects.filter(status__in=[Job.QUEUED, Job.RUNNING], created_at__lt=cutoff).exclude(
        heartbeat_at__gte=cutoff)
    stalled = []
    for job in candidates:
        with _job_lock(job) as acquired:
            if acquired:
                stalled.append(job)
    return stalled
