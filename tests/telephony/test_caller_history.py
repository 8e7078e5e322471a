"""A caller's earlier calls belong to one clinic. In the reseller model one account serves
many separate businesses with the same agent: a patient of clinic A who calls clinic B
must not have A's conversation put in B's prompt. Real calls through a real server; the
summaries are written by a real Celery worker."""

from __future__ import annotations

from typing import Any

import pytest
from django_tenants.utils import schema_context

from standins.caller import Utterance
from telephony.models import Call
from tests.conftest import unique_e164, wait_for
from tests.telephony.test_live_call import _caller, claude, line, simulate  # noqa: F401  (fixtures, used by name)

SUMMARY = "Jane asked to book a cleaning next Tuesday."


@pytest.fixture
def clinic(line: dict[str, Any]) -> dict[str, Any]:  # noqa: F811  (test_live_call's fixture)
    """Alice's clinic: a customer, an agent, an imported number (test_live_call's `line`)."""
    return line


@pytest.fixture
def scripted_claude(claude: Any) -> Any:  # noqa: F811  (test_live_call's fixture)
    """The Anthropic stand-in, scripted as in test_live_call."""
    return claude


def _another_number(clinic: dict[str, Any], twilio: Any, customer: dict[str, Any] | None) -> dict[str, Any]:
    """Another number on the same agent (and Twilio account), for `customer` or none."""
    e164 = unique_e164()
    twilio.add_number(clinic["sid"], e164)
    body = {
        "phone_number": e164,
        "twilio_sid": clinic["sid"],
        "twilio_token": clinic["token"],
        "agent_id": clinic["agent"]["id"],
    }
    if customer is not None:
        body["customer_id"] = customer["id"]
    response = clinic["persona"].client().post("/v1/phone-numbers", body)
    assert response.status_code == 201, response.content
    return {**clinic, "e164": e164, "customer": customer}


def _system_prompt_of(server: str, providers: Any, clinic: dict[str, Any], scripted_claude: Any, caller: str) -> str:
    """Call the number and say goodbye; the system prompt Claude was given for it."""
    before = len(scripted_claude.requests())
    rec = simulate(server, providers, clinic, [Utterance("Thanks, goodbye")], caller)
    assert rec.agent_texts[-1] == "Goodbye!"
    [system] = {r["system_text"] for r in scripted_claude.requests()[before:] if caller in (r.get("system_text") or "")}
    return system


def test_earlier_calls_stay_with_the_clinic_that_took_them(
    clinic: dict[str, Any], scripted_claude: Any, asgi_server: str, providers: Any, celery_worker: Any
) -> None:
    client = clinic["persona"].client()
    other_clinic = client.post("/v1/customers", {"name": "Bright Bite Leeds", "timezone": "Europe/London"}).json()
    clinic_b = _another_number(clinic, providers["twilio"], other_clinic)
    no_clinic = _another_number(clinic, providers["twilio"], None)
    caller = _caller()

    # The caller phones clinic A (Smile Dental Croydon); the call gets its summary.
    first = simulate(
        asgi_server, providers, clinic, [Utterance("I'd like to book a cleaning"), Utterance("Thanks, goodbye")], caller
    )
    with schema_context(clinic["persona"].account.schema_name):
        wait_for(lambda: Call.objects.filter(id=first.call_id, summary_status="done").exists(), timeout=30)
        assert Call.objects.get(id=first.call_id).summary == SUMMARY

    # Clinic B, on the same account and agent, knows nothing of it; nor does a number of
    # the account that serves no clinic.
    for other in (clinic_b, no_clinic):
        system = _system_prompt_of(asgi_server, providers, other, scripted_claude, caller)
        assert SUMMARY not in system and "earlier calls" not in system

    # Clinic A does, as quoted data.
    system = _system_prompt_of(asgi_server, providers, clinic, scripted_claude, caller)
    assert f">{SUMMARY}</call>\n</earlier_calls>" in system
