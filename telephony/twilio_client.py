"""The one module that imports `twilio`: REST calls, webhook signatures and TwiML.

REST goes through the real SDK, pointed at settings.TWILIO_API_BASE_URL (a local stand-in
in tests, the real API otherwise) with a timeout. Its failures become a `TwilioError`
that says whether trying again can help:

- `TwilioUnavailable` (transient): no answer, a timeout, Twilio 5xx or 429;
- `TwilioAuthFailed` (permanent): Twilio refused the Account SID + auth token (401,
  error 20003; 20005 for an account that is suspended or closed);
- `TwilioRejected` (permanent): any other 4xx (unknown number, bad parameter...).

Each carries `twilio_error` = {code, message, status} when Twilio said something. What
these mean for the API (which error code, which status) is decided above this module,
in telephony.services.twilio_errors. Auth tokens never appear in an error or a log line.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.voice_response import Connect, VoiceResponse

logger = logging.getLogger(__name__)
# The SDK logs each request at INFO; our own log lines say what matters.
logging.getLogger("twilio.http_client").setLevel(logging.WARNING)

AUTH_FAILED = 20003
ACCOUNT_NOT_ACTIVE = 20005
NOT_FOUND = 20404
CALL_ALREADY_ENDED = 21220


# --- Errors ----------------------------------------------------------------------------


class TwilioError(Exception):
    """Twilio could not do what was asked. `transient`: whether trying again later can help."""

    transient: ClassVar[bool] = False

    def __init__(self, action: str, twilio_error: dict[str, Any] | None = None, reason: str = "") -> None:
        self.action = action
        self.twilio_error = twilio_error or {}
        self.reason = reason
        detail = self.twilio_error.get("message") or reason
        super().__init__(f"twilio {action} failed: {detail}" if detail else f"twilio {action} failed")

    @property
    def code(self) -> Any:
        return self.twilio_error.get("code")

    @property
    def status(self) -> Any:
        return self.twilio_error.get("status")


class TwilioUnavailable(TwilioError):
    """No answer, a timeout, a 5xx or a 429: worth retrying later."""

    transient = True


class TwilioAuthFailed(TwilioError):
    """Twilio refused the credentials (a wrong or rotated token, a closed account)."""


class TwilioRejected(TwilioError):
    """Twilio refused the request itself (a 4xx other than authentication)."""

    @property
    def is_not_found(self) -> bool:
        return self.code == NOT_FOUND or self.status == 404


def _twilio_error(exc: Exception) -> dict[str, Any]:
    if isinstance(exc, TwilioRestException):
        return {"code": exc.code, "message": exc.msg, "status": exc.status}
    # A failed list() raises plain TwilioException("Unable to fetch page", response).
    response = exc.args[1] if len(exc.args) > 1 else None
    status = getattr(response, "status_code", None)
    code, message = None, str(exc.args[0]) if exc.args else "Twilio error"
    try:
        body = json.loads(getattr(response, "text", "") or "{}")
        code, message = body.get("code", code), body.get("message", message)
    except (ValueError, AttributeError):
        pass
    return {"code": code, "message": message, "status": status}


def classify(exc: Exception, action: str) -> TwilioError:
    """Any failure of an SDK call -> the TwilioError it is."""
    if isinstance(exc, (requests.exceptions.RequestException, OSError)):
        return TwilioUnavailable(action, reason=type(exc).__name__)
    error = _twilio_error(exc)
    status, code = error.get("status"), error.get("code")
    if status == 401 or code in (AUTH_FAILED, ACCOUNT_NOT_ACTIVE):
        return TwilioAuthFailed(action, error)
    if status is None or status == 429 or (isinstance(status, int) and status >= 500):
        return TwilioUnavailable(action, error)
    return TwilioRejected(action, error)


# --- REST --------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookUrls:
    voice: str
    sms: str
    status: str

    @classmethod
    def nixflex(cls) -> WebhookUrls:
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
        return (self.voice_url, self.sms_url, self.status_callback) == (
            urls.voice,
            urls.sms,
            urls.status,
        ) and not self.voice_application_sid


@dataclass(frozen=True)
class TwilioAccountInfo:
    sid: str
    friendly_name: str
    status: str


class TwilioGateway:
    """Twilio for one customer's Twilio account (BYO credentials)."""

    def __init__(self, account_sid: str, auth_token: str) -> None:
        self.account_sid = account_sid
        self._client: Client = make_client(
            account_sid, auth_token, settings.TWILIO_API_BASE_URL, timeout=settings.TWILIO_TIMEOUT_SECONDS
        )

    def __repr__(self) -> str:  # never the token
        return f"TwilioGateway({self.account_sid})"

    @contextmanager
    def _translate(self, action: str) -> Iterator[None]:
        try:
            yield
        except (requests.exceptions.RequestException, OSError, TwilioException) as exc:
            error = classify(exc, action)
            logger.info(
                "twilio %s for %s failed: %s status=%s code=%s",
                action,
                self.account_sid,
                type(error).__name__,
                error.status,
                error.code or error.reason,
            )
            raise error from None

    # --- Account -----------------------------------------------------------------------
    def verify_credentials(self) -> TwilioAccountInfo:
        """Fetch the account itself: succeeds only if Twilio accepts the SID + token."""
        with self._translate("credentials check"):
            account = self._client.api.v2010.accounts(self.account_sid).fetch()
        # The SDK types `status` as its Status class of constants; the payload holds the plain string.
        return TwilioAccountInfo(
            sid=account.sid or "", friendly_name=account.friendly_name or "", status=str(account.status or "")
        )

    # --- Numbers -----------------------------------------------------------------------
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
                voice_url=urls.voice,
                voice_method="POST",
                sms_url=urls.sms,
                sms_method="POST",
                status_callback=urls.status,
                status_callback_method="POST",
                voice_application_sid="",
            )
        return _number(updated)

    def clear_webhooks(self, number_sid: str) -> bool:
        """Stop routing the number to Nixflex. False if Twilio no longer has the number."""
        try:
            with self._translate("webhook removal"):
                self._client.incoming_phone_numbers(number_sid).update(
                    voice_url="",
                    sms_url="",
                    status_callback="",
                )
        except TwilioRejected as exc:
            if exc.is_not_found:
                return False
            raise
        return True

    # --- Calls -------------------------------------------------------------------------
    def update_call(self, call_sid: str, action: str, **params: str) -> None:
        """Change a live call (status, or new TwiML). A call that already ended is left be."""
        try:
            with self._translate(action):
                self._client.calls(call_sid).update(**params)
        except TwilioRejected as exc:
            if exc.code != CALL_ALREADY_ENDED:
                raise


