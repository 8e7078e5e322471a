"""The OpenAPI description of /v1/: the API-key scheme, the error envelope, and each
operation's error responses.

Views declare the codes they can answer with `@api_errors("agent_not_found", ...)`;
`ApiSchema` (DEFAULT_SCHEMA_CLASS) adds those to every operation, grouped by HTTP status,
together with the codes every operation can answer: the authentication codes (401), the
rate limit (429), `invalid_request` (400) where the operation reads a body or a query
string, and `server_error` (500). Every error response is the one envelope of
nixflex/errors.py, with one example per code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ComponentRegistry
from rest_framework import serializers

from nixflex.errors import ERROR_CODES, TYPE_STATUS, ApiError

F = TypeVar("F", bound=Callable[..., Any])

SECURITY_SCHEME_NAME = "ApiKey"
# Answered by any operation behind API-key authentication (tenants.authentication).
AUTHENTICATION_ERRORS = ("invalid_api_key", "key_secret_required")
# Answered by any throttled operation (tenants.throttling).
THROTTLE_ERRORS = ("rate_limit_exceeded",)
# Answered by any operation that parses a request body or a query string.
INPUT_ERRORS = ("invalid_request",)
# Answered by any operation at all.
ALWAYS_ERRORS = ("server_error",)

_CODES_ATTRIBUTE = "api_error_codes"
# Choices of the envelope's enums (named in SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]).
ERROR_TYPES = tuple(TYPE_STATUS)
ERROR_CODE_NAMES = tuple(ERROR_CODES)


def api_errors(*codes: str) -> Callable[[F], F]:
    """Declare the error codes (nixflex/errors.py) a view method answers with, beyond the
    ones every operation has. Order with @extend_schema does not matter."""
    unknown = [code for code in codes if code not in ERROR_CODES]
    if unknown:
        raise ValueError(f"unregistered error codes {unknown}")

    def decorator(view_method: F) -> F:
        setattr(view_method, _CODES_ATTRIBUTE, (*getattr(view_method, _CODES_ATTRIBUTE, ()), *codes))
        return view_method

    return decorator


def declared_error_codes(view_method: Callable[..., Any] | None) -> tuple[str, ...]:
    return tuple(getattr(view_method, _CODES_ATTRIBUTE, ()))


class ErrorBody(serializers.Serializer):
    type = serializers.ChoiceField(choices=list(ERROR_TYPES), help_text="Broad category: route your handler on it.")
    code = serializers.ChoiceField(choices=list(ERROR_CODE_NAMES), help_text="Specific reason: branch on it.")
    message = serializers.CharField(help_text="Human-readable; may be reworded, so never parse it.")
    doc_url = serializers.URLField()
    details = serializers.DictField(child=serializers.JSONField(), help_text="Which field failed, what was expected.")


class ErrorEnvelope(serializers.Serializer):
    """Every error under /v1/ (nixflex/errors.py renders it)."""

    error = ErrorBody()


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """`Authorization: Bearer KEY_ID:KEY_SECRET`, checked by ApiKeyAuthentication."""

    target_class = "tenants.authentication.ApiKeyAuthentication"
    name = SECURITY_SCHEME_NAME

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "key_id:key_secret",
            "description": "An API key of your account: `Authorization: Bearer KEY_ID:KEY_SECRET`. "
            "The key decides which account the request acts on.",
        }


def _error_response(envelope_ref: dict[str, str], codes: Iterable[str]) -> dict[str, Any]:
    codes = sorted(set(codes))
    error_type = ERROR_CODES[codes[0]].type
    lines = [f"`{error_type}` error. `code` is one of:", ""]
    lines += [f"- `{code}`: {ERROR_CODES[code].message}" for code in codes]
    response: dict[str, Any] = {
        "description": "\n".join(lines),
        "content": {
            "application/json": {
                "schema": envelope_ref,
                "examples": {code: {"summary": code, "value": ApiError(code).body()} for code in codes},
            }
        },
    }
    if error_type == "rate_limit_error":
        response["headers"] = {
            "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait before retrying."}
        }
    return response


class ApiSchema(AutoSchema):
    """drf-spectacular's AutoSchema, plus the error responses of every operation."""

    def get_operation(
        self, path: str, path_regex: str, path_prefix: str, method: str, registry: ComponentRegistry
    ) -> dict[str, Any] | None:
        operation: dict[str, Any] | None = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        envelope = self.resolve_serializer(ErrorEnvelope, "response")
        by_status: dict[int, list[str]] = {}
        for code in self.error_codes(operation):
            by_status.setdefault(ERROR_CODES[code].status, []).append(code)
        for status, codes in sorted(by_status.items()):
            operation["responses"][str(status)] = _error_response(envelope.ref, codes)
        return operation

    def error_codes(self, operation: dict[str, Any]) -> list[str]:
        """Every code this operation may answer with."""
        codes = list(declared_error_codes(getattr(self.view, self.method.lower(), None)))
        if operation.get("security"):
            codes += AUTHENTICATION_ERRORS
        if self.view.throttle_classes:
            codes += THROTTLE_ERRORS
        reads_query = any(parameter.get("in") == "query" for parameter in operation.get("parameters", []))
        if reads_query or "requestBody" in operation:
            codes += INPUT_ERRORS
        codes += ALWAYS_ERRORS
        return list(dict.fromkeys(codes))

    def get_operation_id(self) -> str:
        # A GET on a collection path lists it (spectacular calls a plain APIView's GET
        # "retrieve" on both paths, and the two ids would collide).
        operation_id: str = super().get_operation_id()
        if self.method == "GET" and not self.path.rstrip("/").endswith("}") and operation_id.endswith("_retrieve"):
            return operation_id.removesuffix("_retrieve") + "_list"
        return operation_id
