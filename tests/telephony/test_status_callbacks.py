"""POST /twilio/status: Twilio's call status callbacks, signed for real.

Callbacks come twice or out of order: the handler is idempotent and never moves a call
backwards; a bad signature changes nothing; an unknown CallSid is acknowledged (204) so
Twilio does not retry it, and ignored.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.forms.models import model_to_dict
from django_tenants.utils import schema_context
from twilio.request_validator import RequestValidator

from telephony import concurrency
from telephony.models import Call, PhoneNumber
from tenants.db import tenant_connection
from tests.conftest import Persona, unique_e164
from tests.telephony.test_voice_webhook import (  # noqa: F401  (_release_leases is an autouse fixture)
    Line,
    _release_leases,
    assert_stream,
    import_line,
    new_call_sid,
    post_twilio,
    ring,
    sign,
)


def status_params(line: Line, call: dict[str, str], status: str, **extra: str) -> dict[str, str]:
    params = {
        "CallSid": call["CallSid"],
        "AccountSid": line.twilio_sid,
        "From": call["From"],
        "To": call["To"],
        "Direction": call.get("Direction", "inbound"),
        "ApiVersion": "2010-04-01",
        "CallStatus": status,
        "CallbackSource": "call-progress-events",
        "SequenceNumber": "0",
        "Timestamp": "Sun, 22 Nov 2026 15:04:05 +0000",
    }
    params.update(extra)
    return params


def callback(
    line: Line,
    call: dict[str, str],
    status: str,
    *,
    token: str | None = None,
    signature: str | None = "sign",
    **extra: str,
) -> Any:
    """A status callback, signed with the number's token (or `token`), or with `signature` as given."""
    params = status_params(line, call, status, **extra)
    if signature == "sign":
        signature = sign("/twilio/status", params, token or line.token)
    return post_twilio("/twilio/status", params, signature)


def row(line: Line, twilio_call_sid: str) -> Call:
    with schema_context(line.schema):
        return Call.objects.get(twilio_call_sid=twilio_call_sid)


def snapshot(line: Line, twilio_call_sid: str) -> dict[str, Any]:
    call = row(line, twilio_call_sid)
    return {
        **model_to_dict(call),
        "created_at": call.created_at,
        "updated_at": call.updated_at,
        "started_at": call.started_at,
    }


@pytest.fixture
def line(alice: Persona, twilio: Any) -> Line:
    return import_line(alice, twilio)


@pytest.fixture
def call(line: Line) -> dict[str, str]:
    """A live inbound call, answered by the voice webhook (it holds a lease)."""
    response, params = ring(line)
    assert_stream(response, line)
    return params


def test_ringing_in_progress_completed(line: Line, call: dict[str, str]) -> None:
    assert callback(line, call, "ringing").status_code == 204
    ringing = row(line, call["CallSid"])
    assert ringing.status == Call.RINGING and ringing.answered_at is None and ringing.ended_at is None

    assert callback(line, call, "in-progress").status_code == 204
    answered = row(line, call["CallSid"])
    assert answered.status == Call.IN_PROGRESS and answered.answered_at is not None
    assert answered.ended_at is None and answered.duration_seconds is None
    assert concurrency.active_calls(line.schema) == 1

    assert callback(line, call, "completed", CallDuration="42").status_code == 204
    done = row(line, call["CallSid"])
    assert (done.status, done.duration_seconds) == (Call.COMPLETED, 42)
    assert done.answered_at == answered.answered_at
    assert done.ended_at is not None and done.ended_at >= done.answered_at
    assert concurrency.active_calls(line.schema) == 0  # the slot is given back


def test_the_same_event_twice_changes_nothing(line: Line, call: dict[str, str]) -> None:
    callback(line, call, "in-progress")
    before = snapshot(line, call["CallSid"])
    assert callback(line, call, "in-progress").status_code == 204
    assert snapshot(line, call["CallSid"]) == before

    callback(line, call, "completed", CallDuration="42")
    before = snapshot(line, call["CallSid"])
    assert callback(line, call, "completed", CallDuration="42").status_code == 204
    assert callback(line, call, "completed", CallDuration="99").status_code == 204
    assert snapshot(line, call["CallSid"]) == before


@pytest.mark.parametrize("late", ["ringing", "in-progress", "queued"])
def test_late_events_after_completed_never_move_it_backwards(line: Line, call: dict[str, str], late: str) -> None:
    callback(line, call, "ringing")
    callback(line, call, "completed", CallDuration="7")
    before = snapshot(line, call["CallSid"])
    assert callback(line, call, late).status_code == 204
    after = snapshot(line, call["CallSid"])
    assert after == before
    assert after["status"] == Call.COMPLETED and after["answered_at"] is None  # a late in-progress answers nothing
    assert concurrency.active_calls(line.schema) == 0  # and takes no slot back


def test_ringing_after_in_progress_is_ignored(line: Line, call: dict[str, str]) -> None:
    callback(line, call, "in-progress")
    before = snapshot(line, call["CallSid"])
    callback(line, call, "ringing")
    assert snapshot(line, call["CallSid"]) == before


def test_first_terminal_status_wins(line: Line, call: dict[str, str]) -> None:
    callback(line, call, "completed", CallDuration="3")
    before = snapshot(line, call["CallSid"])
    for other in ("failed", "busy", "no-answer", "canceled"):
        assert callback(line, call, other).status_code == 204
    assert snapshot(line, call["CallSid"]) == before


