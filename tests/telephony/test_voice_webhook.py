"""POST /twilio/voice: Twilio's webhook for an inbound call, signed for real.

The number is imported through the API (so its route, Twilio account and auth token are
the product's own), and every request is signed the way Twilio signs it: HMAC-SHA1 with
the number's Twilio auth token over PUBLIC_BASE_URL + path and the sorted form fields.
"""

from __future__ import annotations

import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlencode

import pytest
import redis
from django.conf import settings
from django.test import Client
from django_tenants.utils import schema_context
from twilio.request_validator import RequestValidator

from telephony import concurrency, stream_tokens
from telephony.models import Call
from tenants.db import tenant_connection
from tests.conftest import Persona, unique_e164

CALLER = "+447700900123"


# --- helpers ---------------------------------------------------------------------------


@dataclass
class Line:
    """A number of the persona's own Twilio account, imported onto one of its agents."""

    persona: Persona
    e164: str
    twilio_sid: str
    token: str
    agent_id: str
    customer_id: str

    @property
    def schema(self) -> str:
        return self.persona.account.schema_name


def import_line(persona: Persona, twilio: Any) -> Line:
    client = persona.client()
    agent_id = client.post("/v1/agents", {"name": "Front desk"}).json()["id"]
    customer_id = client.post("/v1/customers", {"name": "Smile Dental"}).json()["id"]
    sid, token = twilio.add_account()
    e164 = unique_e164()
    twilio.add_number(sid, e164)
    response = client.post(
        "/v1/phone-numbers",
        {
            "phone_number": e164,
            "twilio_sid": sid,
            "twilio_token": token,
            "agent_id": agent_id,
            "customer_id": customer_id,
        },
    )
    assert response.status_code == 201, response.content
    tenant_connection().set_schema_to_public()  # the API left the connection in the account's schema
    return Line(persona, e164, sid, token, agent_id, customer_id)


def new_call_sid() -> str:
    return f"CA{uuid.uuid4().hex}"


def sign(path: str, params: dict[str, str], token: str) -> str:
    return RequestValidator(token).compute_signature(f"{settings.PUBLIC_BASE_URL}{path}", params)


def post_twilio(path: str, params: dict[str, str], signature: str | None) -> Any:
    """POST as Twilio does: form-encoded, X-Twilio-Signature (unless None)."""
    headers: dict[str, Any] = {} if signature is None else {"HTTP_X_TWILIO_SIGNATURE": signature}
    return Client(HTTP_HOST="api.localhost").post(
        path, urlencode(params), content_type="application/x-www-form-urlencoded", **headers
    )


def inbound_params(line: Line, call_sid: str | None = None, caller: str = CALLER) -> dict[str, str]:
    return {
        "CallSid": call_sid or new_call_sid(),
        "AccountSid": line.twilio_sid,
        "From": caller,
        "To": line.e164,
        "Caller": caller,
        "Called": line.e164,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
        "FromCountry": "GB",
        "ToCountry": "GB",
    }


def ring(line: Line, call_sid: str | None = None, caller: str = CALLER) -> tuple[Any, dict[str, str]]:
    """A correctly signed inbound call to the line."""
    params = inbound_params(line, call_sid, caller)
    return post_twilio("/twilio/voice", params, sign("/twilio/voice", params, line.token)), params


def hang_up(line: Line, params: dict[str, str], duration: int = 5) -> None:
    """Twilio's signed `completed` status callback for a call: releases its lease."""
    callback = {
        **{k: params[k] for k in ("CallSid", "AccountSid", "From", "To", "Direction", "ApiVersion")},
        "CallStatus": "completed",
        "CallDuration": str(duration),
        "SequenceNumber": "0",
        "CallbackSource": "call-progress-events",
    }
    response = post_twilio("/twilio/status", callback, sign("/twilio/status", callback, line.token))
    assert response.status_code == 204, response.content


def parse_twiml(response: Any) -> ET.Element:
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/xml")
    root = ET.fromstring(response.content)
    assert root.tag == "Response"
    return root


def assert_stream(response: Any, line: Line) -> str:
    """TwiML that connects the call to our media stream; returns the call id it names."""
    root = parse_twiml(response)
    assert [child.tag for child in root] == ["Connect"]
    streams = root.findall("./Connect/Stream")
    assert len(streams) == 1
    url = streams[0].get("url")
    assert url == "wss://voice.example.test/media" and "?" not in url
    parameters = {p.get("name", ""): p.get("value", "") for p in streams[0].findall("Parameter")}
    assert set(parameters) == {"call_id", "token"} and all(parameters.values())
    # The token is ours, for this call, and names the account's schema.
    grant = stream_tokens.verify(parameters["token"], call_id=parameters["call_id"])
    assert grant.schema_name == line.schema
    return parameters["call_id"]


