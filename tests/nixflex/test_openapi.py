"""The OpenAPI document: valid with zero warnings, the API-key scheme declared, every
operation's error envelope and codes documented, and real answers matching what it says."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from django_tenants.utils import schema_context

from nixflex.errors import ERROR_CODES
from telephony.models import Call
from tests.conftest import ROOT, ApiClient, Persona

# Codes every operation answers with: authentication (401), rate limit (429), and 500.
COMMON = {"invalid_api_key", "key_secret_required", "rate_limit_exceeded", "server_error"}
INPUT = {"invalid_request"}
AGENT = {"agent_not_found", "agent_not_owned"}
AGENT_INPUT = {"prompt_too_long", "invalid_voice_id"}
NUMBER = {"phone_number_not_found", "twilio_auth_failed", "provider_unavailable"}

# The codes each operation documents beyond COMMON: the API's error contract, per operation.
EXPECTED_CODES: dict[tuple[str, str], set[str]] = {
    ("get", "/v1/agents"): INPUT,
    ("post", "/v1/agents"): INPUT | AGENT_INPUT,
    ("get", "/v1/agents/{agent_id}"): AGENT,
    ("patch", "/v1/agents/{agent_id}"): AGENT | INPUT | AGENT_INPUT,
    ("delete", "/v1/agents/{agent_id}"): AGENT | {"agent_has_phone_numbers"},
    ("get", "/v1/voices"): set(),
    ("get", "/v1/customers"): INPUT,
    ("post", "/v1/customers"): INPUT,
    ("get", "/v1/customers/{customer_id}"): {"customer_not_found"},
    ("patch", "/v1/customers/{customer_id}"): {"customer_not_found"} | INPUT,
    ("delete", "/v1/customers/{customer_id}"): {"customer_not_found"},
    ("get", "/v1/calls"): INPUT,
    ("get", "/v1/calls/{call_id}"): {"call_not_found"},
    ("get", "/v1/phone-numbers"): INPUT,
    ("post", "/v1/phone-numbers"): INPUT
    | AGENT
    | {
        "invalid_phone_format",
        "invalid_twilio_sid",
        "number_not_in_twilio",
        "twilio_invalid_credentials",
        "customer_not_found",
        "number_already_imported",
        "provider_unavailable",
    },
    ("get", "/v1/phone-numbers/{e164}"): {"phone_number_not_found"},
    ("get", "/v1/twilio-accounts"): INPUT,
    ("get", "/v1/twilio-accounts/{account_sid}"): {"twilio_account_not_found"},
    ("patch", "/v1/twilio-accounts/{account_sid}"): INPUT | {"twilio_account_not_found"},
    ("delete", "/v1/twilio-accounts/{account_sid}"): {"twilio_account_not_found", "twilio_account_has_phone_numbers"},
    ("post", "/v1/twilio-accounts/{account_sid}/credentials"): INPUT
    | {"twilio_account_not_found", "twilio_invalid_credentials", "provider_unavailable"},
    ("patch", "/v1/phone-numbers/{e164}"): INPUT
    | {"phone_number_not_found", "number_already_imported", "customer_not_found"},
    ("delete", "/v1/phone-numbers/{e164}"): NUMBER | INPUT,
    ("post", "/v1/phone-numbers/{e164}/repair"): NUMBER,
    ("post", "/v1/phone-numbers/bulk"): INPUT,
    ("get", "/v1/jobs"): INPUT,
    ("get", "/v1/jobs/{job_id}"): {"job_not_found"},
}
METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    """The document as clients get it."""
    response = ApiClient(None).get("/v1/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def test_spectacular_validates_with_zero_warnings_and_errors(tmp_path: Path) -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "spectacular",
            "--validate",
            "--fail-on-warn",
            "--skip-checks",
            "--file",
            str(tmp_path / "schema.yaml"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert not re.search(r"\b(Warning|Error)\b", result.stderr), result.stderr[-4000:]
    assert (tmp_path / "schema.yaml").stat().st_size > 0


def test_bearer_key_id_key_secret_scheme_is_declared_and_required(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes == {
        "ApiKey": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "key_id:key_secret",
            "description": schemes["ApiKey"]["description"],
        }
    }
    assert "KEY_ID:KEY_SECRET" in schemes["ApiKey"]["description"]
    for method, path, operation in operations(document):
        assert operation.get("security") == [{"ApiKey": []}], (method, path)


def test_every_operation_documents_the_envelope_for_each_of_its_codes(document: dict[str, Any]) -> None:
    envelope = {"$ref": "#/components/schemas/ErrorEnvelope"}
    listed = {(method, path) for method, path, _ in operations(document)}
    assert listed == set(EXPECTED_CODES), (
        f"operations missing from EXPECTED_CODES (add them with their codes): {sorted(listed - set(EXPECTED_CODES))}"
        f"; gone: {sorted(set(EXPECTED_CODES) - listed)}"
    )
    for method, path, operation in operations(document):
        documented: set[str] = set()
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            content = response["content"]["application/json"]
            assert content["schema"] == envelope, (method, path, status)
            for code, example in content["examples"].items():
                error = ERROR_CODES[code]
                assert error.status == int(status), (method, path, status, code)
                assert example["value"]["error"]["code"] == code
                assert example["value"]["error"]["type"] == error.type
                assert f"`{code}`" in response["description"]
                documented.add(code)
        assert documented == COMMON | EXPECTED_CODES[(method, path)], (method, path)
        assert {"401", "429", "500"} <= set(operation["responses"]), (method, path)
        assert "Retry-After" in operation["responses"]["429"]["headers"]
        successes = [status for status in operation["responses"] if int(status) < 400]
        assert len(successes) == 1, (method, path)
        assert "content" in operation["responses"][successes[0]], f"{method} {path}: response body undeclared"


def test_envelope_component_lists_every_type_and_code(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert set(schemas["ErrorEnvelope"]["required"]) == {"error"}
    assert set(schemas["ErrorBody"]["required"]) == {"type", "code", "message", "doc_url", "details"}
    assert set(schemas["ErrorCode"]["enum"]) == set(ERROR_CODES)
    assert set(schemas["ErrorType"]["enum"]) == {error.type for error in ERROR_CODES.values()}


# --- Real answers match the document -------------------------------------------------------


def _json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema: `nullable` becomes a null alternative, and objects
    with declared properties admit no others (an undeclared key in an answer is a finding)."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    schema = {key: _json_schema(value) for key, value in node.items() if key != "nullable"}
    if "properties" in schema and "additionalProperties" not in schema:
        schema["additionalProperties"] = False
    if node.get("nullable"):
        return {"anyOf": [schema, {"type": "null"}]}
    return schema


class Contract:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.components = _json_schema(document["components"])
        self.templates = [
            (re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", path) + "$"), path) for path in document["paths"]
        ]
        self.checked: set[tuple[str, str, int]] = set()

    def check(self, method: str, url: str, response: Any) -> dict[str, Any]:
        """The answer's status is documented for its operation, its body validates against the
        declared schema, and an error's code is one the operation lists for that status."""
        path = url.split("?")[0]
        matches = [template for pattern, template in self.templates if pattern.match(path)]
        template = max(matches, key=lambda t: t.count("/") - t.count("{"))  # /bulk before /{e164}
        declared = self.document["paths"][template][method]["responses"]
        status = str(response.status_code)
        assert status in declared, (method, template, status, response.content[:300])
        body: dict[str, Any] = response.json()
        content = declared[status]["content"]["application/json"]
        schema = {**_json_schema(content["schema"]), "components": self.components}
        jsonschema.Draft202012Validator(schema).validate(body)
        if response.status_code >= 400:
            assert body["error"]["code"] in content["examples"], (method, template, body)
        self.checked.add((method, template, response.status_code))
        return body


