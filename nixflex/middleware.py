"""Request middleware: hostile input refused at the edge, which schema serves a Host,
and the /v1/ error envelope."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django_tenants.middleware.main import TenantMainMiddleware

from nixflex.errors import ApiError, error_json_response, to_api_error
from tenants.db import tenant_connection

logger = logging.getLogger(__name__)

API_PREFIX = "/v1/"
FORM_CONTENT_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

AsgiMessage = MutableMapping[str, Any]
AsgiReceive = Callable[[], Awaitable[AsgiMessage]]
AsgiSend = Callable[[AsgiMessage], Awaitable[None]]
AsgiApp = Callable[[MutableMapping[str, Any], AsgiReceive, AsgiSend], Awaitable[None]]


def body_too_large() -> ApiError:
    limit = settings.MAX_REQUEST_BODY_BYTES
    return ApiError(
        "invalid_request",
        f"The request body is too large: at most {limit} bytes.",
        {"reason": "body_too_large", "max_bytes": limit},
    )


def _nul_character(location: str) -> ApiError:
    return ApiError(
        "invalid_request",
        f"The request {location} must not contain NUL (\\u0000 or %00) characters.",
        {"reason": "nul_character", "location": location},
    )


def _refusal(path: str, error: ApiError, plain_status: int) -> HttpResponse:
    """The envelope under /v1/; a short plain-text answer on other routes (admin, Twilio)."""
    if path.startswith(API_PREFIX):
        return error_json_response(error)
    return HttpResponse(error.message, status=plain_status, content_type="text/plain; charset=utf-8")


class RequestGuardMiddleware:
    """First in the chain, before anything touches the database: a body whose declared
    length is over the limit is refused unread, and NUL characters in the path, the query
    or a form field are refused (PostgreSQL cannot store them: they would become a 500).
    JSON bodies are checked by the API's parser (nixflex.parsers)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _declared_length(request) > settings.MAX_REQUEST_BODY_BYTES:
            return _refusal(request.path, body_too_large(), 413)
        location = _nul_location(request)
        if location is not None:
            return _refusal(request.path, _nul_character(location), 400)
        return self.get_response(request)


def _declared_length(request: HttpRequest) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _nul_location(request: HttpRequest) -> str | None:
    if "\x00" in request.path_info:
        return "path"
    if _has_nul(request.GET.lists()):
        return "query"
    content_type = request.content_type or ""
    if request.method == "POST" and content_type in FORM_CONTENT_TYPES and _has_nul(request.POST.lists()):
        return "body"
    return None


def _has_nul(items: Any) -> bool:
    return any("\x00" in key or any("\x00" in value for value in values) for key, values in items)


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
        request.tenant = None  # type: ignore[attr-defined]  # django-tenants' request attribute, unknown to HttpRequest's stubs
        tenant_connection().set_schema_to_public()
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


class RequestBodyLimit:
    """ASGI, in front of the WSGI bridge: a body over MAX_REQUEST_BODY_BYTES is refused
    before anything reads it.

    A declared Content-Length is checked up front. A body of unknown length (chunked) is
    read here, never more than the limit, and handed on with its length, so Django (which
    ignores a body without Content-Length) sees it, and nothing unbounded is buffered.
    """

    def __init__(self, app: AsgiApp) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: AsgiReceive, send: AsgiSend) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = settings.MAX_REQUEST_BODY_BYTES
        declared = _asgi_header(scope, b"content-length")
        if declared is not None:
            if declared.strip().isdigit() and int(declared) > limit:
                await _asgi_refuse(scope, send)
                return
            await self.app(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body += message.get("body", b"")
            if len(body) > limit:
                await _asgi_refuse(scope, send)
                return
            if not message.get("more_body", False):
                break
        headers = [(name, value) for name, value in scope["headers"] if name.lower() != b"transfer-encoding"]
        headers.append((b"content-length", str(len(body)).encode()))
        await self.app({**scope, "headers": headers}, _replay(bytes(body), receive), send)


def _asgi_header(scope: MutableMapping[str, Any], name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value)
    return None


def _replay(body: bytes, receive: AsgiReceive) -> AsgiReceive:
    sent = False

    async def replayed() -> AsgiMessage:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _asgi_refuse(scope: MutableMapping[str, Any], send: AsgiSend) -> None:
    # The unread rest of the body makes the connection unusable: close it after answering.
    response = _refusal(scope.get("path", ""), body_too_large(), 413)
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in response.items()]
    headers += [(b"content-length", str(len(response.content)).encode()), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": response.content})
