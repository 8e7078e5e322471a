"""Accounts and API keys: creation, authentication, revocation."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from nixflex.errors import ApiError
from nixflex.ids import new_id
from tenants.models import Account, ApiKey, Domain

# last_used_at is informative; writing it on every request would cost a write per call.
LAST_USED_RESOLUTION = timedelta(minutes=1)
_KEY_ID_RE = re.compile(r"^key_[0-9a-f]{16}$")


@dataclass(frozen=True)
class IssuedKey:
    """A key as shown once, at creation: the secret is never retrievable again."""

    api_key: ApiKey
    secret: str

    def as_dict(self) -> dict[str, str]:
        return {"key_id": self.api_key.key_id, "key_secret": self.secret}


def hash_secret(secret: str) -> str:
    return hmac.new(settings.API_KEY_PEPPER.encode(), secret.encode(), hashlib.sha256).hexdigest()


def _schema_name_for(name: str) -> str:
    base = slugify(name).replace("-", "_")[:40] or "account"
    if not base[0].isalpha():
        base = f"a_{base}"
    return f"{base}_{secrets.token_hex(3)}"


def create_account(*, name: str, domain: str, **plan: int) -> tuple[Account, IssuedKey]:
    """Create an account, its schema (cloned from the template), its primary domain and
    a first API key."""
    account = Account(name=name, schema_name=_schema_name_for(name), **plan)
    account.save(verbosity=0)  # clones the template schema (see TENANT_BASE_SCHEMA)
    with transaction.atomic():
        Domain.objects.create(domain=domain.lower(), tenant=account, is_primary=True)
        issued = create_api_key(account=account, name="default")
    return account, issued


def create_api_key(*, account: Account, name: str = "") -> IssuedKey:
    secret = f"sk_{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.create(key_id=new_id("key"), account=account, name=name, secret_hash=hash_secret(secret))
    return IssuedKey(api_key=api_key, secret=secret)


def revoke_api_key(*, api_key: ApiKey) -> None:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])


def authenticate_bearer(authorization: str | None) -> ApiKey:
    """`Bearer key_id:key_secret` -> the live ApiKey (with its account), or ApiError."""
    if not authorization:
        raise ApiError(
            "invalid_api_key", "Missing Authorization header. Use 'Authorization: Bearer key_id:key_secret'."
        )
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise ApiError(
            "invalid_api_key", "Malformed Authorization header. Use 'Authorization: Bearer key_id:key_secret'."
        )
    key_id, sep, secret = credentials.strip().partition(":")
    if not sep or not secret:
        if _KEY_ID_RE.match(key_id):
            raise ApiError("key_secret_required")
        raise ApiError("invalid_api_key")
    api_key = (
        ApiKey.objects.select_related("account").filter(key_id=key_id).first() if _KEY_ID_RE.match(key_id) else None
    )
    # Compare even when the key is unknown, so timing does not reveal which ids exist.
    expected = api_key.secret_hash if api_key else hash_secret("no-such-key")
    matches = hmac.compare_digest(expected, hash_secret(secret))
    if api_key is None or not matches or api_key.is_revoked or not api_key.account.is_active:
        raise ApiError("invalid_api_key")
    _touch(api_key)
    return api_key


def _touch(api_key: ApiKey) -> None:
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
