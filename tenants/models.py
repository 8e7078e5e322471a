"""Public-schema models: accounts (tenants), their domains and API keys, and the
global directories that must be unique across accounts."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django_tenants.models import DomainMixin, TenantMixin


class Account(TenantMixin):
    """A customer account; its data lives in its own PostgreSQL schema."""

    name = models.CharField(max_length=200)
    # Plan limits.
    api_rate_per_second = models.PositiveIntegerField(default=settings.DEFAULT_API_RATE_PER_SECOND)
    api_burst = models.PositiveIntegerField(default=settings.DEFAULT_API_BURST)
    max_concurrent_calls = models.PositiveIntegerField(default=10)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    auto_create_schema = True
    auto_drop_schema = True
    clone_mode = "NODATA"

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.schema_name})"


class Domain(DomainMixin):
    """A Host that serves an account's dashboard and portal."""


class ApiKey(models.Model):
    """`Authorization: Bearer key_id:key_secret`. Only an HMAC of the secret is stored."""

    key_id = models.CharField(max_length=40, unique=True)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=200, blank=True, default="")
    secret_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.key_id

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class AgentDirectoryEntry(models.Model):
    """Which account owns an agent id, so a foreign id answers `agent_not_owned` and an
    unknown one `agent_not_found` without revealing anything about the agent."""

    agent_id = models.CharField(max_length=40, unique=True)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="agent_ids")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.agent_id


class NumberRoute(models.Model):
    """E.164 -> account, for every imported number: a number can be on one agent of one
    account only, and inbound webhooks find the account from the `To` number.

    An import first reserves the route (`pending`), before Twilio is touched, so that
    of two concurrent imports exactly one wins; it becomes `active` with the number row.
    """

    PENDING = "pending"
    ACTIVE = "active"

    phone_number = models.CharField(max_length=16, unique=True)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="number_routes")
    state = models.CharField(max_length=10, default=PENDING)
    # Who holds a pending reservation (an import request or a bulk-job row), so that a
    # retried bulk row can take its own reservation back.
    reserved_by = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.phone_number} -> {self.account_id}"
