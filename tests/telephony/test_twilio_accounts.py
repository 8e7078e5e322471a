"""/v1/twilio-accounts: one stored set of credentials per Twilio account, shared by all its
numbers; a rotated auth token is updated once (after Twilio accepts it) for every number."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django_tenants.utils import schema_context

from telephony.models import PhoneNumber, TwilioAccount
from tenants.db import tenant_connection
from tests.conftest import Persona, assert_error, unique_e164
from tests.telephony.test_voice_webhook import (  # noqa: F401  (_release_leases is an autouse fixture)
    Line,
    _release_leases,
    assert_stream,
    inbound_params,
    post_twilio,
    sign,
)

NEW_TOKEN = "feedfacefeedfacefeedfacefeedface"


def _import(persona: Persona, twilio: Any, sid: str, token: str, agent_id: str) -> Line:
    e164 = unique_e164()
    twilio.add_number(sid, e164)
    response = persona.client().post(
        "/v1/phone-numbers", {"phone_number": e164, "twilio_sid": sid, "twilio_token": token, "agent_id": agent_id}
    )
    assert response.status_code == 201, response.content
    tenant_connection().set_schema_to_public()
    return Line(persona, e164, sid, token, agent_id, "")


@pytest.fixture
def two_lines(alice: Persona, twilio: Any) -> tuple[Line, Line]:
    """Two numbers of one Twilio account of Alice's, imported with the same token."""
    agent_id = alice.client().post("/v1/agents", {"name": "Front desk"}).json()["id"]
    sid, token = twilio.add_account(friendly_name="Smile Dental Group")
    return _import(alice, twilio, sid, token, agent_id), _import(alice, twilio, sid, token, agent_id)


def _ring(line: Line, token: str) -> Any:
    params = inbound_params(line)
    return post_twilio("/twilio/voice", params, sign("/twilio/voice", params, token))


def _stored_token(persona: Persona, sid: str) -> str:
    with schema_context(persona.account.schema_name):
        return TwilioAccount.objects.get(account_sid=sid).auth_token


def test_numbers_of_one_twilio_account_share_one_stored_account(
    alice: Persona, two_lines: tuple[Line, Line], twilio: Any
) -> None:
    first, second = two_lines
    client = alice.client()
    listed = client.get("/v1/twilio-accounts").json()
    assert listed["has_more"] is False
    [account] = listed["data"]
    assert account["object"] == "twilio_account" and account["account_sid"] == first.twilio_sid
    assert account["phone_numbers"] == 2 and account["verified_at"] and account["created_at"]
    detail = client.get(f"/v1/twilio-accounts/{first.twilio_sid}")
    assert detail.status_code == 200 and detail.json() == account
    assert first.token not in client.get("/v1/twilio-accounts").content.decode() + detail.content.decode()
    with schema_context(alice.account.schema_name):
        assert TwilioAccount.objects.count() == 1
        assert {n.twilio_account_id for n in PhoneNumber.objects.all()} == {TwilioAccount.objects.get().pk}


