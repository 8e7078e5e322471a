"""Faults in the middle of a live call, injected for real: Twilio answering 5xx to the
hang-up or transfer, Deepgram refusing or dropping its sockets, a malformed frame that
makes the media consumer raise, playback marks that never come back.

Whatever breaks, the end path runs once: the transcript is saved, the call's slot is
given back, Deepgram's sockets are closed and the summary is queued; and the platform
itself ends the call (closing the media stream ends it at Twilio: nothing follows
<Connect>) instead of leaving the caller on a dead line.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from django_tenants.utils import schema_context

from agents.engine.conversation import FALLBACK_TRANSFER, HEARING_TROUBLE, TIME_LIMIT_GOODBYE
from agents.models import Agent
from standins.caller import CallRecording, Utterance
from telephony import concurrency
from telephony.models import Call
from tests.conftest import wait_for
from tests.telephony import test_live_call
from tests.telephony.test_live_call import _caller, _saved, simulate

line, claude = test_live_call.line, test_live_call.claude  # the same fixtures

TWILIO_CALL_UPDATES_FAIL = {"mode": "500", "methods": ["POST"], "path_contains": "/Calls/"}


def _assert_end_path_ran(
    line: dict[str, Any], providers: Any, rec: CallRecording, since: float, end_reason: str, summary: bool = True
) -> Call:
    """Saved, slot released, Deepgram's sockets closed, summary written (by the worker)."""
    call = _saved(line, rec.call_id, end_reason=end_reason, summary_status="done" if summary else "none")
    assert call.transcript and call.ended_at is not None and call.turns
    schema = line["persona"].account.schema_name
    wait_for(lambda: concurrency.active_calls(schema) == 0, timeout=5)

    def sockets_closed() -> bool:
        sockets = [
            c
            for c in providers["deepgram"].requests()
            if c["opened_at"] >= since and (c["kind"] == "speak" or c["tag"] == rec.call_id)
        ]
        return bool(sockets) and all(c["closed_at"] is not None for c in sockets)

    wait_for(sockets_closed, timeout=10)
    return call


def _ended_by_platform(rec: CallRecording, within_s: float) -> None:
    """The server closed the stream itself (the caller never hung up), and promptly."""
    assert rec.ended_by == "", rec.ended_by
    assert rec.stream_closed is not None and rec.stream_closed < within_s, rec.stream_closed


def test_twilio_failing_the_hang_up_still_ends_the_call(
    line, claude, asgi_server, providers, celery_worker, twilio
) -> None:
    since = time.time()
    twilio.configure(fail=TWILIO_CALL_UPDATES_FAIL)
    rec = simulate(
        asgi_server,
        providers,
        line,
        [Utterance("I'd like to book a cleaning"), Utterance("Thanks, goodbye")],
        _caller(),
        max_seconds=40,
    )
    assert rec.agent_texts[-1] == "Goodbye!"
    assert twilio.requests(path_contains=rec.call_sid)[-1]["status"] == 500  # the hang-up was tried
    _ended_by_platform(rec, within_s=30)
    assert rec.close_code == 1000
    call = _assert_end_path_ran(line, providers, rec, since, end_reason="agent_ended")
    assert [e["text"] for e in call.transcript][-2:] == ["Thanks, goodbye", "Goodbye!"]


def test_twilio_failing_a_transfer_ends_the_call_as_transfer_failed(
    line, claude, asgi_server, providers, celery_worker, twilio
) -> None:
    since = time.time()
    claude.fail_next(count=2, status=529)
    twilio.configure(fail=TWILIO_CALL_UPDATES_FAIL)
    rec = simulate(
        asgi_server,
        providers,
        line,
        [Utterance("I'd like to book a cleaning"), Utterance("Hello, can you hear me?")],
        _caller(),
        max_seconds=40,
    )
    assert rec.redirect_twiml == ""  # Twilio never took the <Dial>
    _ended_by_platform(rec, within_s=30)
    call = _assert_end_path_ran(line, providers, rec, since, end_reason="transfer_failed")
    assert (call.transcript[-1]["role"], call.transcript[-1]["text"]) == ("agent", FALLBACK_TRANSFER)


