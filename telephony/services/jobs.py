"""Bulk imports as jobs: hundreds of numbers, with progress and per-row outcomes.

A job's rows are stored (Twilio tokens encrypted) and the Celery task gets only the job
id. Rows run in parallel, at most BULK_PER_TWILIO_ACCOUNT at a time per Twilio account.

The jobs table is the queue; a task message only says "run this job now". An account
runs at most JOB_MAX_ACTIVE_PER_ACCOUNT jobs at once: `dispatch_waiting_jobs` gives the
account's free slots to its oldest queued jobs and only then sends their tasks, so one
account's backlog waits in the database, never in the broker ahead of another account's
job. A job gives its slot back when it ends, and its runner dispatches the next one.

What can go wrong, and what happens:
- The broker is down when a job is dispatched: the slot is given back and the job stays
  `queued`; the reaper (`recover_jobs`, run periodically) dispatches it once the broker
  answers again.
- The task raises: the job is queued again after JOB_RETRY_DELAY_SECONDS, and after
  JOB_MAX_ATTEMPTS runs it ends `failed` (reason `crashed`).
- The worker dies (kill -9): a runner holds a PostgreSQL advisory lock for its job, which
  goes with its connection. The reaper finds the running job with a free lock and no
  recent progress and dispatches it again, once; rows already done are skipped and a row
  cut off half-way takes its own route reservation back, so nothing is lost or imported
  twice. After JOB_MAX_ATTEMPTS runs the job ends `failed` (reason `worker_lost`).
A job that fails settles its unfinished rows (the token wiped, the route reservation
released) so that every row ends with an outcome.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnavailable
from rest_framework.utils.encoders import JSONEncoder

from nixflex.errors import ApiError, to_api_error
from telephony.models import Job, JobRow, PhoneNumber
from telephony.serializers import JobDetailOutput, JobOutput, PhoneNumberImportInput, PhoneNumberOutput
from telephony.services.numbers import import_number
from tenants.db import tenant_connection
from tenants.models import Account, NumberRoute

logger = logging.getLogger(__name__)

# Advisory-lock class of an account's job queue (two-key locks never clash with the
# one-key locks that runners hold on their jobs).
_QUEUE_LOCK_CLASS = 7401

Enqueue = Callable[[Job], None]
"""Sends a job's task to the broker (telephony.tasks passes the real one)."""


def render_job(job: Job, with_rows: bool = True) -> dict[str, Any]:
    return (JobDetailOutput(job) if with_rows else JobOutput(job)).data


def get_job(job_id: str) -> Job:
    job = Job.objects.filter(id=job_id).first()
    if job is None:
        raise ApiError("job_not_found", details={"job_id": job_id})
    return job


def create_bulk_import(*, api_key_id: str, rows: list[Any], enqueue: Enqueue) -> Job:
    """POST /v1/phone-numbers/bulk: store the rows as sent (each is checked when it runs)
    and dispatch the job (its task is sent after commit; if the broker is down the job stays
    queued and the reaper sends it)."""
    with transaction.atomic():
        job = Job.objects.create(kind=Job.BULK_IMPORT, total=len(rows), api_key_id=api_key_id)
        JobRow.objects.bulk_create([_new_row(job, i, row) for i, row in enumerate(rows)])
        dispatch_waiting_jobs(enqueue)
    return job


def _new_row(job: Job, index: int, row: Any) -> JobRow:
    if not isinstance(row, dict):
        return JobRow(job=job, index=index, params={"row": row})
    token = row.get("twilio_token")
    return JobRow(
        job=job,
        index=index,
        params={k: v for k, v in row.items() if k != "twilio_token"},
        twilio_token=token if isinstance(token, str) else None,
    )


# --- Scheduling: the account's job slots ---------------------------------------------------


def dispatch_waiting_jobs(enqueue: Enqueue) -> list[Job]:
    """Give this account's free job slots to its oldest waiting jobs and send their tasks
    (after commit). Serialised per account, so the cap holds across processes."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [_QUEUE_LOCK_CLASS, tenant_connection().schema_name]
            )
        holding = Job.objects.filter(status__in=Job.UNFINISHED, dispatched_at__isnull=False).count()
        free = settings.JOB_MAX_ACTIVE_PER_ACCOUNT - holding
        if free <= 0:
            return []
        now = timezone.now()
        chosen = list(
            Job.objects.filter(status=Job.QUEUED, dispatched_at__isnull=True)
            .filter(Q(retry_at__isnull=True) | Q(retry_at__lte=now))
            .order_by("created_at", "id")[:free]
        )
        Job.objects.filter(pk__in=[job.pk for job in chosen]).update(dispatched_at=now)
        for job in chosen:
            _send_after_commit(job, enqueue)
    return chosen


def _send_after_commit(job: Job, enqueue: Enqueue) -> None:
    transaction.on_commit(lambda: _send(job, enqueue))


def _send(job: Job, enqueue: Enqueue) -> None:
    """Send the job's task. If the broker refuses, give the slot back: the job stays queued
    (nothing is lost) and the reaper dispatches it when the broker answers again."""
    try:
        enqueue(job)
        return
    except BrokerUnavailable as exc:
        logger.warning("job %s could not be queued (broker unavailable: %s); the reaper will queue it", job.id, exc)
    except Exception:
        logger.exception("job %s could not be queued; the reaper will queue it", job.id)
    Job.objects.filter(pk=job.pk, status=Job.QUEUED).update(dispatched_at=None)


# --- Running ---------------------------------------------------------------------------------


def _runner_lock_key(job_id: str) -> str:
    return f"{tenant_connection().schema_name}:{job_id}"


def _try_runner_lock(job_id: str) -> bool:
    """A session-level advisory lock: held while this process runs the job, released by
    PostgreSQL if the process dies."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [_runner_lock_key(job_id)])
        return bool(cursor.fetchone()[0])