def test_a_repeated_completed_may_still_bring_the_duration(line: Line, call: dict[str, str]) -> None:
    callback(line, call, "completed")
    first = row(line, call["CallSid"])
    assert first.status == Call.COMPLETED and first.duration_seconds is None and first.ended_at is not None
    callback(line, call, "completed", CallDuration="12")
    again = row(line, call["CallSid"])
    assert again.duration_seconds == 12 and again.ended_at == first.ended_at


def test_unknown_status_value_is_ignored(line: Line, call: dict[str, str]) -> None:
    before = snapshot(line, call["CallSid"])
    assert callback(line, call, "exploded").status_code == 204
    assert snapshot(line, call["CallSid"]) == before


@pytest.mark.parametrize("how", ["missing", "garbage", "other-token", "tampered"])
def test_bad_signature_is_403_and_changes_nothing(line: Line, call: dict[str, str], how: str) -> None:
    before = snapshot(line, call["CallSid"])
    if how == "missing":
        response = callback(line, call, "completed", signature=None, CallDuration="42")
    elif how == "garbage":
        response = callback(line, call, "completed", signature="bm90IGEgc2lnbmF0dXJl", CallDuration="42")
    elif how == "other-token":
        response = callback(line, call, "completed", token="f" * 32, CallDuration="42")
    else:  # signed for `in-progress`, sent as `completed`
        signature = sign("/twilio/status", status_params(line, call, "in-progress", CallDuration="42"), line.token)
        response = callback(line, call, "completed", signature=signature, CallDuration="42")
    assert response.status_code == 403
    assert snapshot(line, call["CallSid"]) == before
    assert concurrency.active_calls(line.schema) == 1  # the lease is not released by a forgery


def test_signature_over_the_request_host_is_refused(line: Line, call: dict[str, str]) -> None:
    params = status_params(line, call, "completed", CallDuration="42")
    signature = RequestValidator(line.token).compute_signature("http://api.localhost/twilio/status", params)
    assert post_twilio("/twilio/status", params, signature).status_code == 403
    assert row(line, call["CallSid"]).status == Call.RINGING


def test_unknown_call_sid_is_204_and_nothing_happens(line: Line, call: dict[str, str]) -> None:
    before = snapshot(line, call["CallSid"])
    stray = {**call, "CallSid": new_call_sid()}
    assert callback(line, stray, "completed", CallDuration="42").status_code == 204
    with schema_context(line.schema):
        assert Call.objects.count() == 1
    assert snapshot(line, call["CallSid"]) == before
    assert concurrency.active_calls(line.schema) == 1


def test_callback_for_a_number_imported_nowhere_is_204(line: Line) -> None:
    stray = {"CallSid": new_call_sid(), "From": "+447700900123", "To": unique_e164()}
    assert callback(line, stray, "completed", CallDuration="42").status_code == 204
    with schema_context(line.schema):
        assert not Call.objects.exists()


def test_outbound_call_is_found_through_its_from_number(line: Line) -> None:
    """For an outbound call our number is `From`; the callee (`To`) is nobody's route."""
    with schema_context(line.schema):
        number = PhoneNumber.objects.get(phone_number=line.e164)
        outbound = Call.objects.create(
            twilio_call_sid=new_call_sid(),
            direction=Call.OUTBOUND,
            from_number=line.e164,
            to_number="+447700900555",
            phone_number=number,
            agent_id=line.agent_id,
            status=Call.QUEUED,
        )
    tenant_connection().set_schema_to_public()
    params = {
        "CallSid": outbound.twilio_call_sid,
        "From": line.e164,
        "To": "+447700900555",
        "Direction": "outbound-api",
    }
    for status in ("ringing", "in-progress"):
        assert callback(line, params, status).status_code == 204
        assert row(line, outbound.twilio_call_sid).status == status
    callback(line, params, "completed", CallDuration="61")
    done = row(line, outbound.twilio_call_sid)
    assert (done.status, done.duration_seconds) == (Call.COMPLETED, 61) and done.answered_at is not None


def test_a_rejected_call_stays_rejected(make_persona: Any, twilio: Any) -> None:
    line = import_line(make_persona("Solo", max_concurrent_calls=1), twilio)
    live, live_params = ring(line)
    assert_stream(live, line)
    _, refused = ring(line)
    assert row(line, refused["CallSid"]).status == Call.REJECTED
    before = snapshot(line, refused["CallSid"])
    for status in ("ringing", "completed"):  # Twilio reports the hang-up we asked for
        assert callback(line, refused, status, CallDuration="0").status_code == 204
    assert snapshot(line, refused["CallSid"]) == before
    assert concurrency.active_calls(line.schema) == 1  # the live call keeps its slot
    callback(line, live_params, "completed", CallDuration="30")
    assert concurrency.active_calls(line.schema) == 0


def test_duplicate_completed_with_a_malformed_duration_is_not_a_server_error(line: Line, call: dict[str, str]) -> None:
    callback(line, call, "completed")
    response = callback(line, call, "completed", CallDuration="12.5")
    assert response.status_code == 204
    assert row(line, call["CallSid"]).duration_seconds is None
