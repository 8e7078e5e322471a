"""Bulk jobs under faults: crashing runs, dead workers, the reaper, a busy account, a broker
that is down. Real workers, a real broker (Redis), real PostgreSQL locks."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from functools import partial
from typing import Any

import redis
from django.conf import settings
from django.db import connection
from django_tenants.utils import schema_context

from telephony.models import Job, JobRow, PhoneNumber
from telephony.tasks import resume_stalled_jobs
from tenants.models import NumberRoute
from tests.conftest import (
    OwnRedis,
    Persona,
    celery_consumers,
    queue_paused,
    start_celery_worker,
    start_uvicorn,
    unique_e164,
    wait_for,
)
from tests.telephony.test_bulk_import import _children_of


def _job(persona: Persona, job_id: str) -> dict[str, Any]:
    return persona.client().get(f"/v1/jobs/{job_id}").json()


def _ended(persona: Persona, job_id: str) -> dict[str, Any] | None:
    job = _job(persona, job_id)
    return job if job["status"] in ("completed", "failed") else None


def _rows(persona: Persona, twilio: Any, count: int, agent: str | None = None) -> list[dict[str, Any]]:
    """Import rows for numbers that exist in a fresh Twilio account."""
    agent = agent or persona.client().post("/v1/agents", {"name": "Ringback"}).json()["id"]
    sid, token = twilio.add_account()
    rows = []
    for _ in range(count):
        e164 = unique_e164()
        twilio.add_number(sid, e164)
        rows.append({"phone_number": e164, "twilio_sid": sid, "twilio_token": token, "agent_id": agent})
    return rows


def _post_job(persona: Persona, rows: list[dict[str, Any]]) -> str:
    response = persona.client().post("/v1/phone-numbers/bulk", {"numbers": rows})
    assert response.status_code == 202, response.content
    return response.json()["id"]


def _queued_messages(job_id: str) -> int:
    """Task messages for this job waiting in the broker's queue (not yet taken by a worker)."""
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    count = 0
    for raw in broker.lrange(settings.CELERY_TASK_DEFAULT_QUEUE, 0, -1):
        headers = json.loads(raw).get("headers") or {}
        if headers.get("task") == "telephony.bulk_import_numbers" and job_id in str(headers.get("argsrepr")):
            count += 1
    return count


def _kill_worker(worker: subprocess.Popen) -> None:
    """kill -9 a worker and its pool processes."""
    for pid in [worker.pid, *_children_of(worker.pid)]:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    worker.wait()


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _reaper_passes(count: int) -> None:
    """The reaper task, run here (in this process) a few times in a row."""
    for _ in range(count):
        resume_stalled_jobs.apply(throw=True)
        time.sleep(0.3)


# --- A job that crashes every run -----------------------------------------------------------


@contextmanager
def _row_outcomes_refused(schema: str) -> Iterator[None]:
    """The fault: the database refuses to store a row's outcome while its job runs (as a
    full disk would), which crashes each run outside the per-row error handling."""
    with connection.cursor() as cursor:
        cursor.execute(f"""
            CREATE FUNCTION "{schema}".refuse_row_outcome() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF (SELECT status FROM "{schema}".telephony_job WHERE id = NEW.job_id) = 'running' THEN
                    RAISE EXCEPTION 'could not extend file: No space left on device';
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER refuse_row_outcome BEFORE UPDATE ON "{schema}".telephony_jobrow
                FOR EACH ROW EXECUTE FUNCTION "{schema}".refuse_row_outcome();""")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                f'DROP TRIGGER refuse_row_outcome ON "{schema}".telephony_jobrow;'
                f'DROP FUNCTION "{schema}".refuse_row_outcome();'
            )


