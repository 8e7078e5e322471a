"""The periodic drift check, and repairing a number whose webhooks were changed in Twilio."""

from __future__ import annotations

from django.conf import settings

from telephony.tasks import check_all_webhooks
from telephony.twilio_client import make_client
from tests.conftest import Persona, assert_error, unique_e164, wait_for


def _import(persona: Persona, twilio) -> tuple[str, str, str]:
    agent = persona.client().post("/v1/agents", {"name": "Desk"}).json()["id"]
    sid, token = twilio.add_account()
    e164 = unique_e164()
    twilio.add_number(sid, e164)
    body = {"phone_number": e164, "twilio_sid": sid, "twilio_token": token, "agent_id": agent}
    assert persona.client().post("/v1/phone-numbers", body).status_code == 201
    return e164, sid, token


def _status(persona: Persona, e164: str) -> str:
    return persona.client().get(f"/v1/phone-numbers/{e164}").json()["webhook_status"]


def test_drift_is_detected_by_the_periodic_job_and_repaired(celery_worker, alice: Persona, twilio) -> None:
    e164, sid, token = _import(alice, twilio)
    untouched, _, _ = _import(alice, twilio)
    # Someone points the number elsewhere in the Twilio console.
    console = make_client(sid, token, settings.TWILIO_API_BASE_URL)
    number_sid = twilio.get_number(e164)["sid"]
    console.incoming_phone_numbers(number_sid).update(voice_url="https://other-system.example.com/voice")

    check_all_webhooks.delay()
    wait_for(lambda: _status(alice, e164) == "drifted", timeout=30)
    assert _status(alice, untouched) == "ok"

    repaired = alice.client().post(f"/v1/phone-numbers/{e164}/repair", {})
    assert repaired.status_code == 200 and repaired.json()["webhook_status"] == "ok"
    assert twilio.get_number(e164)["voice_url"] == f"{settings.PUBLIC_BASE_URL}/twilio/voice"


def test_number_released_in_twilio_is_marked_missing(celery_worker, alice: Persona, twilio) -> None:
    e164, _, _ = _import(alice, twilio)
    twilio.remove_number(e164)
    check_all_webhooks.delay()
    wait_for(lambda: _status(alice, e164) == "missing", timeout=30)


def test_repair_during_an_outage_changes_nothing(alice: Persona, twilio) -> None:
    e164, _, _ = _import(alice, twilio)
    twilio.configure(fail={"mode": "500"})
    assert_error(
        alice.client().post(f"/v1/phone-numbers/{e164}/repair", {}), 502, "provider_error", "provider_unavailable"
    )