def test_real_answers_match_the_document(
    document: dict[str, Any], alice: Persona, bob: Persona, make_persona: Callable[..., Persona]
) -> None:
    contract = Contract(document)
    client = alice.client()

    def call(method: str, url: str, body: Any = None) -> dict[str, Any]:
        response = getattr(client, method)(url, *([body] if body is not None else []))
        return contract.check(method, url, response)

    agent = call("post", "/v1/agents", {"name": "Front desk", "extraction_fields": ["caller_name"]})
    call("get", "/v1/agents")
    call("get", f"/v1/agents/{agent['id']}")
    call("patch", f"/v1/agents/{agent['id']}", {"temperature": 0.2})
    call("get", "/v1/voices")
    customer = call("post", "/v1/customers", {"name": "Smile Dental", "opening_hours": {"mon": "09:00-17:00"}})
    call("get", "/v1/customers")
    call("patch", f"/v1/customers/{customer['id']}", {"variables": {"dentist": "Dr Lee"}})
    call("get", f"/v1/customers/{customer['id']}")
    with schema_context(alice.account.schema_name):
        answered = Call.objects.create(
            twilio_call_sid="CA" + "1" * 32,
            from_number="+447700900123",
            to_number="+442000000001",
            agent_id=agent["id"],
            customer_id=customer["id"],
            status=Call.COMPLETED,
            summary="Booked.",
            transcript=[{"role": "agent", "text": "Hello", "at": 0.4}],
            extraction={"caller_name": "Ann"},
            duration_seconds=40,
            end_reason="caller_hung_up",
        )
        Call.objects.create(
            twilio_call_sid="CA" + "2" * 32,
            from_number="+447700900124",
            to_number="+442000000001",
            status=Call.REJECTED,
            rejection_reason="concurrent_call_limit",
        )
    assert len(call("get", "/v1/calls?direction=inbound&limit=5")["data"]) == 2
    call("get", f"/v1/calls/{answered.id}")
    call("get", "/v1/phone-numbers")
    call("get", "/v1/jobs")

    # Errors: each answered with the envelope and a code the operation documents.
    bobs_agent = bob.client().post("/v1/agents", {"name": "Bob's"}).json()
    call("get", f"/v1/agents/{bobs_agent['id']}")
    call("patch", "/v1/agents/agent_0000000000000000", {"name": "x"})
    call("post", "/v1/agents", {"name": "x", "system_prompt": "x" * 10_001})
    call("post", "/v1/agents", {"name": "x", "voice_id": "aura-nobody"})
    call("post", "/v1/agents", {"voice_id": 3})
    call("get", "/v1/agents?limit=0")
    call("get", "/v1/calls?status=finished")
    call("get", "/v1/calls?created_after=yesterday")
    call("get", "/v1/calls/call_0000000000000000")
    call("get", "/v1/customers/cus_0000000000000000")
    call("delete", "/v1/customers/cus_0000000000000000")
    call("get", "/v1/phone-numbers/+15550000000")
    call("get", "/v1/jobs/job_0000000000000000")
    call(
        "post",
        "/v1/phone-numbers",
        {"phone_number": "0207", "twilio_sid": "AC" + "0" * 32, "twilio_token": "x", "agent_id": agent["id"]},
    )
    call("delete", f"/v1/customers/{customer['id']}")
    call("delete", f"/v1/agents/{agent['id']}")
    client.authorization = None
    call("get", "/v1/calls")
    client.authorization = f"Bearer {alice.key.api_key.key_id}"
    call("get", "/v1/voices")
    client.authorization = make_persona("Slow", api_rate_per_second=1, api_burst=1).bearer
    call("get", "/v1/customers")
    call("get", "/v1/customers")

    statuses = {status for _, _, status in contract.checked}
    assert {200, 201, 400, 401, 403, 404, 429} <= statuses, statuses