def _number(resource: Any) -> TwilioNumber:
    return TwilioNumber(
        sid=resource.sid,
        phone_number=resource.phone_number,
        voice_url=resource.voice_url or "",
        sms_url=resource.sms_url or "",
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
        self._update("transfer", twiml=dial_twiml(number))

    def say_and_hang_up(self, text: str) -> None:
        self._update("say and hang up", twiml=say_and_hang_up_twiml(text))


# --- Webhook signatures and TwiML ---------------------------------------------------------


def is_valid_signature(auth_token: str, url: str, params: Mapping[str, str], signature: str) -> bool:
    """Whether X-Twilio-Signature `signature` is Twilio's, with `auth_token`, over `url` and
    the form `params` (empty for a WebSocket upgrade)."""
    if not signature or not auth_token:
        return False
    return bool(RequestValidator(auth_token).validate(url, dict(params), signature))


def say_and_hang_up_twiml(text: str) -> str:
    response = VoiceResponse()
    response.say(text)
    response.hangup()
    return str(response)


def dial_twiml(number: str) -> str:
    response = VoiceResponse()
    response.dial(number)
    return str(response)


def stream_twiml(url: str, parameters: Mapping[str, str]) -> str:
    """<Connect><Stream> to our media socket. Values travel as <Parameter>s: a stream URL
    may not carry a query string (Twilio 31920)."""
    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(url=url)
    for name, value in parameters.items():
        stream.parameter(name=name, value=value)
    response.append(connect)
    return str(response)


# --- HTTP: the SDK pointed at any base URL (a local stand-in, a proxy) ----------------------
# The SDK has no base-URL setting: every resource builds absolute URLs on
# https://<product>.twilio.com, including the follow-up URLs of paged lists. All of them
# go through HttpClient.request(), so that is where the scheme and host are swapped.

STOCK_BASE_URL = "https://api.twilio.com"


def _is_stock(base_url: str | None) -> bool:
    if not base_url:
        return True
    parts = urlsplit(base_url.strip())
    return (
        parts.scheme.lower() == "https"
        and (parts.hostname or "").lower() == "api.twilio.com"
        and parts.port in (None, 443)
        and parts.path.strip("/") == ""
    )


def _is_twilio_host(host: str | None) -> bool:
    host = (host or "").lower().rstrip(".")
    return host == "twilio.com" or host.endswith(".twilio.com")


def _is_loopback(host: str | None) -> bool:
    host = (host or "").strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def rewrite_url(url: str, base_url: str | None) -> str:
    """Swap scheme+host(+port) of a ``*.twilio.com`` URL for ``base_url``.

    A path prefix on ``base_url`` is kept in front of the original path. URLs on
    other hosts, and every URL when ``base_url`` is the stock API host (or empty),
    are returned unchanged.
    """
    if _is_stock(base_url):
        return url
    assert base_url is not None
    target = urlsplit(url)
    if not _is_twilio_host(target.hostname):
        return url
    base = urlsplit(base_url.strip())
    path = base.path.rstrip("/") + (target.path or "/")
    return urlunsplit((base.scheme, base.netloc, path, target.query, target.fragment))


class BaseUrlTwilioHttpClient(TwilioHttpClient):
    """A ``TwilioHttpClient`` that sends every Twilio request to ``base_url``.

    ``base_url`` is e.g. ``http://127.0.0.1:18010``; ``https://api.twilio.com``
    (or empty/None) behaves exactly like the stock client. Other keyword
    arguments are those of ``TwilioHttpClient`` (``pool_connections``,
    ``request_hooks``, ``timeout``, ``logger``, ``proxy``, ``max_retries``).

    ``trust_env``: whether ``requests`` reads proxy/CA settings from the
    environment (``HTTP_PROXY`` ...). Default: the stock behaviour (True), except
    for a loopback base URL, where an environment proxy would only get in the way.
    """

    def __init__(self, base_url: str | None = STOCK_BASE_URL, *, trust_env: bool | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.base_url = (base_url or STOCK_BASE_URL).strip().rstrip("/")
        self.is_stock = _is_stock(self.base_url)
        if self.is_stock:
            return
        base = urlsplit(self.base_url)
        if base.scheme not in ("http", "https") or not base.hostname:
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        if self.session is not None:
            if trust_env is None:
                trust_env = not _is_loopback(base.hostname)
            self.session.trust_env = trust_env
            if base.scheme == "http":
                # The parent only sizes the pool of https:// connections.
                max_retries = kwargs.get("max_retries")
                if max_retries is not None:
                    adapter = HTTPAdapter(max_retries=max_retries)
                else:
                    adapter = HTTPAdapter(pool_maxsize=min(32, (os.cpu_count() or 1) + 4))
                self.session.mount("http://", adapter)

    def request(
        self,
        method: str,
        url: str,
        params: Any = None,
        data: Any = None,
        headers: Any = None,
        auth: Any = None,
        timeout: Any = None,
        allow_redirects: bool = False,
    ) -> Any:
        return super().request(
            method,
            rewrite_url(url, self.base_url),
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )


def make_client(account_sid: str, auth_token: str, base_url: str | None, timeout: float | None = 10) -> Client:
    """A ``twilio.rest.Client`` for ``account_sid`` that talks to ``base_url``.

    ``TWILIO_EDGE`` / ``TWILIO_REGION`` (which would rewrite hosts) are ignored;
    credentials are never read from the environment.
    """
    client = Client(
        username=account_sid,
        password=auth_token,
        account_sid=account_sid,
        http_client=BaseUrlTwilioHttpClient(base_url, timeout=timeout),
        # A non-empty mapping, so that the SDK does not fall back to os.environ.
        environment={"TWILIO_EDGE": "", "TWILIO_REGION": ""},
    )
    client.edge = None
    client.region = None
    return client