def assert_say_and_hang_up(response: Any) -> str:
    root = parse_twiml(response)
    assert [child.tag for child in root] == ["Say", "Hangup"]
    say = root.find("Say")
    assert say is not None and say.text
    assert root.find("Connect") is None
    return say.text


def calls_in(schema: str) -> list[Call]:
    with schema_context(schema):
        return list(Call.objects.select_related("phone_number"))


# --- fixtures --------------------------------------------------------------------------


def _members(r: redis.Redis, key: str) -> list[bytes]:
    # Without withscores, ZRANGE answers the members (bytes: the client does not decode).
    return cast("list[bytes]", r.zrange(key, 0, -1))


@pytest.fixture(autouse=True)
def _release_leases() -> Iterator[None]:
    """Drop any lease a test leaves in Redis (only the call ids it added), so the
    platform-wide count other tests see is unchanged."""
    r = redis.Redis.from_url(settings.REDIS_URL)
    platform = f"{settings.CALL_LEASE_PREFIX}:platform"
    before = set(_members(r, platform))
    yield
    added = set(_members(r, platform)) - before
    if added:
        r.zrem(platform, *added)
        for key in r.scan_iter(f"{settings.CALL_LEASE_PREFIX}:account:*"):
            r.zrem(key, *added)


@pytest.fixture
def line(alice: Persona, twilio: Any) -> Line:
    return import_line(alice, twilio)


# --- tests -----------------------------------------------------------------------------


def test_signed_inbound_call_connects_the_stream_and_records_the_call(line: Line, bob: Persona) -> None:
    response, params = ring(line)
    call_id = assert_stream(response, line)
    [call] = calls_in(line.schema)
    assert call.id == call_id and call.twilio_call_sid == params["CallSid"]
    assert (call.status, call.direction) == (Call.RINGING, Call.INBOUND)
    assert (call.from_number, call.to_number) == (CALLER, line.e164)
    assert (call.agent_id, call.customer_id) == (line.agent_id, line.customer_id)
    assert call.phone_number is not None and call.phone_number.phone_number == line.e164
    assert call.rejection_reason == "" and call.ended_at is None
    assert concurrency.active_calls(line.schema) == 1
    assert calls_in(bob.account.schema_name) == []  # written in the number's account only
    hang_up(line, params)
    assert concurrency.active_calls(line.schema) == 0


def _tampered(params: dict[str, str], line: Line) -> str:
    # Signed over other values than those sent (a caller ID swapped in transit).
    return sign("/twilio/voice", {**params, "From": "+15005550006"}, line.token)


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param(lambda params, line: None, id="missing"),
        pytest.param(lambda params, line: "", id="empty"),
        pytest.param(lambda params, line: "bm90IGEgc2lnbmF0dXJl", id="garbage"),
        pytest.param(_tampered, id="tampered-params"),
        pytest.param(
            lambda params, line: RequestValidator(line.token).compute_signature(
                "http://api.localhost/twilio/voice", params
            ),
            id="signed-for-the-request-host",
        ),
        pytest.param(lambda params, line: sign("/twilio/status", params, line.token), id="signed-for-another-path"),
    ],
)
def test_bad_or_missing_signature_is_403_and_writes_nothing(line: Line, signature: Any) -> None:
    params = inbound_params(line)
    response = post_twilio("/twilio/voice", params, signature(params, line))
    assert response.status_code == 403
    assert b"<Connect" not in response.content
    assert calls_in(line.schema) == []
    assert concurrency.active_calls(line.schema) == 0


def test_signature_made_with_another_token_is_403(line: Line, twilio: Any, make_persona: Any) -> None:
    # Another Twilio account's real token (here: another Nixflex account's number's).
    other = import_line(make_persona("Mallory"), twilio)
    params = inbound_params(line)
    response = post_twilio("/twilio/voice", params, sign("/twilio/voice", params, other.token))
    assert response.status_code == 403
    assert calls_in(line.schema) == [] and calls_in(other.schema) == []


