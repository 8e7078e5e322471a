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
from telephony.services.numbers import import_number, render_number
from tenants.models import Account

logger = logging.getLogger(__name__)

MAX_BULK_ROWS = 1000


def render_job(job: Job, with_rows: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": job.id, "object": "job", "kind": job.kind, "status": job.status, "total": job.total,
        "done": job.done, "succeeded": job.succeeded, "failed": job.failed,
        "progress": round(job.done / job.total, 4) if job.total else 1.0,
        "created_at": job.created_at, "started_at": job.started_at, "finished_at": job.finished_at,
    }
    if with_rows:
        body["rows"] = [
            {"index": row.index, "phone_number": row.params.get("phone_number"), "status": row.status,
             "http_status": row.http_status,
             "phone_number_object": row.result if row.status == JobRow.SUCCEEDED else None,
             "error": (row.result or {}).get("error") if row.status == JobRow.FAILED else None}
            for row in job.rows.all()
        ]
    return body


def get_job(job_id: str) -> Job:
    job = Job.objects.filter(id=job_id).first()
    if job is None:
        raise ApiError("job_not_found", details={"job_id": job_id})
    return job


def create_bulk_import(*, api_key_id: str, data: Any, enqueue: Callable[[Job], None]) -> Job:
    """POST /v1/phone-numbers/bulk: store the rows and queue the job (after commit)."""
    rows = data.get("numbers") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not rows:
        raise ApiError("invalid_request", "Send {\"numbers\": [ ... ]}: a list of 1 to 1000 import rows.",
                       {"fields": {"numbers": ["Expected a non-empty list of import rows."]}})
    if len(rows) > MAX_BULK_ROWS:
        raise ApiError("invalid_request", f"At most {MAX_BULK_ROWS} rows per bulk import; got {len(rows)}.",
                       {"fields": {"numbers": [f"At most {MAX_BULK_ROWS} rows."]}})
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
        number = import_number(account=account, api_key_id=job.api_key_id, data=data,
                               reserved_by=f"jobrow:{job.id}:{row.index}")
    except Exception as exc:  # each row ends with exactly what the single import answers
        error = to_api_error(exc)
        status, result, counter = JobRow.FAILED, error.body(), "failed"
        http_status = error.status
    else:
        status, result, counter, http_status = JobRow.SUCCEEDED, render_number(number), "succeeded", 201
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