def test_a_job_that_crashes_every_run_ends_failed_with_the_reason(celery_worker, make_persona, twilio) -> None:
    persona = make_persona("Crashing")
    rows = _rows(persona, twilio, 2)
    missing = {**rows[0], "phone_number": unique_e164()}  # not in that Twilio account
    with _row_outcomes_refused(persona.account.schema_name):
        job_id = _post_job(persona, [*rows, missing])
        job = wait_for(lambda: _ended(persona, job_id), timeout=60)
        assert job["status"] == "failed", job
        assert job["attempts"] == settings.JOB_MAX_ATTEMPTS == 3
        error = job["error"]
        assert (error["type"], error["code"]) == ("server_error", "job_failed")
        assert error["details"] == {"job_id": job_id, "reason": "crashed", "attempts": 3}
        assert "3 attempts" in error["message"]
        assert error["doc_url"].endswith("#job_failed")
        # Failed for good: nobody runs it again.
        time.sleep(settings.JOB_STALL_SECONDS + 1.5)
        assert _job(persona, job_id)["attempts"] == 3
    # Every row has an outcome: the numbers whose import went through are reported as such,
    # the row that never finished failed; no token or route reservation is left behind.
    outcome = [(r["status"], r["http_status"], (r["error"] or {}).get("code")) for r in job["rows"]]
    assert outcome == [("succeeded", 201, None), ("succeeded", 201, None), ("failed", 500, "job_failed")]
    assert (job["done"], job["succeeded"], job["failed"]) == (3, 2, 1)
    with schema_context(persona.account.schema_name):
        assert sorted(PhoneNumber.objects.values_list("phone_number", flat=True)) == sorted(
            r["phone_number"] for r in rows
        )
        assert not JobRow.objects.filter(job_id=job_id, twilio_token__isnull=False).exists()
        assert "No space left on device" in Job.objects.get(id=job_id).last_error
    assert not NumberRoute.objects.filter(reserved_by__startswith=f"jobrow:{job_id}:", state="pending").exists()


# --- The reaper -----------------------------------------------------------------------------


def test_a_job_whose_worker_died_is_queued_again_exactly_once(celery_worker, make_persona, twilio) -> None:
    persona = make_persona("Orphaned")
    rows = _rows(persona, twilio, 40)
    twilio.configure(latency_ms=150)
    with queue_paused():
        victim = start_celery_worker(concurrency=1, beat=False)
        try:
            job_id = _post_job(persona, rows)
            wait_for(lambda: _job(persona, job_id)["done"] >= 3, timeout=60)
            _kill_worker(victim)
        finally:
            _stop(victim)
        assert _job(persona, job_id)["status"] == "running"
        time.sleep(settings.JOB_STALL_SECONDS + 0.5)  # no progress since: stalled
        _reaper_passes(3)
        assert _queued_messages(job_id) == 1
        assert _job(persona, job_id)["status"] == "queued"
    job = wait_for(lambda: _ended(persona, job_id), timeout=90)
    assert (job["status"], job["succeeded"], job["failed"], job["attempts"]) == ("completed", 40, 0, 2)


def test_a_job_waiting_for_a_worker_is_not_queued_twice(celery_worker, make_persona, twilio) -> None:
    persona = make_persona("Patient")
    rows = _rows(persona, twilio, 2)
    with queue_paused():
        job_id = _post_job(persona, rows)
        time.sleep(settings.JOB_STALL_SECONDS + 0.5)  # older than the stall limit, and never started
        _reaper_passes(3)
        assert _queued_messages(job_id) == 1
    job = wait_for(lambda: _ended(persona, job_id), timeout=60)
    assert (job["status"], job["succeeded"], job["attempts"]) == ("completed", 2, 1)


def test_a_slow_job_that_is_progressing_is_left_alone(celery_worker, make_persona, twilio) -> None:
    persona = make_persona("Slow")
    rows = _rows(persona, twilio, 2)
    twilio.configure(latency_ms=1500)  # each row takes longer than the stall limit
    with queue_paused():
        worker = start_celery_worker(concurrency=1, beat=False)
        try:
            job_id = _post_job(persona, rows)
            wait_for(lambda: _job(persona, job_id)["status"] == "running", timeout=60)
            time.sleep(settings.JOB_STALL_SECONDS + 0.5)
            assert _job(persona, job_id)["done"] == 0  # no heartbeat for a while, but its runner is alive
            _reaper_passes(3)
            assert _queued_messages(job_id) == 0
            job = wait_for(lambda: _ended(persona, job_id), timeout=60)
        finally:
            _stop(worker)
    assert (job["status"], job["succeeded"], job["attempts"]) == ("completed", 2, 1)


# --- Fairness between accounts ----------------------------------------------------------------


