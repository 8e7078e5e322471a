"""End to end through a real server: Twilio (simulated) -> uvicorn -> the engine ->
Deepgram and Anthropic stand-ins through the real SDKs, and back."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.conf import settings
from django_tenants.utils import schema_context

from standins.caller import SimulatedCall, Utterance
from telephony.models import Call
from tests.conftest import Persona, unique_e164, wait_for

PROMPT = "You are the receptionist of {{clinic_name}} in {{city}}. Dentist on duty: {{dentist}}."


@pytest.fixture
def clinic_line(alice: Persona, providers: Any) -> dict[str, Any]:
    """Alice's clinic: a customer, an agent template, and an imported number."""
    twilio = providers["twilio"]
    client = alice.client()
    customer = client.post("/v1/customers", {
        "name": "Smile Dental Croydon", "timezone": "Europe/London", "transfer_number": "+442011119999",
        "variables": {"city": "Croydon", "dentist": "Dr Patel"}}).json()
    agent = client.post("/v1/agents", {"name": "Ringback", "system_prompt": PROMPT,
                                       "first_message": "Thanks for calling {{clinic_name}}!",
                                       "silence_timeout_seconds": 30}).json()
    sid, token = twilio.add_account()
    e164 = unique_e164()
    twilio.add_number(sid, e164)
    response = client.post("/v1/phone-numbers", {"phone_number": e164, "twilio_sid": sid, "twilio_token": token,
                                                 "agent_id": agent["id"], "customer_id": customer["id"]})
    assert response.status_code == 201, response.content
    return {"e164": e164, "sid": sid, "token": token, "agent": agent, "customer": customer}


def simulate(asgi_server: str, providers: Any, line: dict[str, Any], script: list[Utterance],
             caller: str = "+447700900123", **kwargs: Any):
    call = SimulatedCall(server_url=asgi_server, public_base_url=settings.PUBLIC_BASE_URL,
                         twilio_url=providers["twilio"].base_url, account_sid=line["sid"], auth_token=line["token"],
                         from_number=caller, to_number=line["e164"], script=script, **kwargs)
    return asyncio.run(call.run())


def test_smoke(alice, clinic_line, asgi_server, providers, celery_worker) -> None:
    providers["anthropic"].set_script([
        {"match": "book", "text": "Of course. What day would suit you?"},
        {"match": "goodbye", "text": "Goodbye!", "tool": {"name": "end_call", "input": {}}},
    ])
    rec = simulate(asgi_server, providers, clinic_line,
                   [Utterance("I'd like to book a cleaning"), Utterance("Thanks, goodbye")])
    print(rec.agent, rec.turns, rec.ended_by)
    with schema_context(alice.account.schema_name):
        call = wait_for(lambda: Call.objects.filter(id=rec.call_id, status="completed").first())
        print(call.status, call.end_reason, call.transcript, call.turns)
