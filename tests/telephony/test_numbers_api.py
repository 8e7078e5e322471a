"""POST/GET/PATCH/DELETE /v1/phone-numbers: the seed's contract, step by step."""

from __future__ import annotations

import logging
import threading

import pytest
from django.conf import settings
from django.db import connection
from django_tenants.utils import schema_context

from telephony.models import PhoneNumber
from tenants.models import NumberRoute
from tests.conftest import ApiClient, Persona, assert_error, unique_e164

WEBHOOKS = {
    "voice_url": f"{settings.PUBLIC_BASE_URL}/twilio/voice",
    "sms_url": f"{settings.PUBLIC_BASE_URL}/twilio/sms",
    "status_callback": f"{settings.PUBLIC_BASE_URL}/twilio/status",
}


@pytest.fixture
def setup(alice: Persona, twilio):
    """Alice's agent, and her own Twilio account holding one number."""
    agent = alice.client().post("/v1/agents", {"name": "Front desk"}).json()
    sid, token = twilio.add_account()
    e164 = unique_e164()
    twilio.add_number(sid, e164, voice_url="https://old.example.com/voice")
    return {"agent_id": agent["id"], "sid": sid, "token": token, "e164": e164}


def _body(setup, **overrides):
    return {
        "phone_number": setup["e164"],
        "twilio_sid": setup["sid"],
        "twilio_token": setup["token"],
        "agent_id": setup["agent_id"],
        **overrides,
    }


def _twilio_writes(twilio, setup):
    """Changes made to numbers of this test's Twilio account."""
    return [
        r
        for r in twilio.requests(method="POST")
        if "IncomingPhoneNumbers/" in r["path"] and r["account_sid"] == setup["sid"]
    ]


def test_import_points_webhooks_and_inserts_the_row(alice: Persona, setup, twilio) -> None:
    response = alice.client().post("/v1/phone-numbers", _body(setup, friendly_name="Smile Dental"))
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["phone_number"] == setup["e164"] and body["agent_id"] == setup["agent_id"]
    assert body["twilio_sid"] == setup["sid"] and body["twilio_number_sid"].startswith("PN")
    assert (body["voice_url"], body["sms_url"], body["status_callback_url"]) == tuple(WEBHOOKS.values())
    assert body["api_key_id"] == alice.key.api_key.key_id and body["created_at"]
    assert "twilio_token" not in body and setup["token"] not in response.content.decode()
    resource = twilio.get_number(setup["e164"])
    assert {k: resource[k] for k in WEBHOOKS} == WEBHOOKS
    assert resource["voice_method"] == resource["sms_method"] == resource["status_callback_method"] == "POST"
    route = NumberRoute.objects.get(phone_number=setup["e164"])
    assert (route.account_id, route.state) == (alice.account.pk, NumberRoute.ACTIVE)


@pytest.mark.parametrize(
    "number", ["447446466847", "+44 7446 466847", "+0123456789", "+1234567", "+1234567890123456", "tel:+14155550100"]
)
def test_bad_phone_format(alice: Persona, setup, twilio, number: str) -> None:
    before = len(twilio.requests())
    response = alice.client().post("/v1/phone-numbers", _body(setup, phone_number=number))
    assert_error(response, 400, "invalid_request", "invalid_phone_format")
    assert len(twilio.requests()) == before  # nothing asked of Twilio


@pytest.mark.parametrize("sid", ["AC123", "PN" + "a" * 32, "AC" + "g" * 32, "AC" + "a" * 33])
def test_bad_twilio_sid(alice: Persona, setup, sid: str) -> None:
    assert_error(
        alice.client().post("/v1/phone-numbers", _body(setup, twilio_sid=sid)),
        400,
        "invalid_request",
        "invalid_twilio_sid",
    )


def test_phone_format_is_checked_before_the_sid(alice: Persona, setup) -> None:
    response = alice.client().post("/v1/phone-numbers", _body(setup, phone_number="123", twilio_sid="AC1"))
    assert_error(response, 400, "invalid_request", "invalid_phone_format")


def test_missing_fields_are_named(alice: Persona) -> None:
    error = assert_error(
        alice.client().post("/v1/phone-numbers", {"phone_number": "+442011110001"}),
        400,
        "invalid_request",
        "invalid_request",
    )
    assert set(error["details"]["fields"]) == {"twilio_sid", "twilio_token", "agent_id"}


