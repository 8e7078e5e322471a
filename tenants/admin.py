"""Platform operators manage accounts, domains and API keys from the public host."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django_tenants.admin import TenantAdminMixin

from tenants.models import Account, AgentDirectoryEntry, ApiKey, Domain, NumberRoute
from tenants.services import create_api_key, revoke_api_key


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 0


@admin.register(Account)
class AccountAdmin(TenantAdminMixin, admin.ModelAdmin):
    list_display = ("name", "schema_name", "max_concurrent_calls", "api_rate_per_second", "is_active", "created_at")
    search_fields = ("name", "schema_name")
    inlines = [DomainInline]
    actions = ["issue_api_key"]

    @admin.action(description="Issue a new API key (the secret is shown once)")
    def issue_api_key(self, request: HttpRequest, queryset: QuerySet[Account]) -> None:
        for account in queryset:
            issued = create_api_key(account=account, name="admin")
            self.message_user(
                request,
                f"{account.name}: {issued.api_key.key_id}:{issued.secret} — copy it now, it is not shown again.",
                messages.WARNING,
            )


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin):
    list_display = ("domain", "tenant", "is_primary")
    search_fields = ("domain",)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("key_id", "account", "name", "created_at", "last_used_at", "revoked_at")
    search_fields = ("key_id", "account__name")
    list_filter = ("revoked_at",)
    readonly_fields = ("key_id", "account", "secret_hash", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # keys are issued from the account page, so the secret can be shown once

    @admin.action(description="Revoke selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for api_key in queryset:
            revoke_api_key(api_key=api_key)


@admin.register(AgentDirectoryEntry)
class AgentDirectoryAdmin(admin.ModelAdmin):
    list_display = ("agent_id", "account", "created_at")
    search_fields = ("agent_id",)


@admin.register(NumberRoute)
class NumberRouteAdmin(admin.ModelAdmin):
    """Which account answers each imported number (inbound webhooks are routed by it)."""

    list_display = ("phone_number", "account", "state", "created_at", "updated_at")
    search_fields = ("phone_number", "account__name", "account__schema_name")
    list_filter = ("state",)
    readonly_fields = ("phone_number", "account", "reserved_by", "created_at", "updated_at")
