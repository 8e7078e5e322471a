"""The API's errors: one registry of codes, one exception type, one renderer.

Every error under /v1/ is `{"error": {type, code, message, doc_url, details}}` with
the HTTP status of its type (the contract is ../shared/seeds/errors.txt). Code raises
`ApiError(code, message, details)`; nothing else builds error JSON.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import BadRequest, SuspiciousOperation
from django.db import DataError as DatabaseDataError
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

from nixflex import outages

logger = logging.getLogger(__name__)

DEPENDENCY_RETRY_AFTER_SECONDS = 2

TYPE_STATUS: dict[str, int] = {
    "authentication_error": 401,
    "permission_error": 403,
    "invalid_request": 400,
    "not_found": 404,
    "conflict": 409,
    "rate_limit_error": 429,
    "provider_error": 502,
    "server_error": 500,
}


@dataclass(frozen=True)
class ErrorCode:
    code: str
    type: str
    message: str

    @property
    def status(self) -> int:
        return TYPE_STATUS[self.type]


_CODES = [
    ErrorCode(
        "invalid_api_key",
        "authentication_error",
        "Invalid API key. Check the Authorization header format and key validity.",
    ),
    ErrorCode(
        "key_secret_required",
        "authentication_error",
        "The API key secret is missing. Use 'Authorization: Bearer key_id:key_secret'.",
    ),
    ErrorCode("agent_not_owned", "permission_error", "This agent belongs to another account."),
    ErrorCode("agent_not_found", "not_found", "No agent with this id exists."),
    ErrorCode("call_not_found", "not_found", "No call with this id exists in your account."),
    ErrorCode("phone_number_not_found", "not_found", "This phone number is not imported in your account."),
    ErrorCode("message_not_found", "not_found", "No message with this id exists in your account."),
    ErrorCode("customer_not_found", "not_found", "No customer with this id exists in your account."),
    ErrorCode("job_not_found", "not_found", "No job with this id exists in your account."),
    ErrorCode(
        "twilio_account_not_found", "not_found", "No Twilio account with this Account SID is stored in your account."
    ),
    ErrorCode("not_found", "not_found", "The requested resource does not exist."),
    ErrorCode(
        "prompt_too_long", "invalid_request", "The system prompt is too long. Trim it to under 10,000 characters."
    ),
    ErrorCode("invalid_voice_id", "invalid_request", "Voice ID not recognised. Use a voice from GET /v1/voices."),
    ErrorCode(
        "invalid_phone_format",
        "invalid_request",
        "Invalid phone number format. Use international format like +447446466847.",
    ),
    ErrorCode(
        "invalid_twilio_sid",
        "invalid_request",
        "Invalid Twilio Account SID. It must be 'AC' followed by 32 hex characters.",
    ),
    ErrorCode("number_not_in_twilio", "invalid_request", "This number does not exist in the Twilio account given."),
    ErrorCode("twilio_invalid_credentials", "invalid_request", "Twilio rejected the Account SID and auth token."),
    ErrorCode("twilio_auth_failed", "invalid_request", "Twilio authentication failed (Twilio error 20003)."),
    ErrorCode("from_number_not_owned", "invalid_request", "The from_number is not imported to your account."),
    ErrorCode("message_too_long", "invalid_request", "The message body is over 1600 characters."),
    ErrorCode("sms_not_supported_in_region", "invalid_request", "SMS to this region needs A2P 10DLC registration."),
    ErrorCode("invalid_request", "invalid_request", "The request is malformed or has invalid parameters."),
    ErrorCode(
        "number_already_imported",
        "conflict",
        "This number is already attached to an agent. Delete it first, then re-import.",
    ),
    ErrorCode("agent_no_phone", "conflict", "The agent has no phone numbers attached."),
    ErrorCode("agent_has_phone_numbers", "conflict", "The agent still answers phone numbers. Delete them first."),
    ErrorCode(
        "twilio_account_has_phone_numbers",
        "conflict",
        "Numbers of this Twilio account are still imported. Delete them first.",
    ),
    ErrorCode("recipient_unsubscribed", "conflict", "The recipient opted out (sent STOP) and cannot be messaged."),
    ErrorCode(
        "rate_limit_exceeded",
        "rate_limit_error",
        "Too many requests. Back off and retry after the Retry-After interval.",
    ),
    ErrorCode("concurrent_call_limit", "rate_limit_error", "Too many simultaneous calls."),
    ErrorCode("outbound_failed", "provider_error", "Twilio could not place the call."),
    ErrorCode("provider_unavailable", "provider_error", "An upstream provider failed or did not answer in time."),
    ErrorCode("job_failed", "server_error", "The job stopped before it finished; it will not be retried."),
    ErrorCode("server_error", "server_error", "Something went wrong on our end."),
]
ERROR_CODES: dict[str, ErrorCode] = {c.code: c for c in _CODES}


def doc_url(code: str) -> str:
    return f"{settings.DOCS_BASE_URL}/reference/errors#{code}"


class ApiError(Exception):
    """An error the API reports to its caller, identified by a registered code."""

    def __init__(
        self,
        code: str,
        message: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"unregistered error code {code!r}")
        self.error = ERROR_CODES[code]
        self.code = code
        self.message = message or self.error.message
        self.details = details or {}
        self.headers = headers or {}
        super().__init__(f"{code}: {self.message}")

    @property
    def status(self) -> int:
        return self.error.status

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "type": self.error.type,
                "code": self.code,
                "message": self.message,
                "doc_url": doc_url(self.code),
                "details": self.details,
            }
        }


def error_json_response(error: ApiError) -> JsonResponse:
    """The envelope as a plain Django response (for middleware and non-DRF views)."""
    response = JsonResponse(error.body(), status=error.status)
    for name, value in error.headers.items():
        response[name] = value
    return response


def _validation_details(detail: Any) -> dict[str, Any]:
    """DRF's nested ValidationError detail -> {"fields": {name: [messages]}}."""

    def flatten(value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): flatten(v) for k, v in value.items()}
        if isinstance(value, list):
            return [flatten(v) for v in value]
        return str(value)

    flat = flatten(detail)
    if isinstance(flat, dict):
        return {"fields": flat}
    return {"errors": flat if isinstance(flat, list) else [flat]}


