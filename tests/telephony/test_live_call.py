"""End to end through a real server: Twilio (the simulator) -> uvicorn -> the media
consumer and engine -> Deepgram and Anthropic stand-ins through the real SDKs -> back.
A real Celery worker writes the post-call summaries."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import aiohttp
import pytest
from django.conf import settings
from django_tenants.utils import schema_context
from twilio.request_validator import RequestValidator

from agents.engine.conversation import FALLBACK_RETRY
from standins.caller import CallRecording, SimulatedCall, Utterance
from telephony.models import Call
from telephony.services.calls import stream_url
from tests.conftest import Persona, unique_e164, wait_for

PROMPT = "You are the receptionist of {{clinic_name}} in {{city}}. Dentist on duty: {{dentist}}."
SUMMARY_JSON = json.dumps(
    {
        "summary": "Jane asked to book a cleaning next Tuesday.",
        "extraction": {"caller_name": "Jane", "reason_for_calling": "cleaning", "appointment_wanted": "Tuesday"},
    }
)
_callers = itertools.count(100)


def _caller() -> str:
    return f"+4477009{next(_callers):05d}"


@pytest.fixture
def line(alice: Persona, providers: Any) -> dict[str, Any]:
    """Alice's clinic: a customer, an agent template, an imported number."""
    twilio = providers["twilio"]
    client = alice.client()
    customer = client.post(
        "/v1/customers",
        {
            "name": "Smile Dental Croydon",
            "timezone": "Europe/London",
            "transfer_number": "+442011119999",
            "variables": {"city": "Croydon", "dentist": "Dr Patel"},
        },
    ).json()
    agent = client.post(
        "/v1/agents",
        {
            "name": "Ringback",
            "system_prompt": PROMPT,
            "first_message": "Thanks for calling {{clinic_name}}!",
            "silence_timeout_seconds": 30,
        },
    ).json()
    sid, token = twilio.add_account()
    e164 = unique_e164()
    twilio.add_number(sid, e164)
    response = client.post(
        "/v1/phone-numbers",
        {
            "phone_number": e164,
            "twilio_sid": sid,
            "twilio_token": token,
            "agent_id": agent["id"],
            "customer_id": customer["id"],
        },
    )
    assert response.status_code == 201, response.content
    return {"e164": e164, "sid": sid, "token": token, "agent": agent, "customer": customer, "persona": alice}


@pytest.fixture
def claude(providers: Any) -> Any:
    standin = providers["anthropic"]
    standin.set_script(
        [
            {"system_contains": "summarise phone calls", "text": SUMMARY_JSON},
            {"match": "book", "text": "Of course. What day would suit you?"},
            {
                "match": "opening hours",
                "text": "Sure. We are open from nine in the morning until half past five "
                "in the evening, Monday to Friday, and on Saturday mornings too.",
            },
            {"match": "goodbye", "text": "Goodbye!", "tool": {"name": "end_call", "input": {}}},
        ]
    )
    return standin


def simulate(
    server: str, providers: Any, line: dict[str, Any], script: list[Utterance], caller: str, **kwargs: Any
) -> CallRecording:
    call = SimulatedCall(
        server_url=server,
        public_base_url=settings.PUBLIC_BASE_URL,
        twilio_url=providers["twilio"].base_url,
        account_sid=line["sid"],
        auth_token=line["token"],
        from_number=caller,
        to_number=line["e164"],
        script=script,
        **kwargs,
    )
    return asyncio.run(call.run())


def _saved(line: dict[str, Any], call_id: str, **conditions: Any) -> Call:
    with schema_context(line["persona"].account.schema_name):
        return wait_for(lambda: Call.objects.filter(id=call_id, status="completed", **conditions).first(), timeout=30)


def _claude_requests(claude: Any, caller: str) -> list[dict[str, Any]]:
    return [r for r in claude.requests() if caller in (r.get("system_text") or "")]


