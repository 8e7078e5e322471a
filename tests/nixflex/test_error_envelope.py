"""Every error under /v1/ has the seed's envelope and status."""

from __future__ import annotations

import pytest

from nixflex.errors import ERROR_CODES, TYPE_STATUS
from tests.conftest import ApiClient, Persona, assert_error


def test_registry_matches_the_seed_statuses() -> None:
    assert TYPE_STATUS == {
        "authentication_error": 401,
        "permission_error": 403,
        "invalid_request": 400,
        "not_found": 404,
        "conflict": 409,
        "rate_limit_error": 429,
        "provider_error": 502,
        "server_error": 500,
    }
    expected = {
        "invalid_api_key": 401,
        "key_secret_required": 401,
        "agent_not_owned": 403,
        "agent_not_found": 404,
        "call_not_found": 404,
        "phone_number_not_found": 404,
        "message_not_found": 404,
        "customer_not_found": 404,
        "job_not_found": 404,
        "not_found": 404,
        "prompt_too_long": 400,
        "invalid_voice_id": 400,
        "invalid_phone_format": 400,
        "invalid_twilio_sid": 400,
        "number_not_in_twilio": 400,
        "twilio_invalid_credentials": 400,
        "twilio_auth_failed": 400,
        "from_number_not_owned": 400,
        "message_too_long": 400,
        "sms_not_supported_in_region": 400,
        "invalid_request": 400,
        "number_already_imported": 409,
        "agent_no_phone": 409,
        "agent_has_phone_numbers": 409,
        "twilio_account_not_found": 404,
        "twilio_account_has_phone_numbers": 409,
        "job_failed": 500,
        "recipient_unsubscribed": 409,
        "rate_limit_exceeded": 429,
        "concurrent_call_limit": 429,
        "outbound_failed": 502,
        "provider_unavailable": 502,
        "server_error": 500,
    }
    assert {code: e.status for code, e in ERROR_CODES.items()} == expected


@pytest.mark.parametrize("path", ["/v1/nope", "/v1/agents/x/y/z", "/v1/"])
def test_unknown_route_is_not_found(alice: Persona, path: str) -> None:
    assert_error(alice.client().get(path), 404, "not_found", "not_found")


def test_unknown_route_without_a_key_is_still_the_envelope() -> None:
    assert_error(ApiClient(None).get("/v1/does-not-exist"), 404, "not_found", "not_found")


def test_wrong_method_is_invalid_request_with_allow_header(alice: Persona) -> None:
    response = alice.client().put("/v1/agents", {"name": "x"})
    error = assert_error(response, 400, "invalid_request", "invalid_request")
    assert error["details"]["reason"] == "method_not_allowed"
    assert set(response["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


def test_malformed_json_is_invalid_request(alice: Persona) -> None:
    response = alice.client().post("/v1/agents", raw='{"name": "broken",')
    error = assert_error(response, 400, "invalid_request", "invalid_request")
    assert error["details"]["reason"] == "malformed_body"


def test_non_json_content_type_is_invalid_request(alice: Persona) -> None:
    response = alice.client().client.post(
        "/v1/agents", "name=x", content_type="application/x-www-form-urlencoded", HTTP_AUTHORIZATION=alice.bearer
    )
    assert_error(response, 400, "invalid_request", "invalid_request")


def test_unhandled_exception_in_api_view_is_server_error_without_traceback(alice: Persona) -> None:
    response = alice.client().get("/v1/_test/broken-api")
    error = assert_error(response, 500, "server_error", "server_error")
    assert "secret internals" not in response.content.decode()
    assert "Traceback" not in response.content.decode()
    assert error["details"] == {}


def test_unhandled_exception_outside_drf_is_server_error(alice: Persona) -> None:
    response = alice.client().get("/v1/_test/broken-view")
    assert_error(response, 500, "server_error", "server_error")
    assert "secret internals" not in response.content.decode()


def test_throttled_request_is_rate_limit_exceeded_with_retry_after(make_persona) -> None:
    persona = make_persona("Throttled", api_rate_per_second=1, api_burst=3)
    client = persona.client()
    statuses = [client.get("/v1/agents").status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    response = client.get("/v1/agents")
    error = assert_error(response, 429, "rate_limit_error", "rate_limit_exceeded")
    assert int(response["Retry-After"]) >= 1
    assert error["details"]["retry_after_seconds"] >= 1


def test_throttle_is_per_key_not_global(make_persona) -> None:
    slow = make_persona("Slow", api_rate_per_second=1, api_burst=1)
    other = make_persona("Other")
    slow.client().get("/v1/agents")
    assert slow.client().get("/v1/agents").status_code == 429
    assert other.client().get("/v1/agents").status_code == 200


def test_throttled_request_does_no_work(make_persona) -> None:
    persona = make_persona("Writer", api_rate_per_second=1, api_burst=1)
    client = persona.client()
    assert client.post("/v1/agents", {"name": "first"}).status_code == 201
    assert client.post("/v1/agents", {"name": "second"}).status_code == 429
    import time

    time.sleep(1.1)
    names = [a["name"] for a in client.get("/v1/agents").json()["data"]]
    assert names == ["first"]


def test_openapi_document_and_docs_page(alice: Persona) -> None:
    schema = ApiClient(None).get("/v1/openapi.json")
    assert schema.status_code == 200
    document = schema.json()
    assert "/v1/agents" in document["paths"] and "/v1/agents/{agent_id}" in document["paths"]
    assert "number_already_imported" in document["info"]["description"]
    page = ApiClient(None).get("/v1/docs")
    assert page.status_code == 200 and b"swagger" in page.content.lower()