def test_max_call_length_ends_the_call_when_marks_never_return_and_the_hang_up_fails(
    line, claude, asgi_server, providers, celery_worker, twilio
) -> None:
    """The watchdog itself runs the hang-up here (no mark ever confirms the goodbye played);
    Twilio failing it must not kill the watchdog silently and leave the call up."""
    since = time.time()
    with schema_context(line["persona"].account.schema_name):
        Agent.objects.filter(id=line["agent"]["id"]).update(max_call_seconds=8)
    twilio.configure(fail=TWILIO_CALL_UPDATES_FAIL)
    rec = simulate(
        asgi_server,
        providers,
        line,
        [Utterance("I'd like to book a cleaning")],
        _caller(),
        echo_marks=False,
        hangup_grace_s=60,
        max_seconds=45,
    )
    _ended_by_platform(rec, within_s=30)
    call = _assert_end_path_ran(line, providers, rec, since, end_reason="max_duration")
    assert call.transcript[-1]["text"] == TIME_LIMIT_GOODBYE


def test_text_to_speech_refused_at_start_and_twilio_failing_still_ends_the_call(
    line, claude, asgi_server, providers, twilio
) -> None:
    """The greeting cannot be spoken (Deepgram refuses every TTS socket) and the fallback
    (Twilio <Say> + hang-up) fails too: the call must still end, and be recorded."""
    since = time.time()
    providers["deepgram"].refuse_next(count=4, status=503, kind="speak")  # the first try + 3 reconnects
    twilio.configure(fail=TWILIO_CALL_UPDATES_FAIL)
    rec = simulate(asgi_server, providers, line, [Utterance("Hello?")], _caller(), hangup_grace_s=60, max_seconds=45)
    assert rec.agent == []
    _ended_by_platform(rec, within_s=15)
    _assert_end_path_ran(line, providers, rec, since, end_reason="tts_unavailable", summary=False)


def test_speech_to_text_dropping_for_good_and_the_hang_up_failing(line, claude, asgi_server, providers, twilio) -> None:
    since = time.time()
    deepgram = providers["deepgram"]
    deepgram.drop_next(after_s=2.0, count=1, kind="listen")  # the call's STT socket drops...

    def refuse_reconnects() -> None:  # ...and cannot be reopened
        wait_for(lambda: any(c["kind"] == "listen" and c["opened_at"] >= since for c in deepgram.requests()))
        deepgram.refuse_next(count=3, status=503, kind="listen")

    refuser = threading.Thread(target=refuse_reconnects)
    refuser.start()
    twilio.configure(fail=TWILIO_CALL_UPDATES_FAIL)
    rec = simulate(asgi_server, providers, line, [], _caller(), hangup_grace_s=60, max_seconds=45)
    refuser.join()
    assert rec.agent_texts[-1] == HEARING_TROUBLE
    _ended_by_platform(rec, within_s=30)
    _assert_end_path_ran(line, providers, rec, since, end_reason="stt_unavailable", summary=False)


def test_a_malformed_frame_mid_call_still_saves_the_call(line, claude, asgi_server, providers, celery_worker) -> None:
    since = time.time()
    rec = simulate(
        asgi_server,
        providers,
        line,
        [Utterance("I'd like to book a cleaning")],
        _caller(),
        raw_frames=[(12.0, "{not json")],
        hangup_grace_s=60,
        max_seconds=45,
    )
    assert rec.agent_texts == ["Thanks for calling Smile Dental Croydon!", "Of course. What day would suit you?"]
    _ended_by_platform(rec, within_s=25)
    assert rec.close_code == 1011
    call = _assert_end_path_ran(line, providers, rec, since, end_reason="stream_error")
    assert [(e["role"], e["text"]) for e in call.transcript] == [
        ("agent", "Thanks for calling Smile Dental Croydon!"),
        ("caller", "I'd like to book a cleaning"),
        ("agent", "Of course. What day would suit you?"),
    ]