def test_signed_but_for_another_twilio_account_is_403(line: Line) -> None:
    # A valid signature does not make the call the number's: AccountSid must own it.
    params = {**inbound_params(line), "AccountSid": f"AC{uuid.uuid4().hex}"}
    response = post_twilio("/twilio/voice", params, sign("/twilio/voice", params, line.token))
    assert response.status_code == 403
    assert calls_in(line.schema) == []


def test_same_call_sid_twice_is_one_call(line: Line) -> None:
    call_sid = new_call_sid()
    first, params = ring(line, call_sid)
    second, _ = ring(line, call_sid)
    call_id = assert_stream(first, line)
    assert assert_stream(second, line) == call_id
    assert [c.id for c in calls_in(line.schema)] == [call_id]
    assert concurrency.active_calls(line.schema) == 1  # one lease, not two
    hang_up(line, params)


def test_unknown_number_says_so_and_hangs_up_writing_nothing(line: Line, twilio: Any) -> None:
    # A number that is in a Twilio account but imported nowhere.
    stray = unique_e164()
    twilio.add_number(line.twilio_sid, stray)
    params = {**inbound_params(line), "To": stray, "Called": stray}
    response = post_twilio("/twilio/voice", params, sign("/twilio/voice", params, line.token))
    assert "not in service" in assert_say_and_hang_up(response)
    assert calls_in(line.schema) == []
    assert concurrency.active_calls(line.schema) == 0


def test_number_deleted_from_the_account_is_not_in_service(line: Line) -> None:
    assert line.persona.client().delete(f"/v1/phone-numbers/{line.e164}").status_code == 200
    response, _ = ring(line)
    assert_say_and_hang_up(response)
    assert calls_in(line.schema) == []


def test_account_concurrency_limit_rejects_the_second_live_call(make_persona: Any, twilio: Any) -> None:
    line = import_line(make_persona("Solo", max_concurrent_calls=1), twilio)
    first, first_params = ring(line, caller="+447700900001")
    first_id = assert_stream(first, line)

    second, second_params = ring(line, caller="+447700900002")
    assert "busy" in assert_say_and_hang_up(second)
    others = [c for c in calls_in(line.schema) if c.id != first_id]
    assert len(others) == 1
    rejected = others[0]
    assert rejected.twilio_call_sid == second_params["CallSid"]
    assert (rejected.status, rejected.rejection_reason) == (Call.REJECTED, "concurrent_call_limit")
    assert rejected.end_reason == "account_limit" and rejected.ended_at is not None
    assert concurrency.active_calls(line.schema) == 1
    # Twilio retrying the rejected call's webhook gets the same answer, not a slot.
    again, _ = ring(line, second_params["CallSid"], caller="+447700900002")
    assert_say_and_hang_up(again)
    assert len(calls_in(line.schema)) == 2

    hang_up(line, first_params)  # the first call ends: its slot is free again
    assert concurrency.active_calls(line.schema) == 0
    third, third_params = ring(line, caller="+447700900003")
    third_id = assert_stream(third, line)
    with schema_context(line.schema):
        assert Call.objects.get(id=third_id).status == Call.RINGING
        assert Call.objects.get(id=first_id).status == Call.COMPLETED
    hang_up(line, third_params)


def test_platform_concurrency_limit_rejects_another_accounts_call(
    alice: Persona, bob: Persona, twilio: Any, settings: Any
) -> None:
    r = redis.Redis.from_url(settings.REDIS_URL)
    platform = f"{settings.CALL_LEASE_PREFIX}:platform"
    r.zremrangebyscore(platform, "-inf", time.time())
    # One slot on the whole platform (beyond any call another test might hold).
    settings.PLATFORM_MAX_CONCURRENT_CALLS = 1 + int(r.zcard(platform))
    alices, bobs = import_line(alice, twilio), import_line(bob, twilio)
    assert alice.account.max_concurrent_calls > 1 and bob.account.max_concurrent_calls > 1

    live, live_params = ring(alices)
    assert_stream(live, alices)
    refused, refused_params = ring(bobs)
    assert "busy" in assert_say_and_hang_up(refused)
    [call] = calls_in(bobs.schema)
    assert (call.status, call.rejection_reason, call.end_reason) == (
        Call.REJECTED,
        "concurrent_call_limit",
        "platform_limit",
    )
    assert concurrency.active_calls(bobs.schema) == 0

    hang_up(alices, live_params)
    admitted, admitted_params = ring(bobs)
    assert_stream(admitted, bobs)
    hang_up(bobs, admitted_params)
    assert concurrency.active_calls(alices.schema) == concurrency.active_calls(bobs.schema) == 0
