"""Bulk provisioning jobs: per-row outcomes, progress, and surviving a killed worker."""

from __future__ import annotations

import os
import signal

from django_tenants.utils import schema_context

from telephony.models import Job, JobRow, PhoneNumber
from tenants.models import NumberRoute
from tests.conftest import Persona, assert_error, queue_paused, start_celery_worker, unique_e164, wait_for


def _job(persona: Persona, job_id: str) -> dict:
    return persona.client().get(f"/v1/jobs/{job_id}").json()


def _done(persona: Persona, job_id: str):
    job = _job(persona, job_id)
    return job if job["status"] == "completed" else None


def test_mixed_rows_each_get_the_single_import_outcome(celery_worker, alice: Persona, bob: Persona, twilio) -> None:
    client = alice.client()
    agent = client.post("/v1/agents", {"name": "Ringback"}).json()["id"]
    bobs_agent = bob.client().post("/v1/agents", {"name": "Bob's"}).json()["id"]
    sid_a, token_a = twilio.add_account()
    sid_b, token_b = twilio.add_account()
    good = [unique_e164() for _ in range(4)]
    for e164 in good[:2]:
        twilio.add_number(sid_a, e164)
    for e164 in good[2:]:
        twilio.add_number(sid_b, e164)
    taken = unique_e164()
    twilio.add_number(sid_a, taken)
    rows = [
        {"phone_number": good[0], "twilio_sid": sid_a, "twilio_token": token_a, "agent_id": agent},
        {"phone_number": good[2], "twilio_sid": sid_b, "twilio_token": token_b, "agent_id": agent},
        {"phone_number": "07446 466847", "twilio_sid": sid_a, "twilio_token": token_a, "agent_id": agent},
        {"phone_number": good[1], "twilio_sid": sid_a, "twilio_token": "bad", "agent_id": agent},
        {"phone_number": unique_e164(), "twilio_sid": sid_a, "twilio_token": token_a, "agent_id": agent},
        {"phone_number": good[3], "twilio_sid": sid_b, "twilio_token": token_b, "agent_id": bobs_agent},
        {"phone_number": taken, "twilio_sid": sid_a, "twilio_token": token_a, "agent_id": agent},
        {"phone_number": taken, "twilio_sid": sid_a, "twilio_token": token_a, "agent_id": agent},
        "not an object",
    ]
    response = client.post("/v1/phone-numbers/bulk", {"numbers": rows})
    assert response.status_code == 202, response.content
    accepted = response.json()
    assert accepted["object"] == "job" and accepted["total"] == len(rows)
    assert token_a not in response.content.decode()
    job = wait_for(lambda: _done(alice, accepted["id"]), timeout=30)
    outcome = [(r["status"], r["http_status"], (r["error"] or {}).get("code")) for r in job["rows"]]
    assert outcome[:7] == [
        ("succeeded", 201, None),
        ("succeeded", 201, None),
        ("failed", 400, "invalid_phone_format"),
        ("failed", 400, "twilio_invalid_credentials"),
        ("failed", 400, "number_not_in_twilio"),
        ("failed", 403, "agent_not_owned"),
        outcome[6],
    ]
    # The same number twice in one job: exactly one import wins.
    assert sorted(outcome[6:8]) == [("failed", 409, "number_already_imported"), ("succeeded", 201, None)]
    assert outcome[8] == ("failed", 400, "invalid_request")
    assert (job["total"], job["done"], job["succeeded"], job["failed"]) == (9, 9, 3, 6)
    assert job["rows"][0]["phone_number_object"]["phone_number"] == good[0]
    with schema_context(alice.account.schema_name):
        assert PhoneNumber.objects.count() == 3
        assert not JobRow.objects.filter(job_id=accepted["id"], twilio_token__isnull=False).exists()


def test_bulk_validation_and_limits(alice: Persona) -> None:
    client = alice.client()
    assert_error(client.post("/v1/phone-numbers/bulk", {"numbers": []}), 400, "invalid_request", "invalid_request")
    assert_error(client.post("/v1/phone-numbers/bulk", {"rows": [{}]}), 400, "invalid_request", "invalid_request")
    too_many = [{"phone_number": "+442011110001"}] * 1001
    error = assert_error(
        client.post("/v1/phone-numbers/bulk", {"numbers": too_many}), 400, "invalid_request", "invalid_request"
    )
    assert "numbers" in error["details"]["fields"]


def test_jobs_are_private(alice: Persona, bob: Persona, celery_worker) -> None:
    job = alice.client().post("/v1/phone-numbers/bulk", {"numbers": [{"phone_number": "x"}]}).json()
    assert_error(bob.client().get(f"/v1/jobs/{job['id']}"), 404, "not_found", "job_not_found")
    assert bob.client().get("/v1/jobs").json()["data"] == []
    assert_error(alice.client().get("/v1/jobs/job_0000000000000000"), 404, "not_found", "job_not_found")


def test_job_survives_a_killed_worker(make_persona, twilio, celery_worker) -> None:
    """kill -9 the worker mid-job: once a worker is back, the job finishes with every row
    imported exactly once."""
    persona = make_persona("Reseller")
    client = persona.client()
    agent = client.post("/v1/agents", {"name": "Ringback"}).json()["id"]
    sid, token = twilio.add_account()
    numbers = [unique_e164() for _ in range(60)]
    for e164 in numbers:
        twilio.add_number(sid, e164)
    twilio.configure(latency_ms=150)
    # Park the shared worker so that the one we kill takes the job.
    with queue_paused():
        victim = start_celery_worker(concurrency=1, beat=False)
        try:
            rows = [{"phone_number": e, "twilio_sid": sid, "twilio_token": token, "agent_id": agent} for e in numbers]
            job_id = client.post("/v1/phone-numbers/bulk", {"numbers": rows}).json()["id"]
            wait_for(lambda: _job(persona, job_id)["done"] >= 5, timeout=60)
            pool = _children_of(victim.pid)  # the prefork child running the task
            assert pool
            for pid in [victim.pid, *pool]:
                os.kill(pid, signal.SIGKILL)
            victim.wait()
            partial = _job(persona, job_id)
            assert partial["status"] == "running" and partial["done"] < 60
        finally:
            if victim.poll() is None:
                victim.kill()
    job = wait_for(lambda: _done(persona, job_id), timeout=90)
    assert (job["succeeded"], job["failed"]) == (60, 0), [r for r in job["rows"] if r["status"] != "succeeded"][:3]
    with schema_context(persona.account.schema_name):
        assert sorted(PhoneNumber.objects.values_list("phone_number", flat=True)) == sorted(numbers)
        assert Job.objects.get(id=job_id).attempts >= 2
    assert NumberRoute.objects.filter(phone_number__in=numbers, state="active").count() == 60


def _children_of(pid: int) -> list[int]:
    """Worker pool processes left behind by a killed parent."""
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().split(")")[1].split()[1]) == pid:
                        children.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return children
