"""The one module that talks to Twilio (through the `twilio` SDK).

It points the SDK at settings.TWILIO_API_BASE_URL, sets timeouts, and turns Twilio's
failures into the API's errors. The rule for credentials:

- `twilio_invalid_credentials`: Twilio rejected the Account SID + auth token that the
  caller has just sent us (importing a number);
- `twilio_auth_failed`: Twilio answered 20003 for credentials we stored earlier (the
  token was rotated or the account closed) while we act on an imported number;
- Twilio 5xx, 429, timeouts and connection errors: `provider_unavailable` (502), which
  is worth retrying; other 4xx: `invalid_request` with Twilio's code in details.

Every error carries `details.twilio_error` = {code, message, status} when Twilio said
something. Auth tokens never appear in an error, a log line or a task argument.
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import requests
from django.conf import settings
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client
from twilio.twiml.voice_response import VoiceResponse

from nixflex.errors import ApiError
from telephony.twilio_http import make_client

logger = logging.getLogger(__name__)
# The SDK logs each request at INFO; our own log lines say what matters.
logging.getLogger("twilio.http_client").setLevel(logging.WARNING)

AUTH_FAILED = 20003
NOT_FOUND = 20404
CALL_ALREADY_ENDED = 21220


@dataclass(frozen=True)
class WebhookUrls:
    voice: str
    sms: str
    status: str

    @classmethod
    def nixflex(cls) -> "WebhookUrls":
        base = settings.PUBLIC_BASE_URL
        return cls(voice=f"{base}/twilio/voice", sms=f"{base}/twilio/sms", status=f"{base}/twilio/status")


@dataclass(frozen=True)
class TwilioNumber:
    sid: str
    phone_number: str
    voice_url: str
    sms_url: str
    status_callback: str
    voice_application_sid: str

    def points_at(self, urls: WebhookUrls) -> bool:
        return (self.voice_url, self.sms_url, self.status_callback) == (urls.voice, urls.sms, urls.status) \
            and not self.voice_application_sid


class TwilioRejected(ApiError):
    """Twilio refused a request (a 4xx other than authentication)."""

    def __init__(self, twilio_error: dict[str, object]) -> None:
        super().__init__("invalid_request", f"Twilio refused the request: {twilio_error.get('message')}",
                         {"twilio_error": twilio_error})
        self.twilio_error = twilio_error

    @property
    def is_not_found(self) -> bool:
        return self.twilio_error.get("code") == NOT_FOUND or self.twilio_error.get("status") == 404


def _twilio_error(exc: Exception) -> dict[str, object]:
    if isinstance(exc, TwilioRestException):
        return {"code": exc.code, "message": exc.msg, "status": exc.status}
    # A failed list() raises plain TwilioException("Unable to fetch page", response).
    response = exc.args[1] if len(exc.args) > 1 else None
    status = getattr(response, "status_code", None)
    code, message = None, str(exc.args[0]) if exc.args else "Twilio error"
    try:
        body = json.loads(getattr(response, "text", "") or "{}")
        code, message = body.get("code", code), body.get("message", message)
    except ValueError:
        pass
    return {"code": code, "message": message, "status": status}


class TwilioGateway:
    """Twilio for one customer's Twilio account (BYO credentials)."""

    def __init__(self, account_sid: str, auth_token: str, *, stored_credentials: bool = True) -> None:
        self.account_sid = account_sid
        self._client: Client = make_client(account_sid, auth_token, settings.TWILIO_API_BASE_URL,
                                           timeout=settings.TWILIO_TIMEOUT_SECONDS)
        # Which code a 20003 becomes (see the module docstring).
        self._auth_code = "twilio_auth_failed" if stored_credentials else "twilio_invalid_credentials"

    def __repr__(self) -> str:  # never the token
        return f"TwilioGateway({self.account_sid})"

    @contextmanager
    def _translate(self, action: str) -> Iterator[None]:
        try:
            yield
        except (requests.exceptions.RequestException, OSError) as exc:
            logger.warning("twilio %s for %s failed: %s", action, self.account_sid, type(exc).__name__)
            raise ApiError("provider_unavailable", f"Twilio did not answer ({action}). Try again.",
                           {"provider": "twilio", "reason": type(exc).__name__}) from None
        except TwilioException as exc:
            error = _twilio_error(exc)
            status, code = error.get("status"), error.get("code")
            logger.info("twilio %s for %s: status=%s code=%s", action, self.account_sid, status, code)
            if status == 401 or code == AUTH_FAILED:
                raise ApiError(self._auth_code, details={"twilio_error": error}) from None
            if status is None or status == 429 or (isinstance(status, int) and status >= 500):
                raise ApiError("provider_unavailable", f"Twilio failed ({action}). Try again.",
                               {"provider": "twilio", "twilio_error": error}) from None
            raise TwilioRejected(error) from None

    # --- Numbers ---------------------------------------------------------------------
    def find_number(self, e164: str) -> TwilioNumber | None:
        """The account's number equal to `e164`. Twilio's filter matches parts of numbers,
        so only an exact match counts."""
        with self._translate("number lookup"):
            candidates = self._client.incoming_phone_numbers.list(phone_number=e164, page_size=50, limit=200)
        for number in candidates:
            if number.phone_number == e164:
                return _number(number)
        return None

    def fetch_number(self, number_sid: str) -> TwilioNumber | None:
        try:
            with self._translate("number fetch"):
                return _number(self._client.incoming_phone_numbers(number_sid).fetch())
        except TwilioRejected as exc:
            if exc.is_not_found:
                return None
            raise

    def point_webhooks(self, number_sid: str, urls: WebhookUrls) -> TwilioNumber:
        """Overwrite the number's voice, SMS and status webhooks (and detach any TwiML app,
        which would take precedence over VoiceUrl)."""
        with self._translate("webhook update"):
            updated = self._client.incoming_phone_numbers(number_sid).update(
                voice_url=urls.voice, voice_method="POST", sms_url=urls.sms, sms_method="POST",
                status_callback=urls.status, status_callback_method="POST", voice_application_sid="",
            )
        return _number(updated)

    def update_call(self, call_sid: str, action: str, **params: str) -> None:
        """Change a live call (status, or new TwiML). A call that already ended is left be."""
        try:
            with self._translate(action):
                self._client.calls(call_sid).update(**params)
        except TwilioRejected as exc:
            if exc.twilio_error.get("code") != CALL_ALREADY_ENDED:
                raise

    def clear_webhooks(self, number_sid: str) -> bool:
        """Stop routing the number to Nixflex. False if Twilio no longer has the number."""
        try:
            with self._translate("webhook removal"):
                self._client.incoming_phone_numbers(number_sid).update(
                    voice_url="", sms_url="", status_callback="",
                )
        except TwilioRejected as exc:
            if exc.is_not_found:
                return False
            raise
        return True


def _number(resource: object) -> TwilioNumber:
    return TwilioNumber(
        sid=resource.sid, phone_number=resource.phone_number,
        voice_url=resource.voice_url or "", sms_url=resource.sms_url or "",
        status_callback=resource.status_callback or "",
        voice_application_sid=resource.voice_application_sid or "",
    )


class CallControl:
    """Twilio REST actions on a live call (hang up, transfer, a last <Say>)."""

    def __init__(self, gateway: TwilioGateway, call_sid: str) -> None:
        self._gateway = gateway
        self._call_sid = call_sid

    def _update(self, action: str, **params: str) -> None:
        self._gateway.update_call(self._call_sid, action, **params)

    def hang_up(self) -> None:
        self._update("hang up", status="completed")

    def transfer(self, number: str) -> None:
        response = VoiceResponse()
        response.dial(number)
        self._update("transfer", twiml=str(response))

    def say_and_hang_up(self, text: str) -> None:
        response = VoiceResponse()
        response.say(text)
        response.hangup()
        self._update("say and hang up", twiml=str(response))
