"""An existing database keeps working: tokens written by django-fernet-encrypted-fields (keys
derived from SECRET_KEY, salted with the old FIELD_ENCRYPTION_KEYS value) are re-encrypted
with the new Fernet keys, and each Twilio account's numbers come to share one TwilioAccount.

A schema of its own is migrated to the state before this change, filled the way the old
code filled it, then migrated forward, as `migrate_all` does on a deployed database.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from cryptography.fernet import Fernet, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import override_settings
from django.utils import timezone

from telephony.models import JobRow, PhoneNumber, TwilioAccount
from tenants.db import tenant_connection

BEFORE = ("telephony", "0002_call")
OLD_SALT = "the-old-field-encryption-keys-value"


def legacy_encrypt(plaintext: str, secret_key: str, salt: str) -> str:
    """What django-fernet-encrypted-fields 0.4.0 stored: Fernet with
    PBKDF2-SHA256(SECRET_KEY, salt=the FIELD_ENCRYPTION_KEYS value, 100,000 iterations)."""
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt.encode(), iterations=100_000)
    key = base64.urlsafe_b64encode(kdf.derive(secret_key.encode()))
    return MultiFernet([Fernet(key)]).encrypt(plaintext.encode()).decode()


def _latest() -> tuple[str, str]:
    executor = MigrationExecutor(connection)
    return [node for node in executor.loader.graph.leaf_nodes() if node[0] == "telephony"][0]


def _migrate(target: tuple[str, str]) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate([target])


@pytest.fixture
def old_schema() -> Iterator[str]:
    """A tenant schema migrated up to the code before TwilioAccount existed."""
    name = f"legacy_{uuid.uuid4().hex[:8]}"
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE SCHEMA "{name}"')
    tenant_connection().set_schema(name)
    try:
        _migrate(BEFORE)
        yield name
    finally:
        tenant_connection().set_schema_to_public()
        with connection.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA "{name}" CASCADE')


def _old_rows(schema: str, secret_key: str, salt: str) -> dict[str, Any]:
    """Numbers and a pending bulk row as the old code wrote them."""
    old_apps = MigrationExecutor(connection).loader.project_state(BEFORE).apps
    Agent = old_apps.get_model("agents", "Agent")
    OldNumber = old_apps.get_model("telephony", "PhoneNumber")
    Job = old_apps.get_model("telephony", "Job")
    OldRow = old_apps.get_model("telephony", "JobRow")
    agent = Agent.objects.create(name="Front desk")
    sid_a, sid_b = "AC" + uuid.uuid4().hex, "AC" + uuid.uuid4().hex
    now = timezone.now()
    numbers = [  # (number, account, token, created): A's token was rotated before its second import
        ("+442000000001", sid_a, "token-a-before-rotation", now - timedelta(days=2)),
        ("+442000000002", sid_a, "token-a-after-rotation", now - timedelta(days=1)),
        ("+442000000003", sid_b, "token-b", now),
    ]
    for e164, sid, _token, created in numbers:
        number = OldNumber.objects.create(
            phone_number=e164,
            agent=agent,
            twilio_account_sid=sid,
            twilio_number_sid="PN" + uuid.uuid4().hex,
            twilio_auth_token="placeholder",
            voice_url="https://x.example/voice",
            sms_url="https://x.example/sms",
            status_callback_url="https://x.example/status",
        )
        OldNumber.objects.filter(pk=number.pk).update(created_at=created)
    job = Job.objects.create(kind="phone_numbers.bulk_import", total=1)
    OldRow.objects.create(job=job, index=0, params={"phone_number": "+442000000009"}, twilio_token="placeholder")
    # The columns as the old library wrote them.
    with connection.cursor() as cursor:
        for e164, _, token, _ in numbers:
            cursor.execute(
                "UPDATE telephony_phonenumber SET twilio_auth_token = %s WHERE phone_number = %s",
                [legacy_encrypt(token, secret_key, salt), e164],
            )
        cursor.execute(
            "UPDATE telephony_jobrow SET twilio_token = %s WHERE job_id = %s",
            [legacy_encrypt("token-in-a-pending-row", secret_key, salt), job.pk],
        )
    return {"sid_a": sid_a, "sid_b": sid_b, "job_id": job.pk}


@override_settings(FIELD_ENCRYPTION_LEGACY_SALTS=["some-other-salt", OLD_SALT])
def test_old_ciphertexts_are_reencrypted_and_numbers_share_their_twilio_account(old_schema: str) -> None:
    old = _old_rows(old_schema, settings.SECRET_KEY, OLD_SALT)
    _migrate(_latest())

    accounts = {a.account_sid: a for a in TwilioAccount.objects.all()}
    assert set(accounts) == {old["sid_a"], old["sid_b"]}
    # The newest import of account A carried its current token.
    assert accounts[old["sid_a"]].auth_token == "token-a-after-rotation"
    assert accounts[old["sid_b"]].auth_token == "token-b"
    numbers = {n.phone_number: n for n in PhoneNumber.objects.select_related("twilio_account")}
    assert numbers["+442000000001"].twilio_account_id == numbers["+442000000002"].twilio_account_id
    assert numbers["+442000000001"].twilio_auth_token == "token-a-after-rotation"
    assert numbers["+442000000003"].twilio_account_sid == old["sid_b"]
    assert JobRow.objects.get(job_id=old["job_id"]).twilio_token == "token-in-a-pending-row"
    # Stored under the new keys only: readable without SECRET_KEY or the old salt.
    with connection.cursor() as cursor:
        cursor.execute("SELECT auth_token FROM telephony_twilioaccount WHERE account_sid = %s", [old["sid_b"]])
        raw = cursor.fetchone()[0]
    assert Fernet(settings.FIELD_ENCRYPTION_KEYS[0]).decrypt(raw.encode()) == b"token-b"


@override_settings(FIELD_ENCRYPTION_LEGACY_SALTS=["not-the-salt-it-was-written-with"])
def test_without_the_old_salt_the_migration_stops_naming_the_setting(old_schema: str) -> None:
    _old_rows(old_schema, settings.SECRET_KEY, OLD_SALT)
    with pytest.raises(RuntimeError, match="FIELD_ENCRYPTION_LEGACY_SALTS"):
        _migrate(_latest())
    # Nothing half-done: the schema is still at the old state, its values as they were.
    applied = MigrationExecutor(connection).loader.applied_migrations
    assert ("telephony", "0003_reencrypt_tokens_with_field_keys") not in applied
    with connection.cursor() as cursor:
        cursor.execute("SELECT twilio_auth_token FROM telephony_phonenumber WHERE phone_number = '+442000000003'")
        stored = cursor.fetchone()[0]
    assert stored.startswith("gAAAAA")
    # With the right salt it goes through.
    with override_settings(FIELD_ENCRYPTION_LEGACY_SALTS=[OLD_SALT]):
        _migrate(_latest())
    assert PhoneNumber.objects.get(phone_number="+442000000003").twilio_auth_token == "token-b"


def test_an_empty_database_needs_no_legacy_salt(old_schema: str) -> None:
    with override_settings(FIELD_ENCRYPTION_LEGACY_SALTS=[]):
        _migrate(_latest())
    assert not TwilioAccount.objects.exists()
