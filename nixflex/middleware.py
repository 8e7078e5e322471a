"""Request middleware: which schema serves a Host, and the /v1/ error envelope."""

from __future__ import annotations

import json
import logging
from typing import Callable

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django_tenants.middleware.main import TenantMainMiddleware

from nixflex.errors import ApiError, error_json_response, to_api_error

logger = logging.getLogger(__name__)

API_PREFIX = "/v1/"


class TenantByHostMiddleware(TenantMainMiddleware):
    """Dashboards and portals resolve the account from the Host (django-tenants' way).

    The API host, the admin and Twilio webhooks are served by the public schema: a Host
    that is not an account's domain gets the public URLconf, never a 404. API requests
    then switch to the key's account in authentication.
    """

    def get_tenant(self, domain_model, hostname: str):  # type: ignore[no-untyped-def]
        # The API hosts are never an account's domain: skip the lookup on every API call.
        if hostname in settings.API_HOSTS:
            raise domain_model.DoesNotExist(hostname)
        return super().get_tenant(domain_model, hostname)

    def no_tenant_found(self, request: HttpRequest, hostname: str) -> None:
        request.tenant = None
        connection.set_schema_to_public()
        self.setup_url_routing(request=request, force_public=True)


class ApiErrorEnvelopeMiddleware:
    """Safety net for /v1/: errors raised outside DRF views (unknown routes, middleware,
    Django's own 4xx/5xx pages) are turned into the seed's envelope too."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not request.path.startswith(API_PREFIX) or response.status_code < 400:
            return response
        if _is_envelope(response):
            return response
        return error_json_response(_error_for_status(response.status_code))

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith(API_PREFIX):
            return None
        return error_json_response(to_api_error(exception))


def _is_envelope(response: HttpResponse) -> bool:
    if "json" not in response.get("Content-Type", "") or getattr(response, "streaming", False):
        return False
    try:
        body = json.loads(response.content)
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("error"), dict) and "code" in body["error"]


def _error_for_status(status: int) -> ApiError:
    if status == 404:
        return ApiError("not_found")
    if status in (401,):
        return ApiError("invalid_api_key")
    if status == 429:
        return ApiError("rate_limit_exceeded")
    if 400 <= status < 500:
        return ApiError("invalid_request")
    return ApiError("server_error")
