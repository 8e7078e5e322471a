"""Authentication with `Authorization: Bearer key_id:key_secret`."""

from __future__ import annotations

from django.db import connection

from tenants.models import ApiKey
from tenants.services import create_api_key, hash_secret, revoke_api_key
from tests.conftest import ApiClient, Persona, assert_error


def test_valid_key_authenticates_and_records_use(alice: Persona) -> None:
    response = alice.client().get("/v1/agents")
    assert response.status_code == 200
    assert ApiKey.objects.get(pk=alice.key.api_key.pk).last_used_at is not None


def test_missing_header_is_invalid_api_key(alice: Persona) -> None:
    assert_error(ApiClient(None).get("/v1/agents"), 401, "authentication_error", "invalid_api_key")


def test_wrong_scheme_is_invalid_api_key(alice: Persona) -> None:
    raw = f"Basic {alice.key.api_key.key_id}:{alice.key.secret}"
    assert_error(ApiClient(raw).get("/v1/agents"), 401, "authentication_error", "invalid_api_key")


def test_unknown_key_is_invalid_api_key(alice: Persona) -> None:
    response = ApiClient(f"Bearer key_0000000000000000:{alice.key.secret}").get("/v1/agents")
    assert_error(response, 401, "authentication_error", "invalid_api_key")


def test_wrong_secret_is_invalid_api_key(alice: Persona) -> None:
    response = ApiClient(f"Bearer {alice.key.api_key.key_id}:sk_wrong").get("/v1/agents")
    assert_error(response, 401, "authentication_error", "invalid_api_key")


def test_key_id_without_secret_is_key_secret_required(alice: Persona) -> None:
    for header in (f"Bearer {alice.key.api_key.key_id}", f"Bearer {alice.key.api_key.key_id}:"):
        assert_error(ApiClient(header).get("/v1/agents"), 401, "authentication_error", "key_secret_required")


def test_revoked_key_is_invalid_api_key(alice: Persona) -> None:
    revoke_api_key(api_key=alice.key.api_key)
    assert_error(alice.client().get("/v1/agents"), 401, "authentication_error", "invalid_api_key")


def test_secret_of_another_key_does_not_work(alice: Persona, bob: Persona) -> None:
    response = ApiClient(f"Bearer {alice.key.api_key.key_id}:{bob.key.secret}").get("/v1/agents")
    assert_error(response, 401, "authentication_error", "invalid_api_key")


def test_secret_is_stored_only_as_a_peppered_hash(alice: Persona) -> None:
    stored = ApiKey.objects.get(pk=alice.key.api_key.pk)
    assert alice.key.secret not in stored.secret_hash
    assert stored.secret_hash == hash_secret(alice.key.secret)
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM public.tenants_apikey WHERE key_id = %s", [stored.key_id])
        row = cursor.fetchone()
    assert all(alice.key.secret not in str(value) for value in row)


def test_second_key_of_an_account_works_and_sees_the_same_data(alice: Persona) -> None:
    created = alice.client().post("/v1/agents", {"name": "Receptionist"})
    assert created.status_code == 201
    second = create_api_key(account=alice.account, name="ci")
    client = ApiClient(f"Bearer {second.api_key.key_id}:{second.secret}")
    ids = [agent["id"] for agent in client.get("/v1/agents").json()["data"]]
    assert ids == [created.json()["id"]]