def test_a_conversation_end_to_end(line, claude, asgi_server, providers, celery_worker) -> None:
    caller = _caller()
    rec = simulate(
        asgi_server, providers, line, [Utterance("I'd like to book a cleaning"), Utterance("Thanks, goodbye")], caller
    )

    # What the caller heard: the greeting with the clinic's name, then two answers.
    assert rec.agent_texts == [
        "Thanks for calling Smile Dental Croydon!",
        "Of course. What day would suit you?",
        "Goodbye!",
    ]
    assert rec.ended_by == "agent" and rec.clears == 0 and rec.gaps == 0
    assert all(t.latency_ms is not None for t in rec.turns)

    # Claude got the clinic's context, rendered from the customer's variables.
    requests = _claude_requests(claude, caller)
    assert len(requests) == 2
    system = requests[0]["system_text"]
    assert "receptionist of Smile Dental Croydon in Croydon. Dentist on duty: Dr Patel." in system
    assert "{{" not in system
    assert requests[1]["messages"][-1]["content"] == "Thanks, goodbye"
    assert {"role": "assistant", "content": "Of course. What day would suit you?"} in requests[1]["messages"]

    # end_call hung up through Twilio's REST API.
    twilio_call = providers["twilio"].call(rec.call_sid)
    assert twilio_call["status"] == "completed"
    assert [u["params"].get("Status") for u in twilio_call["updates"]] == ["completed"]

    # Transcript, per-turn latency and the summary are saved.
    call = _saved(line, rec.call_id, summary_status="done")
    assert [(e["role"], e["text"]) for e in call.transcript] == [
        ("agent", "Thanks for calling Smile Dental Croydon!"),
        ("caller", "I'd like to book a cleaning"),
        ("agent", "Of course. What day would suit you?"),
        ("caller", "Thanks, goodbye"),
        ("agent", "Goodbye!"),
    ]
    assert call.end_reason == "agent_ended"
    answered = [t for t in call.turns if t["caller_text"]]
    assert len(answered) == 2
    for turn in answered:
        marks = [
            turn[k]
            for k in (
                "caller_stopped",
                "stt_final",
                "llm_first_token",
                "first_sentence",
                "tts_first_byte",
                "first_frame_sent",
                "first_mark_ack",
            )
        ]
        assert all(m is not None for m in marks), turn
        assert marks[1] <= marks[2] <= marks[3] <= marks[5] <= marks[6], turn
        assert turn["interrupted"] is False and turn["heard_text"] == turn["agent_text"]
    assert call.summary == "Jane asked to book a cleaning next Tuesday."
    assert call.extraction == {"caller_name": "Jane", "reason_for_calling": "cleaning", "appointment_wanted": "Tuesday"}

    # The API shows it.
    detail = line["persona"].client().get(f"/v1/calls/{rec.call_id}").json()
    assert detail["status"] == "completed" and len(detail["transcript"]) == 5

    # A second call from the same caller carries the first call's summary.
    second = simulate(asgi_server, providers, line, [Utterance("Thanks, goodbye")], caller)
    assert second.agent_texts[-1] == "Goodbye!"
    system = _claude_requests(claude, caller)[-1]["system_text"]
    assert "earlier calls" in system and "Jane asked to book a cleaning next Tuesday." in system


def test_barge_in_clears_audio_and_keeps_only_what_was_heard(line, claude, asgi_server, providers) -> None:
    caller = _caller()
    rec = simulate(
        asgi_server,
        providers,
        line,
        [
            Utterance("What are your opening hours?"),
            Utterance("Actually I need to cancel my appointment", when="barge_in", pause_s=1.5),
            Utterance("Thanks, goodbye"),
        ],
        caller,
    )
    assert rec.clears >= 1
    interrupted = [a for a in rec.agent if a.cleared]
    assert interrupted and interrupted[0].text.startswith("Sure.")
    assert "Saturday" not in interrupted[0].text  # the rest never played

    call = _saved(line, rec.call_id)
    turn = next(t for t in call.turns if t["caller_text"] == "What are your opening hours?")
    assert turn["interrupted"] is True and turn["heard_text"] == "Sure."
    agent_entry = next(e for e in call.transcript if e.get("interrupted"))
    assert agent_entry["text"] == "Sure."
    # Claude's next turn sees only what the caller heard.
    after = next(
        r
        for r in _claude_requests(claude, caller)
        if r["messages"][-1]["content"].startswith("Actually I need to cancel")
    )
    assistant = [m["content"] for m in after["messages"] if m["role"] == "assistant"]
    assert assistant[-1] == "Sure."
    assert not any("Saturday" in str(m["content"]) for m in after["messages"])
    # The TTS socket was told to drop what it had not sent.
    tts = [c for c in providers["deepgram"].requests() if c["kind"] == "speak" and c["clears"]]
    assert tts


def test_backchannel_does_not_interrupt(line, claude, asgi_server, providers) -> None:
    rec = simulate(
        asgi_server,
        providers,
        line,
        [
            Utterance("What are your opening hours?"),
            Utterance("mhm", when="barge_in", pause_s=1.0),
            Utterance("Thanks, goodbye"),
        ],
        _caller(),
    )
    assert rec.clears == 0
    assert any("Saturday" in text for text in rec.agent_texts)


