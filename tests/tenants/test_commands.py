"""Operator commands and the speed of creating an account."""

from __future__ import annotations

import json
import subprocess
import sys

from django_tenants.utils import schema_context, schema_exists

from agents.models import Agent
from tenants.models import Account, ApiKey, Domain
from tenants.services import hash_secret
from tests.conftest import ROOT, ApiClient, _subprocess_env


def _manage(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=_subprocess_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def test_create_account_prints_a_working_key() -> None:
    printed = _manage("create_account", "--name", "Acme Clinics", "--domain", "Acme-Cmd.localhost")
    assert {"schema_name", "domain", "key_id", "key_secret"} <= set(printed)
    assert printed["domain"] == "acme-cmd.localhost"
    account = Account.objects.get(schema_name=printed["schema_name"])
    assert Domain.objects.get(domain="acme-cmd.localhost").tenant_id == account.pk
    assert schema_exists(account.schema_name)
    assert ApiKey.objects.get(key_id=printed["key_id"]).secret_hash == hash_secret(printed["key_secret"])
    response = ApiClient(f"Bearer {printed['key_id']}:{printed['key_secret']}").get("/v1/agents")
    assert response.status_code == 200


def test_new_account_schema_is_empty_and_separate(alice, bob) -> None:
    alice.client().post("/v1/agents", {"name": "Only Alice's"})
    with schema_context(bob.account.schema_name):
        assert Agent.objects.count() == 0
    with schema_context(alice.account.schema_name):
        assert Agent.objects.count() == 1


def test_create_api_key_command(alice) -> None:
    printed = _manage("create_api_key", "--account", alice.account.schema_name, "--name", "ci")
    assert printed["schema_name"] == alice.account.schema_name
    response = ApiClient(f"Bearer {printed['key_id']}:{printed['key_secret']}").get("/v1/agents")
    assert response.status_code == 200
