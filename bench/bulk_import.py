"""Bulk import: 200 numbers against the Twilio stand-in with 150 ms per Twilio request,
through the real API, a real Celery worker, PostgreSQL and Redis. Target: <= 10 s from
the POST to every number imported and live (sequential would take about a minute).

    .venv/bin/python bench/bulk_import.py [--numbers 200] [--latency-ms 150]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid

from _harness import ROOT, setup_django


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--numbers", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=150)
    args = parser.parse_args()

    from standins.twilio_api import TwilioStandin

    twilio = TwilioStandin(latency_ms=args.latency_ms)
    os.environ["TWILIO_API_BASE_URL"] = twilio.start_in_thread()
    setup_django()
    from django.test import Client
    from django_tenants.utils import schema_context

    from agents.services import create_agent
    from telephony.models import PhoneNumber
    from tenants.db import tenant_connection
    from tenants.models import NumberRoute
    from tenants.services import create_account

    account, key = create_account(name="Bulk bench", domain=f"bulk-{uuid.uuid4().hex[:8]}.localhost")
    with schema_context(account.schema_name):
        agent = create_agent(account=account, name="Ringback")
    tenant_connection().set_schema_to_public()
    sid, token = twilio.add_account()
    base = 4420_0000_0000 + int(uuid.uuid4().int % 10**6) * 1000
    numbers = [f"+{base + i}" for i in range(args.numbers)]
    for e164 in numbers:
        twilio.add_number(sid, e164)

    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "nixflex",
            "worker",
            "-Q",
            os.environ["CELERY_QUEUE"],
            "--concurrency",
            "2",
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=dict(os.environ),
    )
    try:
        time.sleep(3)  # let the worker connect
        client = Client(HTTP_HOST="api.localhost")
        rows = [{"phone_number": e, "twilio_sid": sid, "twilio_token": token, "agent_id": agent.id} for e in numbers]
        # Warm-up: the first request in a process loads the URLconf (and the SDKs behind it);
        # the ASGI server does that at start.
        client.get("/v1/jobs", HTTP_AUTHORIZATION=f"Bearer {key.api_key.key_id}:{key.secret}")
        started = time.perf_counter()
        response = client.post(
            "/v1/phone-numbers/bulk",
            {"numbers": rows},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {key.api_key.key_id}:{key.secret}",
        )
        accepted = time.perf_counter() - started
        job_id = response.json()["id"]
        progress_seen = set()
        while True:
            job = client.get(
                f"/v1/jobs/{job_id}", HTTP_AUTHORIZATION=f"Bearer {key.api_key.key_id}:{key.secret}"
            ).json()
            progress_seen.add(job["done"])
            if job["status"] == "completed":
                break
            if time.perf_counter() - started > 120:
                raise SystemExit("job did not finish in 120 s")
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
        tenant_connection().set_schema_to_public()
        live = NumberRoute.objects.filter(phone_number__in=numbers, state="active").count()
        with schema_context(account.schema_name):
            rows_in_db = PhoneNumber.objects.filter(phone_number__in=numbers).count()
        pointed = sum(
            1 for e in numbers if (got := twilio.get_number(e)) and got["voice_url"].endswith("/twilio/voice")
        )
    finally:
        worker.terminate()
        worker.wait()
        twilio.stop_thread()

    twilio_requests = args.numbers * 2
    print(f"{'metric':<52}{'value':>10}")
    print(f"{'numbers':<52}{args.numbers:>10}")
    print(f"{'Twilio latency per request, ms':<52}{args.latency_ms:>10.0f}")
    print(f"{'POST /v1/phone-numbers/bulk answered (202), s':<52}{accepted:>10.3f}")
    print(f"{'all imported and live, s':<52}{elapsed:>10.2f}")
    print(f"{'sequential estimate (2 Twilio requests/row), s':<52}{twilio_requests * args.latency_ms / 1000:>10.1f}")
    print(f"{'succeeded / failed':<52}{job['succeeded']:>6} / {job['failed']}")
    print(f"{'rows in DB / active routes / webhooks pointed':<52}{rows_in_db:>4} / {live} / {pointed}")
    print(f"{'distinct progress values seen while polling':<52}{len(progress_seen):>10}")


if __name__ == "__main__":
    main()
