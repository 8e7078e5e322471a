"""Secrets at rest (customers' Twilio auth tokens): Fernet with keys of their own.

`settings.FIELD_ENCRYPTION_KEYS` is a list of Fernet keys (urlsafe base64 of 32 random
bytes), independent of SECRET_KEY. The first key encrypts; every key decrypts, so a key
is rotated by putting a new one first, running `manage.py rotate_field_encryption`
(which re-encrypts every value with it), then dropping the old one.

A value that no configured key can decrypt raises `DecryptionError`: the ciphertext is
never handed on as if it were the secret.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


class DecryptionError(Exception):
    """A stored value that none of FIELD_ENCRYPTION_KEYS decrypts (a lost or wrong key)."""


@lru_cache(maxsize=8)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS is empty: set at least one Fernet key.")
    return MultiFernet([Fernet(key) for key in keys])


def current_fernet() -> MultiFernet:
    """The keys in force (read from settings each time, so a changed setting takes effect)."""
    return _fernet(tuple(settings.FIELD_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return current_fernet().encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt(ciphertext: str) -> str:
    try:
        return current_fernet().decrypt(ciphertext.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError):
        raise DecryptionError(
            "a stored secret could not be decrypted with any of FIELD_ENCRYPTION_KEYS "
            "(a key was removed too early, or the value is not ours)"
        ) from None


def reencrypt(ciphertext: str) -> str:
    """The same secret encrypted with the first key (for key rotation)."""
    try:
        return current_fernet().rotate(ciphertext.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeError):
        raise DecryptionError("a stored secret could not be decrypted with any of FIELD_ENCRYPTION_KEYS") from None


class EncryptedTextField(models.TextField):
    """Text stored as a Fernet token. Python code only ever sees the plaintext; reading a
    value that cannot be decrypted raises DecryptionError. Not searchable or orderable."""

    description = "Text encrypted with FIELD_ENCRYPTION_KEYS"

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(str(value))

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if value is None or value == "":
            return value
        return decrypt(value)