def test_deepgram_dropping_mid_call_reconnects(line, claude, asgi_server, providers) -> None:
    deepgram = providers["deepgram"]
    deepgram.drop_next(after_s=1.0, count=1, kind="listen")
    rec = simulate(
        asgi_server,
        providers,
        line,
        [Utterance("I'd like to book a cleaning"), Utterance("Thanks, goodbye")],
        _caller(),
    )
    assert rec.agent_texts[1:] == ["Of course. What day would suit you?", "Goodbye!"]
    listens = [c for c in deepgram.requests() if c["kind"] == "listen" and c["tag"] == rec.call_id]
    assert len(listens) == 2
    assert _saved(line, rec.call_id).end_reason == "agent_ended"


def test_claude_failing_mid_turn_gets_a_fallback_line_then_recovers(line, claude, asgi_server, providers) -> None:
    claude.error_mid_stream(after_tokens=1, count=1)
    rec = simulate(
        asgi_server,
        providers,
        line,
        [
            Utterance("I'd like to book a cleaning"),
            Utterance("I'd like to book a cleaning please"),
            Utterance("Thanks, goodbye"),
        ],
        _caller(),
    )
    assert FALLBACK_RETRY in rec.agent_texts[1]
    assert rec.agent_texts[2:] == ["Of course. What day would suit you?", "Goodbye!"]
    call = _saved(line, rec.call_id)
    failed = next(t for t in call.turns if t["error"])
    assert "overloaded" in failed["error"]


def test_claude_down_for_good_transfers_the_caller(line, claude, asgi_server, providers) -> None:
    claude.fail_next(count=2, status=529)
    rec = simulate(
        asgi_server,
        providers,
        line,
        [Utterance("I'd like to book a cleaning"), Utterance("Hello, can you hear me?")],
        _caller(),
    )
    assert rec.ended_by == "agent"
    assert "<Dial>+442011119999</Dial>" in rec.redirect_twiml
    call = _saved(line, rec.call_id)
    assert call.end_reason == "transferred_llm_unavailable"
    assert call.transcript[-1]["role"] == "agent"


def test_tampered_stream_token_is_refused(line, claude, asgi_server, providers) -> None:
    rec = simulate(asgi_server, providers, line, [Utterance("hello")], _caller(), tamper_token=True, max_seconds=5)
    assert rec.close_code == 4403 and rec.agent == []
    with schema_context(line["persona"].account.schema_name):
        assert Call.objects.get(id=rec.call_id).answered_at is None


def test_replayed_stream_token_and_bad_upgrade_signature_are_refused(line, claude, asgi_server, providers) -> None:
    rec = simulate(asgi_server, providers, line, [Utterance("Thanks, goodbye")], _caller())
    assert rec.agent_texts[-1] == "Goodbye!"

    async def open_stream(params: dict[str, str]) -> int | None:
        url = asgi_server.replace("http://", "ws://") + "/media"
        signature = RequestValidator(line["token"]).compute_signature(stream_url(), {})
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(url, headers={"X-Twilio-Signature": signature}) as ws,
        ):
            await ws.send_str(
                json.dumps({"event": "start", "streamSid": "MZ" + "0" * 32, "start": {"customParameters": params}})
            )
            await ws.receive(timeout=10)
            return ws.close_code

    # The same token again (a replay, correctly signed), after the call it was issued for.
    assert asyncio.run(open_stream(rec.stream_params)) == 4403

    # A fresh, valid token, but the upgrade signed with another auth token.
    forged = simulate(
        asgi_server, providers, line, [Utterance("hello")], _caller(), upgrade_auth_token="f" * 32, max_seconds=5
    )
    assert forged.close_code == 4403 and forged.agent == []
    # (An unsigned upgrade is refused at the handshake: tests/telephony/test_media_socket.py.)


def test_keypad_digits_enter_the_transcript(line, claude, asgi_server, providers) -> None:
    caller = _caller()
    rec = simulate(asgi_server, providers, line, [Utterance(dtmf="12"), Utterance("Thanks, goodbye")], caller)
    assert rec.agent_texts[-1] == "Goodbye!"
    keypad = [r for r in _claude_requests(claude, caller) if "(keypad: 12)" in str(r["messages"])]
    assert keypad
    call = _saved(line, rec.call_id)
    assert {"role": "caller", "text": "(keypad: 12)", "dtmf": "12"} in [
        {k: e[k] for k in ("role", "text", "dtmf") if k in e} for e in call.transcript
    ]


def test_silence_gets_a_reprompt_then_a_polite_goodbye(line, claude, asgi_server, providers) -> None:
    line["persona"].client().patch(f"/v1/agents/{line['agent']['id']}", {"silence_timeout_seconds": 3})
    rec = simulate(asgi_server, providers, line, [], _caller(), hangup_grace_s=30)
    assert rec.agent_texts[1:] == ["Are you still there?", "I haven't heard anything, so I'll let you go. Goodbye!"]
    assert rec.ended_by == "agent"
    assert _saved(line, rec.call_id).end_reason == "silence"
