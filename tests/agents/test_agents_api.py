"""/v1/agents and /v1/voices, including what an outsider account can and cannot do."""

from __future__ import annotations

import re

from django_tenants.utils import schema_context

from agents.models import Agent
from tests.conftest import Persona, assert_error


def _create(persona: Persona, **fields) -> dict:
    response = persona.client().post("/v1/agents", {"name": "Dental receptionist", **fields})
    assert response.status_code == 201, response.content
    return response.json()


def test_create_agent_returns_it_with_defaults(alice: Persona) -> None:
    agent = _create(alice, system_prompt="You answer for {{clinic_name}}.", first_message="Hi, {{clinic_name}}!")
    assert re.fullmatch(r"agent_[0-9a-f]{16}", agent["id"])
    assert agent["object"] == "agent"
    assert agent["voice_id"] == "aura-2-thalia-en"
    assert agent["system_prompt"] == "You answer for {{clinic_name}}."
    assert agent["created_at"]
    with schema_context(alice.account.schema_name):
        assert Agent.objects.filter(id=agent["id"]).exists()


def test_create_requires_a_name_and_names_the_field(alice: Persona) -> None:
    error = assert_error(
        alice.client().post("/v1/agents", {"system_prompt": "x"}), 400, "invalid_request", "invalid_request"
    )
    assert "name" in error["details"]["fields"]


def test_invalid_field_types_are_reported_per_field(alice: Persona) -> None:
    response = alice.client().post("/v1/agents", {"name": "x", "temperature": "hot", "max_call_seconds": 5})
    error = assert_error(response, 400, "invalid_request", "invalid_request")
    assert set(error["details"]["fields"]) == {"temperature", "max_call_seconds"}


def test_prompt_over_10000_chars_is_prompt_too_long(alice: Persona) -> None:
    response = alice.client().post("/v1/agents", {"name": "x", "system_prompt": "a" * 10_001})
    error = assert_error(response, 400, "invalid_request", "prompt_too_long")
    assert "system_prompt" in error["details"]["fields"]
    assert _create(alice, system_prompt="a" * 10_000)["system_prompt"] == "a" * 10_000


def test_unknown_voice_is_invalid_voice_id(alice: Persona) -> None:
    response = alice.client().post("/v1/agents", {"name": "x", "voice_id": "aura-2-nobody-en"})
    assert_error(response, 400, "invalid_request", "invalid_voice_id")
    assert _create(alice, voice_id="aura-2-helena-en")["voice_id"] == "aura-2-helena-en"


def test_bad_input_loses_nothing(alice: Persona) -> None:
    agent = _create(alice, system_prompt="original")
    response = alice.client().patch(f"/v1/agents/{agent['id']}", {"system_prompt": "b" * 20_000, "name": "new"})
    assert_error(response, 400, "invalid_request", "prompt_too_long")
    fetched = alice.client().get(f"/v1/agents/{agent['id']}").json()
    assert (fetched["name"], fetched["system_prompt"]) == ("Dental receptionist", "original")


def test_get_patch_delete(alice: Persona) -> None:
    agent = _create(alice)
    client = alice.client()
    assert client.get(f"/v1/agents/{agent['id']}").json()["name"] == "Dental receptionist"
    patched = client.patch(f"/v1/agents/{agent['id']}", {"first_message": "Hello!", "voice_id": "aura-2-zeus-en"})
    assert patched.status_code == 200
    assert (patched.json()["first_message"], patched.json()["voice_id"]) == ("Hello!", "aura-2-zeus-en")
    deleted = client.delete(f"/v1/agents/{agent['id']}")
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert_error(client.get(f"/v1/agents/{agent['id']}"), 404, "not_found", "agent_not_found")


def test_unknown_agent_is_agent_not_found(alice: Persona) -> None:
    for agent_id in ("agent_0000000000000000", "nonsense"):
        assert_error(alice.client().get(f"/v1/agents/{agent_id}"), 404, "not_found", "agent_not_found")


def test_outsider_gets_agent_not_owned_and_changes_nothing(alice: Persona, bob: Persona) -> None:
    agent = _create(alice, system_prompt="alice's secret prompt")
    outsider = bob.client()
    for response in (
        outsider.get(f"/v1/agents/{agent['id']}"),
        outsider.patch(f"/v1/agents/{agent['id']}", {"name": "hijacked"}),
        outsider.delete(f"/v1/agents/{agent['id']}"),
    ):
        error = assert_error(response, 403, "permission_error", "agent_not_owned")
        assert "alice" not in response.content.decode().lower()
        assert error["details"] == {"agent_id": agent["id"]}
    assert outsider.get("/v1/agents").json() == {"data": [], "has_more": False}
    fetched = alice.client().get(f"/v1/agents/{agent['id']}").json()
    assert fetched["name"] == "Dental receptionist"


def test_list_is_newest_first_with_cursor_pagination(alice: Persona) -> None:
    ids = [_create(alice, name=f"agent {i}")["id"] for i in range(5)]
    client = alice.client()
    first = client.get("/v1/agents", {"limit": 2}).json()
    assert [a["id"] for a in first["data"]] == ids[::-1][:2] and first["has_more"] is True
    second = client.get("/v1/agents", {"limit": 2, "starting_after": first["data"][-1]["id"]}).json()
    assert [a["id"] for a in second["data"]] == ids[::-1][2:4] and second["has_more"] is True
    third = client.get("/v1/agents", {"limit": 2, "starting_after": second["data"][-1]["id"]}).json()
    assert [a["id"] for a in third["data"]] == ids[::-1][4:] and third["has_more"] is False


def test_pagination_rejects_bad_limits_and_cursors(alice: Persona, bob: Persona) -> None:
    client = alice.client()
    for limit in (0, 101, "ten"):
        error = assert_error(client.get("/v1/agents", {"limit": limit}), 400, "invalid_request", "invalid_request")
        assert "limit" in error["details"]["fields"]
    bobs = _create(bob)
    # Another account's id is not a cursor here.
    assert_error(client.get("/v1/agents", {"starting_after": bobs["id"]}), 400, "invalid_request", "invalid_request")


def test_voices_lists_aura_voices(alice: Persona) -> None:
    voices = alice.client().get("/v1/voices").json()["data"]
    ids = {v["id"] for v in voices}
    assert {"aura-2-thalia-en", "aura-2-celeste-es", "aura-asteria-en"} <= ids
