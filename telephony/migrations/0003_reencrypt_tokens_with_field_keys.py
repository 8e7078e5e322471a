"""Re-encrypt stored Twilio tokens with FIELD_ENCRYPTION_KEYS (real Fernet keys).

Until now django-fernet-encrypted-fields encrypted them with keys derived from SECRET_KEY
(PBKDF2-SHA256, 100,000 iterations) salted with each value of the old
FIELD_ENCRYPTION_KEYS setting, which now lives in FIELD_ENCRYPTION_LEGACY_SALTS. Each
value is decrypted with those legacy keys and encrypted again with the new ones. A value
that neither decrypts stops the migration, naming the settings to check: nothing is
silently kept as it was.

The old scheme is written out here (not imported) so that this migration keeps working
whatever the library or the project's field code become.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from django.conf import settings
from django.db import migrations

# (table, column) of every encrypted value in the telephony app at this point.
ENCRYPTED_COLUMNS = [("telephony_phonenumber", "twilio_auth_token"), ("telephony_jobrow", "twilio_token")]


@lru_cache(maxsize=4)
def _legacy_fernet(secret_keys: tuple[str, ...], salts: tuple[str, ...]) -> MultiFernet | None:
    keys = []
    for secret_key in secret_keys:
        for salt in salts:
            kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt.encode("utf-8"), iterations=100_000)
            keys.append(Fernet(base64.urlsafe_b64encode(kdf.derive(secret_key.encode("utf-8")))))
    return MultiFernet(keys) if keys else None


def legacy_fernet() -> MultiFernet | None:
    secret_keys = (settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", []))
    return _legacy_fernet(tuple(secret_keys), tuple(settings.FIELD_ENCRYPTION_LEGACY_SALTS))


def current_fernet() -> MultiFernet:
    return MultiFernet([Fernet(key) for key in settings.FIELD_ENCRYPTION_KEYS])


def _convert(
    schema_editor: Any,
    source: Callable[[], MultiFernet | None],
    target: Callable[[], MultiFernet | None],
    skip_if_readable_by: MultiFernet | None,
) -> None:
    """Decrypt every stored value with `source`, encrypt it with `target` (both built only
    if there is something to convert: deriving the legacy keys is slow on purpose)."""
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        for table, column in ENCRYPTED_COLUMNS:
            cursor.execute(
                f'SELECT id, "{column}" FROM "{table}" WHERE "{column}" IS NOT NULL AND "{column}" <> %s', [""]
            )
            for row_id, stored in cursor.fetchall():
                token = stored.encode("ascii")
                if skip_if_readable_by is not None:
                    try:
                        skip_if_readable_by.decrypt(token)
                        continue  # already under the new keys
                    except InvalidToken:
                        pass
                decrypt, encrypt = source(), target()
                if decrypt is None or encrypt is None:
                    raise RuntimeError(
                        _UNREADABLE.format(where=f"{table}.{column} id={row_id}", schema=connection.schema_name)
                    )
                try:
                    plaintext = decrypt.decrypt(token)
                except InvalidToken:
                    raise RuntimeError(
                        _UNREADABLE.format(where=f"{table}.{column} id={row_id}", schema=connection.schema_name)
                    ) from None
                cursor.execute(
                    f'UPDATE "{table}" SET "{column}" = %s WHERE id = %s',
                    [encrypt.encrypt(plaintext).decode("ascii"), row_id],
                )


_UNREADABLE = (
    "{where} in schema {schema!r} was encrypted with the old scheme and cannot be converted. Set "
    "FIELD_ENCRYPTION_LEGACY_SALTS to the value FIELD_ENCRYPTION_KEYS had before, and keep SECRET_KEY (and "
    "SECRET_KEY_FALLBACKS) as they were when the value was written."
)


def forwards(apps: Any, schema_editor: Any) -> None:
    _convert(schema_editor, source=legacy_fernet, target=current_fernet, skip_if_readable_by=current_fernet())


def backwards(apps: Any, schema_editor: Any) -> None:
    _convert(schema_editor, source=current_fernet, target=legacy_fernet, skip_if_readable_by=None)


class Migration(migrations.Migration):
    dependencies = [
        ("telephony", "0002_call"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards),
    ]