def _registered_code(detail: Any) -> tuple[str, str] | None:
    """A validation error raised with a documented code (e.g. prompt_too_long) keeps it."""
    if isinstance(detail, dict):
        detail = list(detail.values())
    if isinstance(detail, list):
        for item in detail:
            found = _registered_code(item)
            if found:
                return found
        return None
    code = getattr(detail, "code", None)
    if code in ERROR_CODES and code != "invalid_request":
        return code, str(detail)
    return None


def to_api_error(exc: Exception) -> ApiError:
    """Map any exception raised while serving an API request to an ApiError."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, drf_exceptions.Throttled):
        wait = max(1, round(exc.wait or 1))  # type: ignore[attr-defined]  # DRF sets Throttled.wait; its stubs omit it
        return ApiError(
            "rate_limit_exceeded", details={"retry_after_seconds": wait}, headers={"Retry-After": str(wait)}
        )
    if isinstance(exc, (drf_exceptions.NotAuthenticated, drf_exceptions.AuthenticationFailed)):
        return ApiError("invalid_api_key")
    if isinstance(exc, drf_exceptions.ParseError):
        return ApiError("invalid_request", f"Malformed request body: {exc.detail}", {"reason": "malformed_body"})
    if isinstance(exc, drf_exceptions.UnsupportedMediaType):
        return ApiError(
            "invalid_request",
            "Unsupported Content-Type. Send JSON with 'Content-Type: application/json'.",
            {"reason": "unsupported_media_type"},
        )
    if isinstance(exc, drf_exceptions.MethodNotAllowed):
        return ApiError("invalid_request", f"Method not allowed: {exc.detail}", {"reason": "method_not_allowed"})
    if isinstance(exc, drf_exceptions.ValidationError):
        details = _validation_details(exc.detail)
        specific = _registered_code(exc.detail)
        if specific is not None:
            code, message = specific
            return ApiError(code, message, details)
        fields = details.get("fields", {})
        names = ", ".join(sorted(fields)) if fields else ""
        message = f"Invalid or missing parameters: {names}." if names else "The request has invalid parameters."
        return ApiError("invalid_request", message, details)
    if isinstance(exc, (drf_exceptions.NotFound, Http404)):
        return ApiError("not_found")
    if isinstance(exc, drf_exceptions.PermissionDenied):
        return ApiError("invalid_api_key")
    if isinstance(exc, (SuspiciousOperation, BadRequest)):
        # Django's own refusals of a request (too many fields, a body over its limits):
        # 400 as Django answers them outside the API, here with the envelope.
        return ApiError("invalid_request", "The request is malformed or too large.", {"reason": "bad_request"})
    if outages.is_dependency_outage(exc):
        # Redis, the broker or the database did not answer: nothing the caller did wrong,
        # and a retry can help. One log line, not a traceback per request.
        outages.record_exception(exc)
        return ApiError(
            "server_error",
            "A service the API depends on is briefly unavailable. Retry in a few seconds.",
            {"reason": "dependency_unavailable", "retryable": True},
            headers={"Retry-After": str(DEPENDENCY_RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, DatabaseDataError):
        # A value PostgreSQL cannot store (out of range, not valid text) that no check
        # caught before: the request's fault, so a 400 rather than a 500.
        logger.warning("database refused a value of an API request: %s", str(exc).splitlines()[0])
        return ApiError(
            "invalid_request",
            "A value in the request cannot be stored (out of range or not valid text).",
            {"reason": "invalid_value"},
        )
    logger.exception("unhandled error while serving an API request", exc_info=exc)
    return ApiError("server_error")


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's EXCEPTION_HANDLER: every error a view raises becomes the envelope."""
    error = to_api_error(exc)
    response = Response(error.body(), status=error.status, headers=error.headers)
    if isinstance(exc, drf_exceptions.MethodNotAllowed):
        view = context.get("view")
        if view is not None:
            response["Allow"] = ", ".join(view.allowed_methods)
    return response