def _release_runner_lock(job_id: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(hashtext(%s))", [_runner_lock_key(job_id)])


@contextmanager
def _probe_runner_lock(job_id: str) -> Iterator[bool]:
    """Whether a live runner holds the job (taken and given back at once)."""
    acquired = _try_runner_lock(job_id)
    try:
        yield not acquired
    finally:
        if acquired:
            _release_runner_lock(job_id)


def _claim(account: Account, job_id: str) -> Job | None:
    """Start a run of a dispatched job: the job's row lock first, then the runner lock (the
    reaper takes them in the same order), so a run and the reaper never both take a job.
    Returns None for a message with nothing to do (a duplicate, or the job is over)."""
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(id=job_id).first()
        if job is None or job.status not in Job.UNFINISHED or job.dispatched_at is None:
            return None
        if not _try_runner_lock(job_id):
            logger.info("job %s is already running elsewhere", job_id)
            return None
        if job.attempts >= settings.JOB_MAX_ATTEMPTS:
            # Every earlier run started and never finished: its worker died each time.
            _release_runner_lock(job_id)
            _fail(account, job, Job.FailureReason.WORKER_LOST)
            return None
        now = timezone.now()
        Job.objects.filter(pk=job.pk).update(
            status=Job.RUNNING,
            started_at=job.started_at or now,
            heartbeat_at=now,
            attempts=F("attempts") + 1,
            retry_at=None,
        )
    job.refresh_from_db()
    return job


def run_bulk_import(*, account: Account, job_id: str, enqueue: Enqueue) -> None:
    """The body of the bulk-import task (runs in the account's schema)."""
    job = _claim(account, job_id)
    if job is None:
        return
    try:
        try:
            _run_rows(account, job, list(job.rows.filter(status=JobRow.PENDING)))
        except Exception as exc:
            logger.exception(
                "job %s stopped with an error (attempt %s of %s)", job.id, job.attempts, settings.JOB_MAX_ATTEMPTS
            )
            _after_crash(account, job, exc)
        else:
            now = timezone.now()
            Job.objects.filter(pk=job.pk).update(status=Job.COMPLETED, finished_at=now, heartbeat_at=now)
    finally:
        _release_runner_lock(job.id)
    # The slot is free (or the crashed job waits for its retry): start what is next.
    dispatch_waiting_jobs(enqueue)


def _after_crash(account: Account, job: Job, exc: Exception) -> None:
    """Queue the job for another run after a delay, or fail it when its runs are used up."""
    error = f"{type(exc).__name__}: {exc}"[:2000]
    with transaction.atomic():
        current = Job.objects.select_for_update().get(pk=job.pk)
        if current.attempts >= settings.JOB_MAX_ATTEMPTS:
            _fail(account, current, Job.FailureReason.CRASHED, error)
            return
        retry_at = timezone.now() + timedelta(seconds=settings.JOB_RETRY_DELAY_SECONDS * current.attempts)
        Job.objects.filter(pk=job.pk).update(status=Job.QUEUED, dispatched_at=None, retry_at=retry_at, last_error=error)


def _fail(account: Account, job: Job, reason: str, error: str = "") -> None:
    """End the job `failed` (the caller holds its row lock), then settle its unfinished rows."""
    Job.objects.filter(pk=job.pk).update(
        status=Job.FAILED, failure_reason=reason, finished_at=timezone.now(), last_error=error or job.last_error
    )
    _settle_unfinished_rows(account, job)
    logger.error("job %s failed after %s attempts (%s): %s", job.id, job.attempts, reason, error or job.last_error)


def _row_reservation(job_id: str, index: int) -> str:
    return f"jobrow:{job_id}:{index}"


def _settle_unfinished_rows(account: Account, job: Job) -> None:
    """A failed job's rows that never finished: one whose import went through (cut off just
    before its outcome was saved) succeeded; the others failed, their route reservations
    released; no Twilio token is kept."""
    rows = list(job.rows.filter(status=JobRow.PENDING))
    if not rows:
        return
    routes = {
        route.reserved_by: route
        for route in NumberRoute.objects.filter(
            account=account, reserved_by__in=[_row_reservation(job.id, row.index) for row in rows]
        )
    }
    imported = {
        number.phone_number: number
        for number in PhoneNumber.objects.filter(
            phone_number__in=[r.phone_number for r in routes.values() if r.state == NumberRoute.ACTIVE]
        )
    }
    now = timezone.now()
    failed_ids = []
    for row in rows:
        route = routes.get(_row_reservation(job.id, row.index))
        number = imported.get(route.phone_number) if route is not None else None
        if number is not None:
            JobRow.objects.filter(pk=row.pk).update(
                status=JobRow.SUCCEEDED,
                result=_jsonable(PhoneNumberOutput(number).data),
                http_status=201,
                finished_at=now,
                twilio_token=None,
            )
        else:
            failed_ids.append(row.pk)
    NumberRoute.objects.filter(
        account=account,
        state=NumberRoute.PENDING,
        reserved_by__in=[_row_reservation(job.id, row.index) for row in rows],
    ).delete()
    not_imported = ApiError("job_failed", "Not imported: the job stopped before this row finished.", {"job_id": job.id})
    JobRow.objects.filter(pk__in=failed_ids).update(
        status=JobRow.FAILED,
        result=not_imported.body(),
        http_status=not_imported.status,
        finished_at=now,
        twilio_token=None,
    )
    Job.objects.filter(pk=job.pk).update(
        succeeded=F("succeeded") + len(rows) - len(failed_ids), failed=F("failed") + len(failed_ids)
    )


def _run_rows(account: Account, job: Job, rows: list[JobRow]) -> None:
    limits: dict[str, threading.Semaphore] = {}
    limits_lock = threading.Lock()

    def limit_for(twilio_sid: str) -> threading.Semaphore:
        with limits_lock:
            if twilio_sid not in limits:
                limits[twilio_sid] = threading.Semaphore(settings.BULK_PER_TWILIO_ACCOUNT)
            return limits[twilio_sid]

    def work(row: JobRow) -> None:
        tenant_connection().set_tenant(account)
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
        number = import_number(
            account=account,
            api_key_id=job.api_key_id,
            reserved_by=_row_reservation(job.id, row.index),
            **fields.validated_data,
        )
    except Exception as exc:  # each row ends with exactly what the single import answers
        error = to_api_error(exc)
        status, result, counter = JobRow.FAILED, error.body(), "failed"
        http_status = error.status
    else:
        status, result, counter, http_status = JobRow.SUCCEEDED, PhoneNumberOutput(number).data, "succeeded", 201
    with transaction.atomic():
        JobRow.objects.filter(pk=row.pk).update(
            status=status,
            result=_jsonable(result),
            http_status=http_status,
            finished_at=timezone.now(),
            twilio_token=None,
        )
        Job.objects.filter(pk=job.pk).update(**{counter: F(counter) + 1}, heartbeat_at=timezone.now())


def _jsonable(value: Any) -> Any:
    """Dates and the like as the API renders them, for the JSON column."""
    return json.loads(json.dumps(value, cls=JSONEncoder))


# --- The reaper ------------------------------------------------------------------------------


def recover_jobs(*, account: Account, enqueue: Enqueue) -> None:
    """This account's jobs that lost their worker or their task message are dispatched again,
    once each; a job whose runs are used up fails; free slots go to waiting jobs.

    A job is only taken when nobody runs it: under its row lock (skipped if a runner is
    claiming it right now) its runner lock must be free. A job that is progressing holds
    that lock however slow its rows are, and a job just dispatched again is `queued` with
    a fresh `dispatched_at`, so later passes leave it alone.
    """
    if not Job.objects.filter(status__in=Job.UNFINISHED).exists():
        return  # the common case, one cheap query per account
    now = timezone.now()
    stalled_before = now - timedelta(seconds=settings.JOB_STALL_SECONDS)
    lost_before = now - timedelta(seconds=settings.JOB_DISPATCH_TIMEOUT_SECONDS)
    with transaction.atomic():
        candidates = Job.objects.select_for_update(skip_locked=True).filter(
            Q(status=Job.RUNNING) & (Q(heartbeat_at__lt=stalled_before) | Q(heartbeat_at__isnull=True))
            | Q(status=Job.QUEUED, dispatched_at__lt=lost_before)
        )
        for job in candidates:
            with _probe_runner_lock(job.id) as running:
                if running:
                    continue
            if job.status == Job.RUNNING and job.attempts >= settings.JOB_MAX_ATTEMPTS:
                _fail(account, job, Job.FailureReason.WORKER_LOST)
                continue
            if job.status == Job.RUNNING:
                logger.warning(
                    "job %s lost its worker (attempt %s of %s); queueing it again",
                    job.id,
                    job.attempts,
                    settings.JOB_MAX_ATTEMPTS,
                )
            else:
                logger.warning(
                    "job %s was queued %s ago and never started; queueing it again",
                    job.id,
                    now - job.dispatched_at if job.dispatched_at else "long",
                )
            # It keeps its slot: the new message is its own.
            Job.objects.filter(pk=job.pk).update(status=Job.QUEUED, dispatched_at=now)
            _send_after_commit(job, enqueue)
    dispatch_waiting_jobs(enqueue)