def _times(persona: Persona, job_id: str) -> tuple[datetime, datetime]:
    with schema_context(persona.account.schema_name):
        job = Job.objects.get(id=job_id)
        assert job.started_at and job.finished_at
        return job.started_at, job.finished_at


def test_one_accounts_backlog_does_not_hold_up_another_account(celery_worker, make_persona, twilio) -> None:
    """Account A queues six jobs, then account B one. A runs at most its two slots at a
    time; B's job starts at once on the third worker slot, not after A's backlog."""
    assert settings.JOB_MAX_ACTIVE_PER_ACCOUNT == 2
    busy, other = make_persona("Busy"), make_persona("Other")
    agent = busy.client().post("/v1/agents", {"name": "Ringback"}).json()["id"]
    busy_rows = _rows(busy, twilio, 6, agent)
    other_rows = _rows(other, twilio, 1)
    twilio.configure(latency_ms=1500)  # a job of one row takes several seconds
    extra = start_celery_worker(concurrency=1, beat=False)  # three worker slots in all
    try:
        wait_for(lambda: len(celery_consumers()) >= 2, timeout=60, interval=0.5)  # both workers are up
        busy_jobs = [_post_job(busy, [row]) for row in busy_rows]
        other_job = _post_job(other, other_rows)
        for job_id in busy_jobs:
            assert wait_for(partial(_ended, busy, job_id), timeout=120)["status"] == "completed"
        assert wait_for(lambda: _ended(other, other_job), timeout=60)["status"] == "completed"
    finally:
        _stop(extra)
    spans = [_times(busy, job_id) for job_id in busy_jobs]
    other_started, _ = _times(other, other_job)
    # B started while A's first two jobs were still running, before A's third started.
    assert other_started < min(finished for _, finished in spans[:2])
    assert other_started < spans[2][0]
    # A never ran more than two jobs at once, and ran them oldest first.
    for started, _ in spans:
        assert sum(1 for s, f in spans if s <= started < f) <= 2
    # Oldest first: two slots freed together start their jobs in two worker processes at
    # once, so their start stamps may swap by a hair; no job starts before an older one
    # by more than that.
    for (earlier, _), (later, _) in itertools.pairwise(spans):
        assert (earlier - later).total_seconds() < 0.05


# --- The broker is down ----------------------------------------------------------------------


def _http(method: str, url: str, persona: Persona, body: Any = None) -> tuple[int, str, Any]:
    request = urllib.request.Request(
        url,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": persona.bearer, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read().decode()
            return response.status, response.headers.get("Content-Type", ""), json.loads(raw)
    except urllib.error.HTTPError as error:
        raw = error.read().decode()
        return error.code, error.headers.get("Content-Type", ""), raw


def test_bulk_import_while_the_broker_is_down_is_accepted_and_runs_when_it_is_back(
    celery_worker, make_persona, twilio, own_redis: OwnRedis
) -> None:
    """The API and a worker use a broker of their own; it goes down, a bulk import comes
    in, the broker comes back: the job was kept and runs, with no traceback anywhere."""
    persona = make_persona("Outage")
    rows = _rows(persona, twilio, 3)
    broker = own_redis
    env = {"CELERY_BROKER_URL": broker.url}
    # The session's worker (and its reaper) would otherwise reach the job through the shared broker.
    with queue_paused(), start_uvicorn(env) as (_, api):
        worker = start_celery_worker(concurrency=1, beat=True, env=env)
        try:
            time.sleep(3)  # the worker is up
            broker.stop()
            status, content_type, body = _http("POST", f"{api}/v1/phone-numbers/bulk", persona, {"numbers": rows})
            assert (status, content_type) == (202, "application/json"), body
            assert body["object"] == "job" and body["status"] == "queued"
            job_id = body["id"]
            # Reads need no broker.
            status, _, job = _http("GET", f"{api}/v1/jobs/{job_id}", persona)
            assert (status, job["status"], job["attempts"]) == (200, "queued", 0)
            time.sleep(2)
            assert _job(persona, job_id)["status"] == "queued"
            broker.start()
            job = wait_for(lambda: _ended(persona, job_id), timeout=90, interval=0.5)
        finally:
            _stop(worker)
    assert (job["status"], job["succeeded"], job["attempts"]) == ("completed", 3, 1)