@pytest.mark.parametrize("field", ["phone_number", "twilio_sid", "twilio_token", "agent_id"])
def test_fields_must_be_strings_not_numbers_or_objects(alice: Persona, setup, twilio, field: str) -> None:
    before = len(twilio.requests())
    for value in (447446466847, True, {"value": "x"}, ["x"], None, ""):
        error = assert_error(
            alice.client().post("/v1/phone-numbers", _body(setup, **{field: value})),
            400,
            "invalid_request",
            "invalid_request",
        )
        assert set(error["details"]["fields"]) == {field}
    assert len(twilio.requests()) == before


def test_body_must_be_an_object(alice: Persona) -> None:
    for raw in ('["+442011110001"]', '"+442011110001"', "null"):
        assert_error(alice.client().post("/v1/phone-numbers", raw=raw), 400, "invalid_request", "invalid_request")


def test_number_missing_from_twilio(alice: Persona, setup) -> None:
    response = alice.client().post("/v1/phone-numbers", _body(setup, phone_number=unique_e164()))
    assert_error(response, 400, "invalid_request", "number_not_in_twilio")


def test_prefix_match_is_not_an_import(alice: Persona, setup, twilio) -> None:
    """Twilio's search matches parts of numbers: +44201... finds +442011...; only equality counts."""
    longer = setup["e164"] + "9"
    prefix = setup["e164"][:-1]
    twilio.add_number(setup["sid"], longer)
    for candidate in (prefix, setup["e164"][:-2] + "77"):
        response = alice.client().post("/v1/phone-numbers", _body(setup, phone_number=candidate))
        assert_error(response, 400, "invalid_request", "number_not_in_twilio")
    assert twilio.get_number(longer)["voice_url"] in ("", None)


def test_rejected_credentials(alice: Persona, setup, twilio) -> None:
    response = alice.client().post("/v1/phone-numbers", _body(setup, twilio_token="wrong-token"))
    error = assert_error(response, 400, "invalid_request", "twilio_invalid_credentials")
    assert error["details"]["twilio_error"]["code"] == 20003
    assert "wrong-token" not in response.content.decode()


def test_number_in_another_twilio_account_is_not_found(alice: Persona, setup, twilio) -> None:
    other_sid, other_token = twilio.add_account()
    response = alice.client().post("/v1/phone-numbers", _body(setup, twilio_sid=other_sid, twilio_token=other_token))
    assert_error(response, 400, "invalid_request", "number_not_in_twilio")


def test_twilio_is_checked_before_the_agent(alice: Persona, setup) -> None:
    # Seed order: the Twilio lookup (step 2) comes before the agent check (step 3).
    response = alice.client().post(
        "/v1/phone-numbers", _body(setup, phone_number=unique_e164(), agent_id="agent_0000000000000000")
    )
    assert_error(response, 400, "invalid_request", "number_not_in_twilio")


def test_unknown_agent_and_other_accounts_agent(alice: Persona, bob: Persona, setup, twilio) -> None:
    bobs_agent = bob.client().post("/v1/agents", {"name": "Bob's"}).json()["id"]
    response = alice.client().post("/v1/phone-numbers", _body(setup, agent_id="agent_0000000000000000"))
    assert_error(response, 404, "not_found", "agent_not_found")
    response = alice.client().post("/v1/phone-numbers", _body(setup, agent_id=bobs_agent))
    assert_error(response, 403, "permission_error", "agent_not_owned")
    assert _twilio_writes(twilio, setup) == []  # Twilio untouched
    assert not NumberRoute.objects.filter(phone_number=setup["e164"]).exists()


def test_unknown_customer(alice: Persona, setup, twilio) -> None:
    response = alice.client().post("/v1/phone-numbers", _body(setup, customer_id="cus_0000000000000000"))
    assert_error(response, 404, "not_found", "customer_not_found")
    assert _twilio_writes(twilio, setup) == []


def test_already_imported_in_this_account_is_conflict_before_twilio(alice: Persona, setup, twilio) -> None:
    assert alice.client().post("/v1/phone-numbers", _body(setup)).status_code == 201
    twilio.clear_requests()
    error = assert_error(
        alice.client().post("/v1/phone-numbers", _body(setup)), 409, "conflict", "number_already_imported"
    )
    assert error["details"]["agent_id"] == setup["agent_id"]
    assert twilio.requests() == []


def test_already_imported_by_another_account_is_conflict_revealing_nothing(
    alice: Persona, bob: Persona, setup, twilio
) -> None:
    assert alice.client().post("/v1/phone-numbers", _body(setup)).status_code == 201
    bobs_agent = bob.client().post("/v1/agents", {"name": "Bob's"}).json()["id"]
    twilio.clear_requests()
    response = bob.client().post("/v1/phone-numbers", _body(setup, agent_id=bobs_agent))
    error = assert_error(response, 409, "conflict", "number_already_imported")
    assert error["details"] == {"phone_number": setup["e164"]}
    assert setup["agent_id"] not in response.content.decode()
    assert twilio.requests() == []


