"""An API key works on the API host and on its own account's domain, never on another
account's domain (its dashboard host)."""

from __future__ import annotations

from tenants.models import Domain
from tests.conftest import ApiClient, Persona, assert_error


def _host(persona: Persona) -> str:
    return Domain.objects.get(tenant=persona.account, is_primary=True).domain


def test_key_of_another_account_on_a_dashboard_host_is_refused(alice: Persona, bob: Persona) -> None:
    alices = alice.client().post("/v1/agents", {"name": "Alice's agent"}).json()
    bob.client().post("/v1/agents", {"name": "Bob's agent"})
    on_bobs_host = ApiClient(alice.bearer, host=_host(bob))
    for response in (
        on_bobs_host.get("/v1/agents"),
        on_bobs_host.get(f"/v1/agents/{alices['id']}"),
        on_bobs_host.post("/v1/agents", {"name": "planted"}),
        on_bobs_host.delete(f"/v1/agents/{alices['id']}"),
    ):
        error = assert_error(response, 401, "authentication_error", "invalid_api_key")
        assert error["details"] == {"reason": "key_not_valid_for_host"}
        assert b"Alice's agent" not in response.content
    names = {a["name"] for a in alice.client().get("/v1/agents").json()["data"]}
    assert names == {"Alice's agent"}  # nothing planted, nothing deleted
    assert {a["name"] for a in bob.client().get("/v1/agents").json()["data"]} == {"Bob's agent"}


def test_own_key_on_own_host_and_any_key_on_the_api_host(alice: Persona, bob: Persona) -> None:
    alice.client().post("/v1/agents", {"name": "Alice's agent"})
    own = ApiClient(alice.bearer, host=_host(alice)).get("/v1/agents")
    assert own.status_code == 200 and [a["name"] for a in own.json()["data"]] == ["Alice's agent"]
    assert ApiClient(bob.bearer, host="api.localhost").get("/v1/agents").json()["data"] == []