def test_rotation_is_checked_with_twilio_then_used_for_every_number(
    alice: Persona, two_lines: tuple[Line, Line], twilio: Any, caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    first, second = two_lines
    sid, old_token = first.twilio_sid, first.token
    twilio.add_account(sid, NEW_TOKEN)  # the customer rotates the token in the Twilio console
    # Until Nixflex is told, Twilio's new signatures are refused for both numbers.
    for line in two_lines:
        assert _ring(line, NEW_TOKEN).status_code == 403
    twilio.clear_requests()

    response = alice.client().post(f"/v1/twilio-accounts/{sid}/credentials", {"auth_token": NEW_TOKEN})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["account_sid"] == sid and body["phone_numbers"] == 2
    assert body["friendly_name"] == "Smile Dental Group"  # learnt from Twilio, which was asked first
    assert [r["path"] for r in twilio.requests()] == [f"/2010-04-01/Accounts/{sid}.json"]
    assert NEW_TOKEN not in response.content.decode() and NEW_TOKEN not in caplog.text

    for line in two_lines:  # every number of the account now checks signatures with the new token
        assert_stream(_ring(line, NEW_TOKEN), line)
        assert _ring(line, old_token).status_code == 403
    # And Nixflex acts on Twilio with it (a delete clears the webhooks with the new credentials).
    assert alice.client().delete(f"/v1/phone-numbers/{first.e164}").json()["twilio_webhooks_cleared"] is True
    assert twilio.get_number(first.e164)["voice_url"] == ""


def test_a_token_twilio_refuses_is_not_stored(
    alice: Persona, two_lines: tuple[Line, Line], twilio: Any, caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    first, _ = two_lines
    response = alice.client().post(
        f"/v1/twilio-accounts/{first.twilio_sid}/credentials", {"auth_token": "wrong-token-wrong-token-wrong-tok"}
    )
    error = assert_error(response, 400, "invalid_request", "twilio_invalid_credentials")
    assert error["details"]["twilio_error"]["code"] == 20003
    assert "wrong-token" not in response.content.decode() and "wrong-token" not in caplog.text
    assert _stored_token(alice, first.twilio_sid) == first.token
    for line in two_lines:
        assert_stream(_ring(line, first.token), line)


def test_rotation_during_a_twilio_outage_stores_nothing(
    alice: Persona, two_lines: tuple[Line, Line], twilio: Any
) -> None:
    first, _ = two_lines
    twilio.add_account(first.twilio_sid, NEW_TOKEN)
    twilio.configure(fail={"mode": "503"})
    response = alice.client().post(f"/v1/twilio-accounts/{first.twilio_sid}/credentials", {"auth_token": NEW_TOKEN})
    assert_error(response, 502, "provider_error", "provider_unavailable")
    assert _stored_token(alice, first.twilio_sid) == first.token


@pytest.mark.parametrize("body", [{}, {"auth_token": ""}, {"auth_token": 12345}, {"auth_token": "x" * 300}])
def test_rotation_body_is_validated_before_twilio(
    alice: Persona, two_lines: tuple[Line, Line], twilio: Any, body: dict[str, Any]
) -> None:
    twilio.clear_requests()
    error = assert_error(
        alice.client().post(f"/v1/twilio-accounts/{two_lines[0].twilio_sid}/credentials", body),
        400,
        "invalid_request",
        "invalid_request",
    )
    assert set(error["details"]["fields"]) == {"auth_token"}
    assert twilio.requests() == []


def test_importing_with_a_new_token_twilio_accepts_updates_the_account(
    alice: Persona, two_lines: tuple[Line, Line], twilio: Any
) -> None:
    first, second = two_lines
    twilio.add_account(first.twilio_sid, NEW_TOKEN)
    third = _import(alice, twilio, first.twilio_sid, NEW_TOKEN, first.agent_id)
    assert _stored_token(alice, first.twilio_sid) == NEW_TOKEN
    for line in (first, second, third):
        assert_stream(_ring(line, NEW_TOKEN), line)
    with schema_context(alice.account.schema_name):
        assert TwilioAccount.objects.count() == 1


def test_importing_with_a_wrong_token_leaves_the_stored_one(
    alice: Persona, two_lines: tuple[Line, Line], twilio: Any
) -> None:
    first, _ = two_lines
    e164 = unique_e164()
    twilio.add_number(first.twilio_sid, e164)
    response = alice.client().post(
        "/v1/phone-numbers",
        {
            "phone_number": e164,
            "twilio_sid": first.twilio_sid,
            "twilio_token": "not-the-token",
            "agent_id": first.agent_id,
        },
    )
    assert_error(response, 400, "invalid_request", "twilio_invalid_credentials")
    assert _stored_token(alice, first.twilio_sid) == first.token


def test_rename_and_delete(alice: Persona, two_lines: tuple[Line, Line]) -> None:
    client = alice.client()
    sid = two_lines[0].twilio_sid
    renamed = client.patch(f"/v1/twilio-accounts/{sid}", {"friendly_name": "Clinics, north"})
    assert renamed.status_code == 200 and renamed.json()["friendly_name"] == "Clinics, north"
    assert_error(
        client.patch(f"/v1/twilio-accounts/{sid}", {"friendly_name": 5}), 400, "invalid_request", "invalid_request"
    )
    assert_error(client.delete(f"/v1/twilio-accounts/{sid}"), 409, "conflict", "twilio_account_has_phone_numbers")
    for line in two_lines:
        assert client.delete(f"/v1/phone-numbers/{line.e164}").status_code == 200
    deleted = client.delete(f"/v1/twilio-accounts/{sid}")
    assert deleted.status_code == 200 and deleted.json() == {
        "object": "twilio_account",
        "account_sid": sid,
        "deleted": True,
    }
    assert_error(client.get(f"/v1/twilio-accounts/{sid}"), 404, "not_found", "twilio_account_not_found")


def test_another_account_sees_none_of_it(
    alice: Persona, bob: Persona, two_lines: tuple[Line, Line], twilio: Any
) -> None:
    first, _ = two_lines
    sid = first.twilio_sid
    outsider = bob.client()
    twilio.clear_requests()
    assert outsider.get("/v1/twilio-accounts").json() == {"data": [], "has_more": False}
    for response in (
        outsider.get(f"/v1/twilio-accounts/{sid}"),
        outsider.patch(f"/v1/twilio-accounts/{sid}", {"friendly_name": "mine"}),
        outsider.delete(f"/v1/twilio-accounts/{sid}"),
        outsider.post(f"/v1/twilio-accounts/{sid}/credentials", {"auth_token": first.token}),
    ):
        assert_error(response, 404, "not_found", "twilio_account_not_found")
    assert twilio.requests() == []  # Bob's rotation attempt never reached Twilio
    assert alice.client().get(f"/v1/twilio-accounts/{sid}").json()["friendly_name"] == ""
    assert _stored_token(alice, sid) == first.token


def test_openapi_describes_these_endpoints_without_warnings() -> None:
    """Phone numbers, jobs and Twilio accounts: every operation has its input and output
    serializers, and drf-spectacular has nothing to warn about (the bearer scheme itself is
    declared with the other edges' schema work)."""
    from drf_spectacular.drainage import GENERATOR_STATS
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.validation import validate_schema

    GENERATOR_STATS.reset()
    with GENERATOR_STATS.silence():
        schema = SchemaGenerator().get_schema(request=None, public=True)
    messages = [
        m
        for m in [*GENERATOR_STATS._warn_cache, *GENERATOR_STATS._error_cache]
        if "telephony/api.py" in m
        or "telephony/serializers.py" in m
        or "PhoneNumber" in m
        or "Job" in m
        or "TwilioAccount" in m
        or "phone_numbers" in m
        or "jobs_" in m
    ]
    GENERATOR_STATS.reset()
    assert [m for m in messages if "could not resolve authenticator" not in m] == []
    validate_schema(schema)
    paths = schema["paths"]
    delete = paths["/v1/phone-numbers/{e164}"]["delete"]
    assert [p["name"] for p in delete["parameters"] if p["in"] == "query"] == ["force"]
    assert "200" in delete["responses"]  # the error responses are tests/nixflex/test_openapi.py's
    bulk = paths["/v1/phone-numbers/bulk"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert bulk["$ref"].endswith("/BulkImportInput")
    assert schema["components"]["schemas"]["BulkImportInput"]["properties"]["numbers"]["items"]["$ref"].endswith(
        "/PhoneNumberImportInput"
    )
    assert {
        "/v1/twilio-accounts",
        "/v1/twilio-accounts/{account_sid}",
        "/v1/twilio-accounts/{account_sid}/credentials",
    } <= set(paths)
    rotation = paths["/v1/twilio-accounts/{account_sid}/credentials"]["post"]
    assert rotation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/TwilioCredentialsInput")
    assert "auth_token" not in schema["components"]["schemas"]["TwilioAccountOutput"]["properties"]