def test_concurrent_double_import_exactly_one_wins(alice: Persona, setup, twilio) -> None:
    twilio.configure(latency_ms=150)
    results = []

    def attempt() -> None:
        results.append(alice.client().post("/v1/phone-numbers", _body(setup)))
        connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(r.status_code for r in results)
    assert statuses == [201, 409, 409, 409], [r.content for r in results]
    with schema_context(alice.account.schema_name):
        assert PhoneNumber.objects.filter(phone_number=setup["e164"]).count() == 1


def test_twilio_outage_during_import_leaves_nothing(alice: Persona, setup, twilio) -> None:
    twilio.configure(fail={"mode": "500", "methods": ["POST"]})
    error = assert_error(
        alice.client().post("/v1/phone-numbers", _body(setup)), 502, "provider_error", "provider_unavailable"
    )
    assert error["details"]["provider"] == "twilio"
    assert not NumberRoute.objects.filter(phone_number=setup["e164"]).exists()
    with schema_context(alice.account.schema_name):
        assert not PhoneNumber.objects.exists()
    twilio.configure(fail={"mode": "none"})
    assert alice.client().post("/v1/phone-numbers", _body(setup)).status_code == 201


def test_twilio_timeout_during_lookup_is_provider_unavailable(alice: Persona, setup, twilio) -> None:
    twilio.configure(fail={"mode": "timeout", "methods": ["GET"], "hold_s": 5})
    assert_error(alice.client().post("/v1/phone-numbers", _body(setup)), 502, "provider_error", "provider_unavailable")
    assert not NumberRoute.objects.filter(phone_number=setup["e164"]).exists()


