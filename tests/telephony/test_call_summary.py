"""The post-call summary job against a failing Claude: retried, then `failed`, never
`pending` forever."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django_tenants.utils import schema_context

from telephony.models import Call
from telephony.tasks import summarize_call
from tests.conftest import Persona, unique_e164, wait_for

REQUESTS_PER_ATTEMPT = settings.ANTHROPIC_MAX_RETRIES + 1  # the SDK's own retries
ATTEMPTS = settings.SUMMARY_MAX_RETRIES + 1


def _ended_call(persona: Persona) -> tuple[str, str]:
    """A finished call waiting for its summary; the caller said a word of its own."""
    marker = f"marker-{uuid.uuid4().hex[:8]}"
    with schema_context(persona.account.schema_name):
        call = Call.objects.create(
            twilio_call_sid=f"CA{uuid.uuid4().hex}",
            from_number=unique_e164("+4477"),
            to_number=unique_e164(),
            status=Call.COMPLETED,
            summary_status=Call.SummaryStatus.PENDING,
            transcript=[
                {"role": "agent", "text": "Hello, how can I help?", "at": 0.5},
                {"role": "caller", "text": f"I'd like to book a cleaning, {marker}", "at": 2.0},
            ],
        )
        summarize_call.delay(call.id)
    return call.id, marker


def _summary_status(persona: Persona, call_id: str, wanted: str) -> dict[str, Any] | None:
    body = persona.client().get(f"/v1/calls/{call_id}").json()
    return body if body["summary_status"] == wanted else None


def _requests_for(claude: Any, marker: str) -> list[dict[str, Any]]:
    return [r for r in claude.requests() if marker in (r.get("last_user_text") or "")]


def test_summary_whose_retries_run_out_ends_failed(celery_worker, alice, providers) -> None:
    claude = providers["anthropic"]
    claude.fail_next(count=ATTEMPTS * REQUESTS_PER_ATTEMPT, status=500)
    try:
        call_id, marker = _ended_call(alice)
        body = wait_for(lambda: _summary_status(alice, call_id, "failed"), timeout=90, interval=0.2)
        # Every attempt was made, each answered 500, and none after the last.
        assert [r["status"] for r in _requests_for(claude, marker)] == [500] * ATTEMPTS * REQUESTS_PER_ATTEMPT
    finally:
        claude.reset()
    assert body["summary"] is None


def test_summary_retries_after_claude_fails_then_succeeds(celery_worker, alice, providers) -> None:
    claude = providers["anthropic"]
    claude.fail_next(count=REQUESTS_PER_ATTEMPT, status=529)  # the whole first attempt
    try:
        call_id, marker = _ended_call(alice)
        body = wait_for(lambda: _summary_status(alice, call_id, "done"), timeout=60, interval=0.2)
        assert [r["status"] for r in _requests_for(claude, marker)] == [529] * REQUESTS_PER_ATTEMPT + [200]
    finally:
        claude.reset()
    assert marker in body["summary"]
