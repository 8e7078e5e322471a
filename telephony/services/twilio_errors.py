"""What Twilio's failures mean for the API: the one place a TwilioError becomes an ApiError.

- `TwilioUnavailable` (transient) -> `provider_unavailable` (502): retry later;
- `TwilioAuthFailed` -> `twilio_invalid_credentials` when the caller has just sent the
  credentials (an import, a rotation), `twilio_auth_failed` when they are the ones we
  stored earlier (the token was rotated at Twilio, or the account closed);
- `TwilioRejected` -> `invalid_request`.

Every error carries `details.twilio_error` = {code, message, status} when Twilio said something.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from nixflex.errors import ApiError
from telephony.twilio_client import TwilioAuthFailed, TwilioError, TwilioUnavailable


def api_error(exc: TwilioError, *, credentials_given: bool = False) -> ApiError:
    details: dict[str, Any] = {}
    if exc.twilio_error:
        details["twilio_error"] = exc.twilio_error
    if isinstance(exc, TwilioUnavailable):
        if exc.reason:
            details["reason"] = exc.reason
        what = "failed" if exc.twilio_error else "did not answer"
        return ApiError(
            "provider_unavailable", f"Twilio {what} ({exc.action}). Try again.", {"provider": "twilio", **details}
        )
    if isinstance(exc, TwilioAuthFailed):
        if credentials_given:
            return ApiError("twilio_invalid_credentials", details=details)
        return ApiError(
            "twilio_auth_failed",
            "Twilio refused the credentials stored for this Twilio account (error 20003): its auth "
            "token was changed or the account closed. Send the new token with POST "
            "/v1/twilio-accounts/{account_sid}/credentials; a number of a closed Twilio account can "
            "still be removed with DELETE /v1/phone-numbers/{number}?force=true.",
            details,
        )
    return ApiError("invalid_request", f"Twilio refused the request: {exc.twilio_error.get('message')}", details)


@contextmanager
def twilio_api_errors(*, credentials_given: bool = False) -> Iterator[None]:
    """Raise Twilio's failures inside the block as the API's errors."""
    try:
        yield
    except TwilioError as exc:
        raise api_error(exc, credentials_given=credentials_given) from None