def test_token_is_encrypted_at_rest_and_never_logged(alice: Persona, setup, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    response = alice.client().post("/v1/phone-numbers", _body(setup))
    assert response.status_code == 201
    with schema_context(alice.account.schema_name):
        with connection.cursor() as cursor:
            cursor.execute("SELECT auth_token FROM telephony_twilioaccount WHERE account_sid = %s", [setup["sid"]])
            stored = cursor.fetchone()[0]
        assert setup["token"] not in stored and len(stored) > 40
        assert PhoneNumber.objects.get(phone_number=setup["e164"]).twilio_auth_token == setup["token"]
    listing = alice.client().get("/v1/phone-numbers").content.decode()
    single = alice.client().get(f"/v1/phone-numbers/{setup['e164']}").content.decode()
    assert setup["token"] not in listing + single
    assert setup["token"] not in caplog.text


def test_list_newest_first_with_filters_and_pagination(alice: Persona, setup, twilio) -> None:
    client = alice.client()
    other_agent = client.post("/v1/agents", {"name": "Second"}).json()["id"]
    clinic = client.post("/v1/customers", {"name": "Smile Dental Croydon"}).json()["id"]
    imported = []
    for i in range(3):
        e164 = unique_e164()
        twilio.add_number(setup["sid"], e164)
        body = _body(
            setup,
            phone_number=e164,
            agent_id=other_agent if i == 2 else setup["agent_id"],
            customer_id=clinic if i == 1 else None,
        )
        body = {k: v for k, v in body.items() if v is not None}
        assert client.post("/v1/phone-numbers", body).status_code == 201
        imported.append(e164)
    listed = client.get("/v1/phone-numbers").json()
    assert [n["phone_number"] for n in listed["data"]] == imported[::-1]
    by_agent = client.get("/v1/phone-numbers", {"agent_id": setup["agent_id"]}).json()["data"]
    assert [n["phone_number"] for n in by_agent] == imported[1::-1]
    by_customer = client.get("/v1/phone-numbers", {"customer_id": clinic}).json()["data"]
    assert [n["phone_number"] for n in by_customer] == [imported[1]]
    page = client.get("/v1/phone-numbers", {"limit": 2}).json()
    assert page["has_more"] is True
    rest = client.get("/v1/phone-numbers", {"limit": 2, "starting_after": page["data"][-1]["phone_number"]}).json()
    assert [n["phone_number"] for n in rest["data"]] == [imported[0]] and rest["has_more"] is False


def test_get_accepts_raw_plus_and_percent_encoded(alice: Persona, setup) -> None:
    alice.client().post("/v1/phone-numbers", _body(setup))
    for path in (setup["e164"], setup["e164"].replace("+", "%2B")):
        response = alice.client().get(f"/v1/phone-numbers/{path}")
        assert response.status_code == 200 and response.json()["phone_number"] == setup["e164"]


def test_patch_customer_and_name_but_not_agent(alice: Persona, setup) -> None:
    client = alice.client()
    client.post("/v1/phone-numbers", _body(setup))
    clinic = client.post("/v1/customers", {"name": "Pearly Whites"}).json()["id"]
    patched = client.patch(f"/v1/phone-numbers/{setup['e164']}", {"customer_id": clinic, "friendly_name": "PW"})
    assert patched.status_code == 200
    assert (patched.json()["customer_id"], patched.json()["friendly_name"]) == (clinic, "PW")
    other_agent = client.post("/v1/agents", {"name": "Other"}).json()["id"]
    assert_error(
        client.patch(f"/v1/phone-numbers/{setup['e164']}", {"agent_id": other_agent}),
        409,
        "conflict",
        "number_already_imported",
    )
    assert_error(
        client.patch(f"/v1/phone-numbers/{setup['e164']}", {"customer_id": "cus_0000000000000000"}),
        404,
        "not_found",
        "customer_not_found",
    )
    assert client.get(f"/v1/phone-numbers/{setup['e164']}").json()["agent_id"] == setup["agent_id"]
    for body, field in (
        ({"friendly_name": "x" * 201}, "friendly_name"),
        ({"friendly_name": None}, "friendly_name"),
        ({"customer_id": 7}, "customer_id"),
        ({"twilio_token": "t"}, "twilio_token"),
    ):
        error = assert_error(
            client.patch(f"/v1/phone-numbers/{setup['e164']}", body), 400, "invalid_request", "invalid_request"
        )
        assert set(error["details"]["fields"]) == {field}
    detached = client.patch(f"/v1/phone-numbers/{setup['e164']}", {"customer_id": None})
    assert detached.status_code == 200 and detached.json()["customer_id"] is None


def test_delete_clears_webhooks_keeps_the_number_in_twilio(alice: Persona, setup, twilio) -> None:
    client = alice.client()
    client.post("/v1/phone-numbers", _body(setup))
    response = client.delete(f"/v1/phone-numbers/{setup['e164'].replace('+', '%2B')}")
    assert response.status_code == 200 and response.json()["deleted"] is True
    resource = twilio.get_number(setup["e164"])
    assert resource is not None  # never released
    assert not resource["voice_url"] and not resource["sms_url"] and not resource["status_callback"]
    assert not list(twilio.requests(method="DELETE"))
    assert not NumberRoute.objects.filter(phone_number=setup["e164"]).exists()
    assert_error(client.get(f"/v1/phone-numbers/{setup['e164']}"), 404, "not_found", "phone_number_not_found")
    # And it can be imported again, onto another agent.
    other_agent = client.post("/v1/agents", {"name": "Other"}).json()["id"]
    assert client.post("/v1/phone-numbers", _body(setup, agent_id=other_agent)).status_code == 201


def test_twilio_outage_during_delete_removes_nothing(alice: Persona, setup, twilio) -> None:
    client = alice.client()
    client.post("/v1/phone-numbers", _body(setup))
    twilio.configure(fail={"mode": "503"})
    assert_error(client.delete(f"/v1/phone-numbers/{setup['e164']}"), 502, "provider_error", "provider_unavailable")
    twilio.configure(fail={"mode": "none"})
    assert client.get(f"/v1/phone-numbers/{setup['e164']}").status_code == 200
    assert NumberRoute.objects.filter(phone_number=setup["e164"]).exists()
    assert twilio.get_number(setup["e164"])["voice_url"] == WEBHOOKS["voice_url"]


def test_delete_when_token_was_rotated_is_twilio_auth_failed(alice: Persona, setup, twilio) -> None:
    client = alice.client()
    client.post("/v1/phone-numbers", _body(setup))
    twilio.add_account(setup["sid"], "rotated-token-0000000000000000000")
    error = assert_error(
        client.delete(f"/v1/phone-numbers/{setup['e164']}"), 400, "invalid_request", "twilio_auth_failed"
    )
    assert error["details"]["twilio_error"]["code"] == 20003
    assert client.get(f"/v1/phone-numbers/{setup['e164']}").status_code == 200


def _removed(persona: Persona, e164: str) -> bool:
    with schema_context(persona.account.schema_name):
        gone = not PhoneNumber.objects.filter(phone_number=e164).exists()
    return gone and not NumberRoute.objects.filter(phone_number=e164).exists()


@pytest.mark.parametrize("how", ["account_closed", "token_rotated"])
def test_force_removes_a_number_whose_twilio_credentials_are_gone(alice: Persona, setup, twilio, how: str) -> None:
    client = alice.client()
    client.post("/v1/phone-numbers", _body(setup))
    if how == "account_closed":
        twilio.remove_account(setup["sid"])
    else:
        twilio.add_account(setup["sid"], "rotated-token-0000000000000000000")
    path = f"/v1/phone-numbers/{setup['e164']}"
    error = assert_error(client.delete(path), 400, "invalid_request", "twilio_auth_failed")
    assert "?force=true" in error["message"] and "/credentials" in error["message"]
    assert not _removed(alice, setup["e164"])

    response = client.delete(f"{path}?force=true")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "object": "phone_number",
        "phone_number": setup["e164"],
        "deleted": True,
        "twilio_webhooks_cleared": False,
        "forced": True,
        "twilio_error": {"code": 20003, "message": "Unable to update record: Authenticate", "status": 401},
    }
    assert _removed(alice, setup["e164"])
    assert_error(client.get(path), 404, "not_found", "phone_number_not_found")


