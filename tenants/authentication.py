"""DRF authentication: the API key names the account, and the request then runs in
that account's schema. This is the one place an API request's tenant is decided."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

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
        connection.set_tenant(api_key.account)
        request._request.tenant = api_key.account
        return ApiPrincipal(api_key), api_key

    def authenticate_header(self, request: Request) -> str:
        return "Bearer"
