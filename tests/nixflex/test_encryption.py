"""Secrets at rest: Fernet keys of their own (not SECRET_KEY), loud when a value cannot be
decrypted, and keys that rotate (the first encrypts, all decrypt, a command re-encrypts)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import override_settings
from django_tenants.utils import schema_context

from nixflex.encryption import DecryptionError, decrypt, encrypt
from telephony.management.commands.rotate_field_encryption import encrypted_columns, reencrypt_schema
from telephony.models import TwilioAccount
from tests.conftest import Persona

TOKEN = "0123456789abcdef0123456789abcdef"


def _store(persona: Persona, token: str = TOKEN) -> str:
    sid = "AC" + Fernet.generate_key().hex()[:32]
    with schema_context(persona.account.schema_name):
        TwilioAccount.objects.create(account_sid=sid, auth_token=token)
    return sid


def _raw(persona: Persona, sid: str) -> str:
    with schema_context(persona.account.schema_name), connection.cursor() as cursor:
        cursor.execute("SELECT auth_token FROM telephony_twilioaccount WHERE account_sid = %s", [sid])
        return cursor.fetchone()[0]


def _read(persona: Persona, sid: str) -> str:
    with schema_context(persona.account.schema_name):
        return TwilioAccount.objects.get(account_sid=sid).auth_token


def test_stored_as_a_fernet_token_of_the_first_key(alice: Persona) -> None:
    sid = _store(alice)
    raw = _raw(alice, sid)
    assert TOKEN not in raw
    assert Fernet(settings.FIELD_ENCRYPTION_KEYS[0]).decrypt(raw.encode()).decode() == TOKEN
    assert _read(alice, sid) == TOKEN


def test_not_derived_from_secret_key(alice: Persona) -> None:
    """Changing SECRET_KEY (rotating the session/signing key) leaves stored secrets readable."""
    sid = _store(alice)
    with override_settings(SECRET_KEY="a-completely-different-secret-key", SECRET_KEY_FALLBACKS=[]):
        assert _read(alice, sid) == TOKEN
        other = _store(alice, "written-under-another-secret-key")
    assert _read(alice, other) == "written-under-another-secret-key"


def test_a_value_no_key_decrypts_raises_instead_of_passing_the_ciphertext_on(alice: Persona) -> None:
    sid = _store(alice)
    with override_settings(FIELD_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]):
        with pytest.raises(DecryptionError):
            _read(alice, sid)
        with pytest.raises(DecryptionError):
            decrypt(_raw(alice, sid))
    with pytest.raises(DecryptionError):
        decrypt("not a fernet token at all")
    assert _read(alice, sid) == TOKEN  # the right key still reads it


def _rotate_everything(keys: list[str]) -> str:
    out = io.StringIO()
    with override_settings(FIELD_ENCRYPTION_KEYS=keys):
        call_command("rotate_field_encryption", stdout=out)
    return out.getvalue()


def test_key_rotation_first_key_encrypts_all_decrypt_and_the_command_reencrypts(alice: Persona, bob: Persona) -> None:
    old = settings.FIELD_ENCRYPTION_KEYS[0]
    new = Fernet.generate_key().decode()
    alice_sid, bob_sid = _store(alice), _store(bob, "bobs-token")
    try:
        with override_settings(FIELD_ENCRYPTION_KEYS=[new, old]):
            # Both keys decrypt; new values are written with the new key.
            assert _read(alice, alice_sid) == TOKEN
            fresh = _store(alice, "fresh")
            Fernet(new).decrypt(_raw(alice, fresh).encode())
        report = _rotate_everything([new, old])
        assert "Re-encrypted" in report
        with override_settings(FIELD_ENCRYPTION_KEYS=[new]):  # the old key is gone
            assert _read(alice, alice_sid) == TOKEN and _read(bob, bob_sid) == "bobs-token"
            assert _read(alice, fresh) == "fresh"
        with pytest.raises(DecryptionError):
            _read(alice, alice_sid)  # under the old key alone it no longer reads
    finally:
        # Leave every schema of this test session under the key the other tests use.
        _rotate_everything([old, new])
    assert _read(alice, alice_sid) == TOKEN


def test_rotation_stops_loudly_on_a_value_it_cannot_decrypt_and_changes_nothing(alice: Persona) -> None:
    good = _store(alice)
    lost_key = Fernet.generate_key().decode()
    with override_settings(FIELD_ENCRYPTION_KEYS=[lost_key]):
        lost = _store(alice, "written-with-a-key-we-lost")
    before = _raw(alice, good)
    columns = encrypted_columns({"telephony"})
    with (
        override_settings(FIELD_ENCRYPTION_KEYS=[Fernet.generate_key().decode(), *settings.FIELD_ENCRYPTION_KEYS]),
        pytest.raises(CommandError, match="cannot be decrypted"),
    ):
        reencrypt_schema(columns, alice.account.schema_name)
    assert _raw(alice, good) == before  # one transaction per schema: nothing half-rotated
    with schema_context(alice.account.schema_name), connection.cursor() as cursor:
        cursor.execute("DELETE FROM telephony_twilioaccount WHERE account_sid = %s", [lost])


def test_the_field_encrypts_every_encrypted_column_of_the_tenant_apps() -> None:
    found: dict[str, Any] = {model.__name__: columns for model, columns in encrypted_columns({"telephony"})}
    assert found == {"TwilioAccount": ["auth_token"], "JobRow": ["twilio_token"]}
    assert decrypt(encrypt("x")) == "x"