def test_force_during_a_twilio_outage_removes_locally_and_says_so(alice: Persona, setup, twilio) -> None:
    client = alice.client()
    client.post("/v1/phone-numbers", _body(setup))
    twilio.configure(fail={"mode": "503"})
    body = client.delete(f"/v1/phone-numbers/{setup['e164']}?force=1").json()
    assert (body["deleted"], body["forced"], body["twilio_webhooks_cleared"]) == (True, True, False)
    assert body["twilio_error"]["status"] == 503
    assert _removed(alice, setup["e164"])
    twilio.configure(fail={"mode": "none"})
    assert twilio.get_number(setup["e164"])["voice_url"] == WEBHOOKS["voice_url"]  # as reported: not cleared


def test_force_when_twilio_works_is_an_ordinary_delete(alice: Persona, setup, twilio) -> None:
    client = alice.client()
    client.post("/v1/phone-numbers", _body(setup))
    body = client.delete(f"/v1/phone-numbers/{setup['e164']}?force=true").json()
    assert (body["forced"], body["twilio_webhooks_cleared"], body["twilio_error"]) == (False, True, None)
    assert not twilio.get_number(setup["e164"])["voice_url"]


def test_force_must_be_a_boolean(alice: Persona, setup) -> None:
    client = alice.client()
    client.post("/v1/phone-numbers", _body(setup))
    error = assert_error(
        client.delete(f"/v1/phone-numbers/{setup['e164']}?force=perhaps"), 400, "invalid_request", "invalid_request"
    )
    assert set(error["details"]["fields"]) == {"force"}
    assert not _removed(alice, setup["e164"])


def test_delete_of_a_number_released_in_twilio_still_removes_it(alice: Persona, setup, twilio) -> None:
    client = alice.client()
    client.post("/v1/phone-numbers", _body(setup))
    twilio.remove_number(setup["e164"])
    response = client.delete(f"/v1/phone-numbers/{setup['e164']}")
    assert response.status_code == 200
    assert (response.json()["forced"], response.json()["twilio_webhooks_cleared"]) == (False, False)
    assert not NumberRoute.objects.filter(phone_number=setup["e164"]).exists()


def test_outsider_cannot_see_change_or_delete(alice: Persona, bob: Persona, setup, twilio) -> None:
    alice.client().post("/v1/phone-numbers", _body(setup))
    outsider = bob.client()
    path = f"/v1/phone-numbers/{setup['e164']}"
    assert outsider.get("/v1/phone-numbers").json() == {"data": [], "has_more": False}
    assert outsider.get("/v1/phone-numbers", {"agent_id": setup["agent_id"]}).json()["data"] == []
    for response in (
        outsider.get(path),
        outsider.patch(path, {"friendly_name": "mine"}),
        outsider.delete(path),
        outsider.post(f"{path}/repair", {}),
    ):
        assert_error(response, 404, "not_found", "phone_number_not_found")
    assert alice.client().get(path).json()["friendly_name"] == ""
    assert twilio.get_number(setup["e164"])["voice_url"] == WEBHOOKS["voice_url"]


def test_agent_with_numbers_cannot_be_deleted(alice: Persona, setup) -> None:
    alice.client().post("/v1/phone-numbers", _body(setup))
    assert_error(alice.client().delete(f"/v1/agents/{setup['agent_id']}"), 409, "conflict", "agent_has_phone_numbers")
    assert alice.client().get(f"/v1/agents/{setup['agent_id']}").status_code == 200


def test_unauthenticated_import_is_refused(setup) -> None:
    assert_error(
        ApiClient(None).post("/v1/phone-numbers", _body(setup)), 401, "authentication_error", "invalid_api_key"
    )
