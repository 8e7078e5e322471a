"""DRF authentication: the API key names the account, and the request then runs in
that account's schema. This is the one place an API request's tenant is decided."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from nixflex.errors import ApiError
from tenants.db import tenant_connection
from tenants.models import Account, ApiKey
from tenants.services import authenticate_bearer


@dataclass(frozen=True)
class ApiPrincipal:
    """request.user for API requests."""

    api_key: ApiKey

    @property
    def account(self) -> Account:
        return self.api_key.account

    is_authenticated = True
    is_anonymous = False


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[ApiPrincipal, ApiKey]:
        api_key = authenticate_bearer(request.META.get("HTTP_AUTHORIZATION"))
        _check_host(getattr(request._request, "tenant", None), api_key)
        tenant_connection().set_tenant(api_key.account)
        request._request.tenant = api_key.account  # type: ignore[attr-defined]  # django-tenants' request attribute, unknown to HttpRequest's stubs
        return ApiPrincipal(api_key), api_key

    def authenticate_header(self, request: Request) -> str:
        return "Bearer"


def _check_host(host_account: Account | None, api_key: ApiKey) -> None:
    """On an account's own domain (its dashboard host) only that account's keys work: a
    key of account A sent to B's host must never be answered with A's data under B's
    name. The API hosts (no account in the Host) accept every account's key.

    Refused as invalid_api_key (401), like any key that is not valid where it is used:
    the seed's permission_error is for a valid caller reaching another's resource, and
    here the credential itself does not belong to this host.
    """
    if host_account is None or host_account.schema_name == settings.PUBLIC_SCHEMA_NAME:
        return
    if host_account.pk != api_key.account_id:
        raise ApiError(
            "invalid_api_key",
            "This API key belongs to another account than the one this host serves. "
            "Use the API host, or a key of this account.",
            {"reason": "key_not_valid_for_host"},
        )
