"""A local, in-memory stand-in for Twilio's REST API (2010-04-01), for tests and benchmarks.

It speaks what the real ``twilio`` SDK (9.x) sends and parses: HTTP Basic auth
``AccountSid:AuthToken``, form-encoded PascalCase parameters, JSON resources with
snake_case keys, Twilio's paging envelope and Twilio's error bodies. It refuses
what Twilio refuses (bad credentials, unknown resources, invalid URLs/numbers,
opted-out recipients, over-long bodies, ...).

API (``/2010-04-01``, HTTP Basic auth):
    GET    /Accounts/{AC}.json
    GET    /Accounts/{AC}/IncomingPhoneNumbers.json   PhoneNumber FriendlyName Beta Origin PageSize Page PageToken
    POST   /Accounts/{AC}/IncomingPhoneNumbers.json   (buy: PhoneNumber or AreaCode, + the update fields)
    GET|POST|DELETE /Accounts/{AC}/IncomingPhoneNumbers/{PN}.json
    GET|POST /Accounts/{AC}/Calls.json                 (list | create)
    GET|POST|DELETE /Accounts/{AC}/Calls/{CA}.json     (fetch | update: Status, Url/Twiml redirect | delete)
    GET|POST /Accounts/{AC}/Messages.json              (list | create)
    GET|DELETE /Accounts/{AC}/Messages/{SM}.json

Control API (JSON bodies, no auth), for tests; the same operations are thread-safe
Python methods on ``TwilioStandin``:
    POST /_standin/accounts {"sid","token"}          GET /_standin/accounts
    DELETE /_standin/accounts/{AC}                    (closes it: 401 20003 from then on)
    POST /_standin/numbers {"account_sid","phone_number", + snake_case fields}
    GET  /_standin/numbers[/{account_sid}]
    POST /_standin/config {"latency_ms", "fail": {"mode","methods","path_contains","count","hold_s"}}
    GET  /_standin/config
    GET  /_standin/requests[?path_contains=&method=]  DELETE /_standin/requests
    POST /_standin/reset
    POST /_standin/opt_out {"phone_number", "from_number"?, "opted_out"?: true}
    GET  /_standin/calls   POST /_standin/calls/{CA} {"status"}   GET /_standin/messages
    POST /_standin/inbound_calls {"account_sid","from","to"} (a caller rings: mints the CallSid)
    GET  /_standin/calls/{CA}
    GET  /_standin/health

Run standalone: ``python -m standins.twilio_api --port 18010 [--latency-ms 150]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import collections
import contextlib
import copy
import datetime as _dt
import email.utils
import json
import math
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web
from multidict import MultiMapping

__all__ = [
    "TwilioStandin",
    "TwilioApiError",
    "make_account_sid",
    "make_token",
    "make_sid",
    "main",
]

API_VERSION = "2010-04-01"
API_PREFIX = f"/{API_VERSION}"
MAX_BODY_CHARS = 1600
DEFAULT_HOLD_S = 30.0
MAX_RECORDED_REQUESTS = 200_000

_E164_RE = re.compile(r"^\+[1-9]\d{1,14}$")
_SID_HEX = r"[0-9a-fA-F]{32}"
_TERMINAL_CALL_STATES = {"completed", "busy", "failed", "no-answer", "canceled"}
_CALL_STATES = {"queued", "ringing", "in-progress"} | _TERMINAL_CALL_STATES
_CALL_EVENTS = {"initiated", "ringing", "answered", "completed"}
_FAIL_MODES = {"none", "500", "503", "429", "401", "timeout"}


# --------------------------------------------------------------------------- helpers


def make_sid(prefix: str) -> str:
    """A Twilio-style SID: two-letter prefix + 32 lowercase hex digits."""
    return prefix + uuid.uuid4().hex


def make_account_sid() -> str:
    return make_sid("AC")


def make_token() -> str:
    return secrets.token_hex(16)


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0)


def _rfc2822(when: _dt.datetime | None = None) -> str:
    """'Thu, 30 Jul 2015 20:12:31 +0000', as Twilio writes dates."""
    return email.utils.format_datetime(when or _now())


def _camel_to_snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _is_e164(value: str) -> bool:
    if not _E164_RE.match(value or ""):
        return False
    if value.startswith("+1"):  # NANP: +1 NXX NXX XXXX
        digits = value[2:]
        return len(digits) == 10 and digits[0] in "23456789"
    return 8 <= len(value) <= 16


def _format_number(number: str) -> str:
    """Twilio's national formatting of NANP numbers: '(415) 555-1234'."""
    if number and number.startswith("+1") and len(number) == 12 and number[2:].isdigit():
        d = number[2:]
        return f"({d[:3]}) {d[3:6]}-{d[6:]}"
    return number


def _is_http_url(value: str) -> bool:
    if not isinstance(value, str) or not value or len(value) > 4000:
        return False
    if any(c.isspace() for c in value):
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


_GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXT = set("^{}\\[~]|€\f")


def _num_segments(body: str) -> int:
    if not body:
        return 1
    if all(c in _GSM7 or c in _GSM7_EXT for c in body):
        units = sum(2 if c in _GSM7_EXT else 1 for c in body)
        return 1 if units <= 160 else math.ceil(units / 153)
    units = len(body.encode("utf-16-le")) // 2
    return 1 if units <= 70 else math.ceil(units / 67)


def _decode_basic(header: str) -> tuple[str | None, str | None]:
    """(user, password) from an HTTP Basic Authorization header, or (None, None)."""
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None, None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else (None, None)


def _multidict_to_dict(md: MultiMapping[Any]) -> dict[str, Any]:
    """Form/query params: a str per key, or a list when the key is repeated."""
    out: dict[str, Any] = {}
    for key in md:
        if key in out:
            continue
        values = md.getall(key)
        out[key] = values[0] if len(values) == 1 else list(values)
    return out


class TwilioApiError(Exception):
    """An error answered in Twilio's shape."""

    def __init__(self, status: int, code: int | None, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }


def _auth_error() -> TwilioApiError:
    return TwilioApiError(401, 20003, "Authenticate", headers={"WWW-Authenticate": 'Basic realm="Twilio API"'})


def _not_found(path: str) -> TwilioApiError:
    return TwilioApiError(404, 20404, f"The requested resource {path} was not found")


def _bad(code: int, message: str, status: int = 400) -> TwilioApiError:
    return TwilioApiError(status, code, message)


# --------------------------------------------------------------------------- parameter sets (from twilio 9.13)

NUMBER_WRITE_PARAMS = {
    "AccountSid",
    "ApiVersion",
    "FriendlyName",
    "SmsApplicationSid",
    "SmsFallbackMethod",
    "SmsFallbackUrl",
    "SmsMethod",
    "SmsUrl",
    "StatusCallback",
    "StatusCallbackMethod",
    "VoiceApplicationSid",
    "VoiceCallerIdLookup",
    "VoiceFallbackMethod",
    "VoiceFallbackUrl",
    "VoiceMethod",
    "VoiceUrl",
    "EmergencyStatus",
    "EmergencyAddressSid",
    "TrunkSid",
    "VoiceReceiveMode",
    "IdentitySid",
    "AddressSid",
    "BundleSid",
}
NUMBER_CREATE_PARAMS = (NUMBER_WRITE_PARAMS - {"AccountSid"}) | {"PhoneNumber", "AreaCode"}
CALL_CREATE_PARAMS = {
    "To",
    "From",
    "Method",
    "FallbackUrl",
    "FallbackMethod",
    "StatusCallback",
    "StatusCallbackEvent",
    "StatusCallbackMethod",
    "SendDigits",
    "Timeout",
    "Record",
    "RecordingChannels",
    "RecordingStatusCallback",
    "RecordingStatusCallbackMethod",
    "RecordingConfigurationId",
    "SipAuthUsername",
    "SipAuthPassword",
    "MachineDetection",
    "MachineDetectionTimeout",
    "RecordingStatusCallbackEvent",
    "Trim",
    "CallerId",
    "MachineDetectionSpeechThreshold",
    "MachineDetectionSpeechEndThreshold",
    "MachineDetectionSilenceTimeout",
    "AsyncAmd",
    "AsyncAmdStatusCallback",
    "AsyncAmdStatusCallbackMethod",
    "Passports",
    "Byoc",
    "CallReason",
    "CallToken",
    "RecordingTrack",
    "TimeLimit",
    "ClientNotificationUrl",
    "Url",
    "Twiml",
    "ApplicationSid",
}
CALL_UPDATE_PARAMS = {
    "Url",
    "Method",
    "Status",
    "FallbackUrl",
    "FallbackMethod",
    "StatusCallback",
    "StatusCallbackMethod",
    "Twiml",
    "TimeLimit",
}
MESSAGE_CREATE_PARAMS = {
    "To",
    "StatusCallback",
    "ApplicationSid",
    "MaxPrice",
    "ProvideFeedback",
    "Attempt",
    "ValidityPeriod",
    "ForceDelivery",
    "ContentRetention",
    "AddressRetention",
    "SmartEncoded",
    "PersistentAction",
    "TrafficType",
    "ShortenUrls",
    "ScheduleType",
    "SendAt",
    "SendAsMms",
    "ContentVariables",
    "MessageIntent",
    "RiskCheck",
    "From",
    "FallbackFrom",
    "MessagingServiceSid",
    "Body",
    "MediaUrl",
    "ContentSid",
}

# number fields: PascalCase param -> kind
_NUMBER_URL_FIELDS = {"VoiceUrl", "VoiceFallbackUrl", "SmsUrl", "SmsFallbackUrl", "StatusCallback"}
_NUMBER_METHOD_FIELDS = {"VoiceMethod", "VoiceFallbackMethod", "SmsMethod", "SmsFallbackMethod", "StatusCallbackMethod"}
_NUMBER_SID_FIELDS = {
    "VoiceApplicationSid": "AP",
    "SmsApplicationSid": "AP",
    "TrunkSid": "TK",
    "IdentitySid": "RI",
    "AddressSid": "AD",
    "EmergencyAddressSid": "AD",
    "BundleSid": "BU",
}


def _check_known(form: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(form) - allowed)
    if unknown:
        # Real Twilio only *warns* (20001) and ignores unknown names; the stand-in is
        # stricter so that a misspelt parameter is caught in tests.
        raise _bad(20001, f"Unknown parameters: {', '.join(unknown)}")


def _single(form: dict[str, Any], key: str) -> str | None:
    value = form.get(key)
    if isinstance(value, list):
        raise _bad(20001, f"Parameter '{key}' may be given only once")
    return value


def _method(form: dict[str, Any], key: str) -> str | None:
    value = _single(form, key)
    if value is None:
        return None
    if value.upper() not in ("GET", "POST"):
        raise _bad(20001, f"Invalid value for '{key}': {value!r} (GET or POST)")
    return value.upper()


def _bool(form: dict[str, Any], key: str) -> bool | None:
    value = _single(form, key)
    if value is None:
        return None
    if value.lower() not in ("true", "false"):
        raise _bad(20001, f"Invalid value for '{key}': {value!r} (true or false)")
    return value.lower() == "true"


def _int(form: dict[str, Any], key: str, lo: int, hi: int | None = None, clamp: bool = False) -> int | None:
    value = _single(form, key)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise _bad(20001, f"Invalid value for '{key}': {value!r} (an integer)") from None
    if number < lo:
        raise _bad(20001, f"Invalid value for '{key}': {number} (at least {lo})")
    if hi is not None and number > hi:
        if clamp:
            return hi
        raise _bad(20001, f"Invalid value for '{key}': {number} (at most {hi})")
    return number


# --------------------------------------------------------------------------- the stand-in


class TwilioStandin:
    """In-memory Twilio REST API.

    Usage from synchronous tests::

        standin = TwilioStandin()
        base_url = standin.start_in_thread()          # http://127.0.0.1:PORT
        sid, token = standin.add_account()
        standin.add_number(sid, "+14155550100", voice_url="https://x.example/voice")
        client = telephony.twilio_client.make_client(sid, token, base_url)
        ...
        standin.stop_thread()

    All public methods are thread-safe (state is guarded by one lock) and may be
    called from any thread while the server runs in another.
    """

    def __init__(self, latency_ms: float = 0):
        self._lock = threading.RLock()
        self._initial_latency_ms = float(latency_ms)
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None
        self.base_url: str | None = None
        self._route_table = self._routes()
        self._reset_state()

    # ------------------------------------------------------------------ state
    def _reset_state(self) -> None:
        with self._lock:
            self._accounts: dict[str, dict[str, Any]] = {}
            self._numbers: dict[str, dict[str, Any]] = {}  # PN -> resource
            self._calls: dict[str, dict[str, Any]] = {}  # CA -> record
            self._messages: dict[str, dict[str, Any]] = {}  # SM -> record
            self._opted_out: set[tuple[str, str | None]] = set()  # (to, from|None)
            self._requests: collections.deque = collections.deque(maxlen=MAX_RECORDED_REQUESTS)
            self._request_seq = 0
            self._latency_ms = self._initial_latency_ms
            self._fail: dict[str, Any] = {"mode": "none"}

    def reset(self) -> None:
        """Forget everything: accounts, numbers, calls, messages, opt-outs, requests, config."""
        self._reset_state()

    # ------------------------------------------------------------------ python control API
    def add_account(
        self, sid: str | None = None, token: str | None = None, friendly_name: str | None = None
    ) -> tuple[str, str]:
        """Register (or re-key) an account; returns ``(sid, token)``."""
        sid = sid or make_account_sid()
        token = token or make_token()
        if not re.fullmatch("AC" + _SID_HEX, sid):
            raise ValueError(f"account sid must be AC + 32 hex digits, got {sid!r}")
        with self._lock:
            existing = self._accounts.get(sid)
            created = existing["date_created"] if existing else _rfc2822()
            self._accounts[sid] = {
                "token": token,
                "friendly_name": friendly_name or (existing or {}).get("friendly_name") or sid,
                "date_created": created,
                "date_updated": _rfc2822(),
            }
        return sid, token

    def remove_account(self, sid: str) -> bool:
        """Close an account: its credentials stop working (401, 20003), its numbers go."""
        with self._lock:
            found = self._accounts.pop(sid, None) is not None
            for number_sid, number in list(self._numbers.items()):
                if number["account_sid"] == sid:
                    del self._numbers[number_sid]
            return found

    def accounts(self) -> dict[str, str]:
        with self._lock:
            return {sid: a["token"] for sid, a in self._accounts.items()}

    def add_number(self, account_sid: str, phone_number: str, **fields: Any) -> dict[str, Any]:
        """Give ``account_sid`` an incoming number; returns the number resource.

        ``fields`` are resource keys in snake_case (``voice_url``, ``voice_method``,
        ``sms_url``, ``friendly_name``, ``status_callback``, ``capabilities``, ``sid``...).
        """
        with self._lock:
            if account_sid not in self._accounts:
                raise KeyError(f"unknown account {account_sid}")
            if not _is_e164(phone_number):
                raise ValueError(f"phone_number must be E.164, got {phone_number!r}")
            if any(n["phone_number"] == phone_number for n in self._numbers.values()):
                raise ValueError(f"{phone_number} is already in use")
            resource = self._new_number(account_sid, phone_number, sid=fields.pop("sid", None))
            unknown = set(fields) - set(resource)
            if unknown:
                raise ValueError(f"unknown number fields: {sorted(unknown)}")
            for key, value in fields.items():
                if (key.endswith("_url") or key == "status_callback") and value and not _is_http_url(value):
                    raise ValueError(f"{key} must be an http(s) URL, got {value!r}")
                if key == "capabilities":
                    value = {**resource["capabilities"], **value}
                resource[key] = value
            self._numbers[resource["sid"]] = resource
            return copy.deepcopy(resource)

    def numbers(self, account_sid: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [
                copy.deepcopy(n)
                for n in self._numbers.values()
                if account_sid is None or n["account_sid"] == account_sid
            ]

    def get_number(self, sid_or_phone_number: str) -> dict[str, Any] | None:
        with self._lock:
            for n in self._numbers.values():
                if sid_or_phone_number in (n["sid"], n["phone_number"]):
                    return copy.deepcopy(n)
        return None

    def remove_number(self, sid_or_phone_number: str) -> bool:
        with self._lock:
            for sid, n in list(self._numbers.items()):
                if sid_or_phone_number in (sid, n["phone_number"]):
                    del self._numbers[sid]
                    return True
        return False

    def opt_out(self, phone_number: str, from_number: str | None = None, opted_out: bool = True) -> None:
        """Mark ``phone_number`` as having replied STOP (to ``from_number``, or to every sender)."""
        with self._lock:
            key = (phone_number, from_number)
            if opted_out:
                self._opted_out.add(key)
            else:
                self._opted_out.discard(key)

    def configure(self, latency_ms: float | None = None, fail: dict[str, Any] | None = None) -> dict[str, Any]:
        """Set latency and/or a failure mode; returns the config now in force.

        ``fail = {"mode": "500"|"503"|"429"|"401"|"timeout"|"none",
                  "methods": ["GET", "POST"], "path_contains": "Calls",
                  "count": N, "hold_s": 30}``; ``methods``/``path_contains`` narrow
        which API requests fail; ``count`` fails only the next N matching requests;
        ``hold_s`` is how long "timeout" holds a request open (released at stop()).
        """
        with self._lock:
            if latency_ms is not None:
                latency_ms = float(latency_ms)
                if latency_ms < 0:
                    raise ValueError("latency_ms must be >= 0")
                self._latency_ms = latency_ms
            if fail is not None:
                mode = str(fail.get("mode", "none"))
                if mode not in _FAIL_MODES:
                    raise ValueError(f"fail mode must be one of {sorted(_FAIL_MODES)}")
                unknown = set(fail) - {"mode", "methods", "path_contains", "count", "hold_s"}
                if unknown:
                    raise ValueError(f"unknown fail keys: {sorted(unknown)}")
                spec: dict[str, Any] = {"mode": mode}
                if mode != "none":
                    if fail.get("methods"):
                        spec["methods"] = [m.upper() for m in fail["methods"]]
                    if fail.get("path_contains"):
                        spec["path_contains"] = str(fail["path_contains"])
                    if fail.get("count") is not None:
                        spec["count"] = int(fail["count"])
                    spec["hold_s"] = float(fail.get("hold_s", DEFAULT_HOLD_S))
                self._fail = spec
            return self.config()

    def config(self) -> dict[str, Any]:
        with self._lock:
            return {"latency_ms": self._latency_ms, "fail": dict(self._fail)}

    def requests(self, path_contains: str | None = None, method: str | None = None) -> list[dict[str, Any]]:
        """Every recorded API request (oldest first): id, time, method, path, query,
        form (str per key, list when repeated), account_sid, status."""
        with self._lock:
            return [
                copy.deepcopy(r)
                for r in self._requests
                if (path_contains is None or path_contains in r["path"])
                and (method is None or r["method"] == method.upper())
            ]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def calls(self) -> list[dict[str, Any]]:
        """Calls with the resource fields plus ``request`` (the create params) and
        ``updates`` (one ``{"time", "params"}`` per accepted update)."""
        with self._lock:
            return [self._control_view(c) for c in self._calls.values()]

    def messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._control_view(m) for m in self._messages.values()]

    def add_inbound_call(self, account_sid: str, from_: str, to: str) -> str:
        """A caller rings one of the account's numbers: Twilio creates the call (and would
        then POST the number's VoiceUrl). Returns the CallSid. Used by the call simulator."""
        with self._lock:
            if account_sid not in self._accounts:
                raise KeyError(account_sid)
            sid = make_sid("CA")
            now = _rfc2822()
            base = f"{API_PREFIX}/Accounts/{account_sid}/Calls/{sid}"
            resource: dict[str, Any] = {
                "account_sid": account_sid,
                "annotation": None,
                "answered_by": None,
                "api_version": API_VERSION,
                "caller_name": None,
                "date_created": now,
                "date_updated": now,
                "direction": "inbound",
                "duration": None,
                "end_time": None,
                "forwarded_from": None,
                "from": from_,
                "from_formatted": _format_number(from_),
                "group_sid": None,
                "parent_call_sid": None,
                "phone_number_sid": None,
                "price": None,
                "price_unit": "USD",
                "queue_time": "0",
                "sid": sid,
                "start_time": now,
                "status": "in-progress",
                "subresource_uris": {},
                "to": to,
                "to_formatted": _format_number(to),
                "trunk_sid": None,
                "uri": f"{base}.json",
            }
            self._calls[sid] = {"resource": resource, "request": {}, "updates": []}
            return sid

    def call(self, call_sid: str) -> dict[str, Any] | None:
        with self._lock:
            record = self._calls.get(call_sid)
            return self._control_view(record) if record else None

    def set_call_status(self, call_sid: str, status: str) -> dict[str, Any]:
        """Move a call along (e.g. ``ringing`` → ``in-progress`` → ``completed``)."""
        if status not in _CALL_STATES:
            raise ValueError(f"status must be one of {sorted(_CALL_STATES)}")
        with self._lock:
            record = self._calls.get(call_sid)
            if record is None:
                raise KeyError(call_sid)
            self._set_call_status(record["resource"], status)
            return self._control_view(record)

    @staticmethod
    def _control_view(record: dict[str, Any]) -> dict[str, Any]:
        view = copy.deepcopy(record["resource"])
        view["request"] = copy.deepcopy(record["request"])
        view["updates"] = copy.deepcopy(record["updates"])
        return view

    # ------------------------------------------------------------------ server lifecycle
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        if self._runner is not None:
            raise RuntimeError("already started")
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", API_PREFIX + "{tail:.*}", self._handle_api)
        for method, path, handler in self._control_routes():
            app.router.add_route(method, path, handler)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port, backlog=2048)
        await site.start()
        self._runner = runner
        addresses = runner.addresses
        bound_port = addresses[0][1] if addresses else port
        shown_host = host if host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        if ":" in shown_host:
            shown_host = f"[{shown_host}]"
        self.base_url = f"http://{shown_host}:{bound_port}"
        return self.base_url

    async def stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        self.base_url = None

    def start_in_thread(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Run the server on its own event loop in a daemon thread; returns the base URL."""
        if self._thread is not None:
            raise RuntimeError("already running in a thread")
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_forever()
            finally:
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.close()

        thread = threading.Thread(target=run, name="twilio-standin", daemon=True)
        thread.start()
        try:
            url = asyncio.run_coroutine_threadsafe(self.start(host, port), loop).result(15)
        except BaseException:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
            raise
        self._thread, self._thread_loop = thread, loop
        return url

    def stop_thread(self) -> None:
        thread, loop = self._thread, self._thread_loop
        if thread is None or loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self.stop(), loop).result(15)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            self._thread = self._thread_loop = None

    def __enter__(self) -> TwilioStandin:
        self.start_in_thread()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop_thread()

    # ------------------------------------------------------------------ API entry point
    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        form_md = await request.post() if request.method in ("POST", "PUT") else None
        form = _multidict_to_dict(form_md) if form_md is not None else {}
        query = _multidict_to_dict(request.query)
        auth_sid, auth_token = None, None
        header = request.headers.get("Authorization")
        if header:
            auth_sid, auth_token = _decode_basic(header)
        url_match = re.match(rf"^{API_PREFIX}/Accounts/([^/]+?)(?:\.json)?(?:/|$)", request.path)
        url_account = url_match.group(1) if url_match else None

        with self._lock:
            self._request_seq += 1
            record = {
                "id": self._request_seq,
                "time": time.time(),
                "method": request.method,
                "path": request.path,
                "query": query,
                "form": form,
                "account_sid": auth_sid or url_account,
                "status": None,
            }
            self._requests.append(record)
            latency_s = self._latency_ms / 1000.0
            fail = self._take_failure(request.method, request.path)

        if fail is not None and fail["mode"] == "timeout":
            try:
                assert self._stopping is not None
                await asyncio.wait_for(self._stopping.wait(), fail["hold_s"])
            except TimeoutError:
                pass
            error = TwilioApiError(504, 20504, "Gateway timeout")
            return self._error_response(record, error)

        if latency_s > 0:
            await asyncio.sleep(latency_s)

        if fail is not None:
            mode = fail["mode"]
            if mode == "401":
                error = _auth_error()
            elif mode == "429":
                error = TwilioApiError(429, 20429, "Too Many Requests")
            elif mode == "503":
                error = TwilioApiError(503, 20503, "Service unavailable")
            else:
                error = TwilioApiError(500, 20500, "An internal server error has occurred")
            return self._error_response(record, error)

        try:
            with self._lock:
                account = self._accounts.get(auth_sid or "")
                if (
                    auth_sid is None  # no credentials: `account` is None too; said again for the type checker
                    or account is None
                    or not auth_token
                    or not secrets.compare_digest(account["token"].encode(), auth_token.encode())
                    or (url_account is not None and url_account != auth_sid)
                ):
                    raise _auth_error()
                status, body = self._dispatch(request.method, request.path, auth_sid, query, form)
        except TwilioApiError as error:
            return self._error_response(record, error)

        with self._lock:
            record["status"] = status
        headers = {"Twilio-Request-Id": make_sid("RQ")}
        if body is None:
            return web.Response(status=status, headers=headers)
        return web.Response(
            status=status, headers=headers, text=json.dumps(body), content_type="application/json", charset="utf-8"
        )

    def _error_response(self, record: dict[str, Any], error: TwilioApiError) -> web.Response:
        with self._lock:
            record["status"] = error.status
        headers = {"Twilio-Request-Id": make_sid("RQ"), **error.headers}
        return web.Response(
            status=error.status,
            headers=headers,
            text=json.dumps(error.body()),
            content_type="application/json",
            charset="utf-8",
        )

    def _take_failure(self, method: str, path: str) -> dict[str, Any] | None:
        """Under the lock: the failure spec if this request must fail (consuming a count)."""
        spec = self._fail
        if spec.get("mode", "none") == "none":
            return None
        if spec.get("methods") and method.upper() not in spec["methods"]:
            return None
        if spec.get("path_contains") and spec["path_contains"] not in path:
            return None
        if "count" in spec:
            if spec["count"] <= 0:
                self._fail = {"mode": "none"}
                return None
            spec["count"] -= 1
            taken = dict(spec)
            if spec["count"] <= 0:
                self._fail = {"mode": "none"}
            return taken
        return dict(spec)

    # ------------------------------------------------------------------ routing (called under the lock)
    def _routes(self) -> list[tuple[re.Pattern, dict[str, Callable[..., tuple[int, Any]]]]]:
        acc = rf"^{API_PREFIX}/Accounts/(?P<ac>[^/]+)"
        return [
            (re.compile(acc + r"\.json$"), {"GET": self._fetch_account}),
            (
                re.compile(acc + r"/IncomingPhoneNumbers\.json$"),
                {"GET": self._list_numbers, "POST": self._create_number},
            ),
            (
                re.compile(acc + r"/IncomingPhoneNumbers/(?P<sid>[^/]+)\.json$"),
                {"GET": self._fetch_number, "POST": self._update_number, "DELETE": self._delete_number},
            ),
            (re.compile(acc + r"/Calls\.json$"), {"GET": self._list_calls, "POST": self._create_call}),
            (
                re.compile(acc + r"/Calls/(?P<sid>[^/]+)\.json$"),
                {"GET": self._fetch_call, "POST": self._update_call, "DELETE": self._delete_call},
            ),
            (re.compile(acc + r"/Messages\.json$"), {"GET": self._list_messages, "POST": self._create_message}),
            (
                re.compile(acc + r"/Messages/(?P<sid>[^/]+)\.json$"),
                {"GET": self._fetch_message, "DELETE": self._delete_message},
            ),
        ]

    def _dispatch(
        self, method: str, path: str, account_sid: str, query: dict[str, Any], form: dict[str, Any]
    ) -> tuple[int, Any]:
        for pattern, handlers in self._route_table:
            match = pattern.match(path)
            if match is None:
                continue
            handler = handlers.get(method)
            if handler is None:
                raise TwilioApiError(405, 20004, "Method not allowed")
            kwargs = {k: v for k, v in match.groupdict().items() if k != "ac"}
            return handler(account_sid=account_sid, path=path, query=query, form=form, **kwargs)
        raise _not_found(path)

    # ------------------------------------------------------------------ paging
    def _page(
        self,
        key: str,
        base_path: str,
        records: list[dict[str, Any]],
        query: dict[str, Any],
        filters: list[tuple[str, str]],
    ) -> tuple[int, Any]:
        page_size = _int(query, "PageSize", 1, 1000, clamp=True) or 50
        page = _int(query, "Page", 0) or 0
        token = _single(query, "PageToken")
        offset = page * page_size
        if token:
            if len(token) < 3 or token[:2] not in ("PA", "PB"):
                raise _bad(20001, f"Invalid PageToken: {token!r}")
            index = next((i for i, r in enumerate(records) if r["sid"] == token[2:]), None)
            if index is not None:
                offset = index + 1 if token[:2] == "PA" else max(0, index - page_size)
        items = records[offset : offset + page_size]

        def uri(page_no: int, page_token: str | None = None) -> str:
            params = list(filters) + [("PageSize", str(page_size)), ("Page", str(page_no))]
            if page_token:
                params.append(("PageToken", page_token))
            return f"{base_path}?{urlencode(params)}"

        has_next = bool(items) and offset + len(items) < len(records)
        has_prev = bool(items) and offset > 0
        return 200, {
            key: [copy.deepcopy(r) for r in items],
            "first_page_uri": uri(0),
            "next_page_uri": uri(page + 1, "PA" + items[-1]["sid"]) if has_next else None,
            "previous_page_uri": uri(max(page - 1, 0), "PB" + items[0]["sid"]) if has_prev else None,
            "page": page,
            "page_size": page_size,
            "start": offset,
            "end": offset + max(len(items), 1) - 1,
            "uri": uri(page, token),
        }

    @staticmethod
    def _filters(query: dict[str, Any], names: Iterable[str]) -> list[tuple[str, str]]:
        out = []
        for name in names:
            value = _single(query, name)
            if value is not None:
                out.append((name, value))
        return out

    # ------------------------------------------------------------------ accounts
    def _fetch_account(self, account_sid: str, **_: Any) -> tuple[int, Any]:
        account = self._accounts[account_sid]
        base = f"{API_PREFIX}/Accounts/{account_sid}"
        return 200, {
            "auth_token": account["token"],
            "date_created": account["date_created"],
            "date_updated": account["date_updated"],
            "friendly_name": account["friendly_name"],
            "owner_account_sid": account_sid,
            "sid": account_sid,
            "status": "active",
            "subresource_uris": {
                "calls": f"{base}/Calls.json",
                "incoming_phone_numbers": f"{base}/IncomingPhoneNumbers.json",
                "messages": f"{base}/Messages.json",
            },
            "type": "Full",
            "uri": f"{base}.json",
        }

    # ------------------------------------------------------------------ incoming phone numbers
    def _new_number(self, account_sid: str, phone_number: str, sid: str | None = None) -> dict[str, Any]:
        sid = sid or make_sid("PN")
        now = _rfc2822()
        base = f"{API_PREFIX}/Accounts/{account_sid}/IncomingPhoneNumbers/{sid}"
        return {
            "account_sid": account_sid,
            "address_sid": None,
            "address_requirements": "none",
            "api_version": API_VERSION,
            "beta": False,
            "capabilities": {"voice": True, "sms": True, "mms": True, "fax": False},
            "date_created": now,
            "date_updated": now,
            "emergency_status": "Inactive",
            "emergency_address_sid": None,
            "emergency_address_status": "unregistered",
            "friendly_name": _format_number(phone_number),
            "identity_sid": None,
            "origin": "twilio",
            "phone_number": phone_number,
            "sid": sid,
            "sms_application_sid": "",
            "sms_fallback_method": "POST",
            "sms_fallback_url": "",
            "sms_method": "POST",
            "sms_url": "",
            "status_callback": "",
            "status_callback_method": "POST",
            "trunk_sid": None,
            "uri": f"{base}.json",
            "voice_receive_mode": "voice",
            "voice_application_sid": "",
            "voice_caller_id_lookup": False,
            "voice_fallback_method": "POST",
            "voice_fallback_url": "",
            "voice_method": "POST",
            "voice_url": "",
            "bundle_sid": None,
            "status": "in-use",
            "type": "local",
            "subresource_uris": {"assigned_add_ons": f"{base}/AssignedAddOns.json"},
        }

    def _number_for(self, account_sid: str, sid: str, path: str) -> dict[str, Any]:
        number = self._numbers.get(sid)
        if number is None or number["account_sid"] != account_sid:
            raise _not_found(path)
        return number

    @staticmethod
    def _number_matches(number: str, pattern: str) -> bool:
        """Twilio's PhoneNumber filter: the number contains the pattern; '*' = any digit."""
        regex = "".join(r"\d" if c == "*" else re.escape(c) for c in pattern)
        return re.search(regex, number) is not None

    def _list_numbers(self, account_sid: str, query: dict[str, Any], **_: Any) -> tuple[int, Any]:
        filters = self._filters(query, ["Beta", "FriendlyName", "PhoneNumber", "Origin"])
        records = [n for n in self._numbers.values() if n["account_sid"] == account_sid]
        for name, value in filters:
            if name == "PhoneNumber":
                records = [n for n in records if self._number_matches(n["phone_number"], value)]
            elif name == "FriendlyName":
                records = [n for n in records if n["friendly_name"] == value]
            elif name == "Beta":
                beta = _bool(query, "Beta")
                records = [n for n in records if bool(n["beta"]) == beta]
            elif name == "Origin":
                records = [n for n in records if n["origin"] == value]
        base = f"{API_PREFIX}/Accounts/{account_sid}/IncomingPhoneNumbers.json"
        return self._page("incoming_phone_numbers", base, records, query, filters)

    def _fetch_number(self, account_sid: str, sid: str, path: str, **_: Any) -> tuple[int, Any]:
        return 200, copy.deepcopy(self._number_for(account_sid, sid, path))

    def _apply_number_fields(self, number: dict[str, Any], form: dict[str, Any]) -> None:
        """Validate every field first, then apply all of them (all or nothing)."""
        changes: dict[str, Any] = {}
        for key in form:
            value = _single(form, key)
            if key in _NUMBER_URL_FIELDS:
                if value and not _is_http_url(value):
                    raise _bad(21502, f"{key} is not valid: {value!r} is not an http(s) URL")
            elif key in _NUMBER_METHOD_FIELDS:
                value = _method(form, key)
            elif key in _NUMBER_SID_FIELDS:
                prefix = _NUMBER_SID_FIELDS[key]
                if value and not re.fullmatch(prefix + _SID_HEX, value):
                    raise _bad(20001, f"Invalid value for '{key}': {value!r}")
            elif key == "VoiceCallerIdLookup":
                changes[_camel_to_snake(key)] = _bool(form, key)
                continue
            elif key == "ApiVersion":
                if value not in ("2010-04-01", "2008-08-01"):
                    raise _bad(20001, f"Invalid value for 'ApiVersion': {value!r}")
            elif key == "VoiceReceiveMode":
                if value not in ("voice", "fax"):
                    raise _bad(20001, f"Invalid value for 'VoiceReceiveMode': {value!r}")
            elif key == "EmergencyStatus":
                if value not in ("Active", "Inactive"):
                    raise _bad(20001, f"Invalid value for 'EmergencyStatus': {value!r}")
            elif key == "FriendlyName":
                if len(value or "") > 64:  # the key is in the form: never None
                    raise _bad(20002, "Invalid FriendlyName: at most 64 characters")
            elif key == "AccountSid":
                if value != number["account_sid"]:
                    # Moving a number between (sub)accounts is not modelled.
                    raise _bad(20001, f"Invalid value for 'AccountSid': {value!r}")
                continue
            elif key in ("PhoneNumber", "AreaCode"):
                continue
            changes[_camel_to_snake(key)] = value
        if "voice_application_sid" in changes and changes["voice_application_sid"]:
            changes["trunk_sid"] = None
        if "trunk_sid" in changes and changes["trunk_sid"]:
            changes["voice_application_sid"] = ""
        number.update(changes)
        number["date_updated"] = _rfc2822()

    def _create_number(self, account_sid: str, form: dict[str, Any], **_: Any) -> tuple[int, Any]:
        _check_known(form, NUMBER_CREATE_PARAMS)
        phone_number = _single(form, "PhoneNumber")
        area_code = _single(form, "AreaCode")
        in_use = {n["phone_number"] for n in self._numbers.values()}
        if phone_number is not None:
            if not _is_e164(phone_number):
                raise _bad(21421, "PhoneNumber is invalid")
            if phone_number in in_use:
                raise _bad(21422, "PhoneNumber is not available")
        elif area_code is not None:
            if not re.fullmatch(r"[2-9]\d\d", area_code):
                raise _bad(21451, "AreaCode is invalid")
            for _attempt in range(1000):
                candidate = f"+1{area_code}{secrets.choice('23456789')}{secrets.randbelow(10**6):06d}"
                if candidate not in in_use:
                    phone_number = candidate
                    break
            else:
                raise _bad(21452, "No phone numbers found in area code")
        else:
            raise _bad(21421, "A PhoneNumber or AreaCode is required")
        number = self._new_number(account_sid, phone_number)
        self._apply_number_fields(number, form)
        self._numbers[number["sid"]] = number
        return 201, copy.deepcopy(number)

    def _update_number(self, account_sid: str, sid: str, path: str, form: dict[str, Any], **_: Any) -> tuple[int, Any]:
        number = self._number_for(account_sid, sid, path)
        _check_known(form, NUMBER_WRITE_PARAMS)
        updated = copy.deepcopy(number)
        self._apply_number_fields(updated, form)
        number.clear()
        number.update(updated)
        return 200, copy.deepcopy(number)

    def _delete_number(self, account_sid: str, sid: str, path: str, **_: Any) -> tuple[int, Any]:
        self._number_for(account_sid, sid, path)
        del self._numbers[sid]
        return 204, None

    # ------------------------------------------------------------------ calls
    def _account_number(self, account_sid: str, phone_number: str) -> dict[str, Any] | None:
        for number in self._numbers.values():
            if number["account_sid"] == account_sid and number["phone_number"] == phone_number:
                return number
        return None

    @staticmethod
    def _check_url(form: dict[str, Any], key: str, code: int) -> str | None:
        value = _single(form, key)
        if value is not None and not _is_http_url(value):
            raise _bad(code, f"{key} is not a valid URL: {value!r}")
        return value

    def _create_call(self, account_sid: str, form: dict[str, Any], **_: Any) -> tuple[int, Any]:
        _check_known(form, CALL_CREATE_PARAMS)
        to = _single(form, "To")
        from_ = _single(form, "From")
        if not to:
            raise _bad(21201, "No 'To' number is specified")
        if not (_is_e164(to) or re.match(r"^(client|sip):\S+$", to)):
            raise _bad(21211, f"Invalid 'To' Phone Number: {to}")
        if not from_:
            raise _bad(21213, "No 'From' number is specified")
        if not _is_e164(from_):
            raise _bad(21212, f"Invalid 'From' Phone Number: {from_}")
        from_number = self._account_number(account_sid, from_)
        if from_number is None:
            raise _bad(
                21210,
                f"The source phone number provided, {from_}, is not yet verified "
                "for your account. You may only make calls from phone numbers "
                "that you've verified or purchased from Twilio.",
            )
        url = self._check_url(form, "Url", 21205)
        twiml = _single(form, "Twiml")
        application_sid = _single(form, "ApplicationSid")
        if not (url or twiml or application_sid):
            raise _bad(21205, "Url parameter is required")
        if twiml is not None and len(twiml) > 4000:
            raise _bad(20001, "Twiml is too long (at most 4000 characters)")
        if application_sid and not re.fullmatch("AP" + _SID_HEX, application_sid):
            raise _bad(21218, f"Invalid ApplicationSid: {application_sid}")
        self._check_url(form, "FallbackUrl", 21205)
        self._check_url(form, "StatusCallback", 21609)
        self._check_url(form, "RecordingStatusCallback", 21609)
        self._check_url(form, "AsyncAmdStatusCallback", 21609)
        for key in (
            "Method",
            "FallbackMethod",
            "StatusCallbackMethod",
            "RecordingStatusCallbackMethod",
            "AsyncAmdStatusCallbackMethod",
        ):
            _method(form, key)
        events = form.get("StatusCallbackEvent", [])
        events = [events] if isinstance(events, str) else list(events)
        bad_events = [e for e in events if e not in _CALL_EVENTS]
        if bad_events:
            raise _bad(20001, f"Invalid StatusCallbackEvent: {', '.join(bad_events)}")
        machine_detection = _single(form, "MachineDetection")
        if machine_detection is not None and machine_detection not in ("Enable", "DetectMessageEnd"):
            raise _bad(20001, f"Invalid value for 'MachineDetection': {machine_detection!r}")
        timeout = _int(form, "Timeout", 1, 600, clamp=True)
        _int(form, "TimeLimit", 1, 86400)
        _int(form, "MachineDetectionTimeout", 3, 59)
        _bool(form, "Record")

        sid = make_sid("CA")
        now = _rfc2822()
        base = f"{API_PREFIX}/Accounts/{account_sid}/Calls/{sid}"
        resource = {
            "account_sid": account_sid,
            "annotation": None,
            "answered_by": None,
            "api_version": API_VERSION,
            "caller_name": None,
            "date_created": now,
            "date_updated": now,
            "direction": "outbound-api",
            "duration": None,
            "end_time": None,
            "forwarded_from": None,
            "from": from_,
            "from_formatted": _format_number(from_),
            "group_sid": None,
            "parent_call_sid": None,
            "phone_number_sid": from_number["sid"],
            "price": None,
            "price_unit": "USD",
            "queue_time": "0",
            "sid": sid,
            "start_time": None,
            "status": "queued",
            "subresource_uris": {
                "events": f"{base}/Events.json",
                "notifications": f"{base}/Notifications.json",
                "recordings": f"{base}/Recordings.json",
                "payments": f"{base}/Payments.json",
                "siprec": f"{base}/Siprec.json",
                "streams": f"{base}/Streams.json",
                "transcriptions": f"{base}/Transcriptions.json",
                "user_defined_message_subscriptions": f"{base}/UserDefinedMessageSubscriptions.json",
                "user_defined_messages": f"{base}/UserDefinedMessages.json",
            },
            "to": to,
            "to_formatted": _format_number(to),
            "trunk_sid": None,
            "uri": f"{base}.json",
        }
        request = dict(form)
        request["StatusCallbackEvent"] = events
        if timeout is not None:
            request["Timeout"] = str(timeout)
        self._calls[sid] = {"resource": resource, "request": request, "updates": []}
        return 201, copy.deepcopy(resource)

    def _call_for(self, account_sid: str, sid: str, path: str) -> dict[str, Any]:
        record = self._calls.get(sid)
        if record is None or record["resource"]["account_sid"] != account_sid:
            raise _not_found(path)
        return record

    @staticmethod
    def _set_call_status(resource: dict[str, Any], status: str) -> None:
        now = _now()
        if status == "in-progress" and not resource["start_time"]:
            resource["start_time"] = _rfc2822(now)
        if status in _TERMINAL_CALL_STATES and not resource["end_time"]:
            resource["end_time"] = _rfc2822(now)
            if resource["start_time"]:
                started = email.utils.parsedate_to_datetime(resource["start_time"])
                resource["duration"] = str(max(0, int((now - started).total_seconds())))
            else:
                resource["duration"] = "0"
        resource["status"] = status
        resource["date_updated"] = _rfc2822(now)

    def _list_calls(self, account_sid: str, query: dict[str, Any], **_: Any) -> tuple[int, Any]:
        filters = self._filters(query, ["To", "From", "ParentCallSid", "Status"])
        records = [c["resource"] for c in reversed(self._calls.values()) if c["resource"]["account_sid"] == account_sid]
        for name, value in filters:
            field = {"To": "to", "From": "from", "ParentCallSid": "parent_call_sid", "Status": "status"}[name]
            records = [r for r in records if r[field] == value]
        base = f"{API_PREFIX}/Accounts/{account_sid}/Calls.json"
        return self._page("calls", base, records, query, filters)

    def _fetch_call(self, account_sid: str, sid: str, path: str, **_: Any) -> tuple[int, Any]:
        return 200, copy.deepcopy(self._call_for(account_sid, sid, path)["resource"])

    def _update_call(self, account_sid: str, sid: str, path: str, form: dict[str, Any], **_: Any) -> tuple[int, Any]:
        record = self._call_for(account_sid, sid, path)
        resource = record["resource"]
        _check_known(form, CALL_UPDATE_PARAMS)
        status = _single(form, "Status")
        if status is not None and status not in ("completed", "canceled"):
            raise _bad(20001, f"Invalid value for 'Status': {status!r} (completed or canceled)")
        self._check_url(form, "Url", 21205)
        self._check_url(form, "FallbackUrl", 21205)
        self._check_url(form, "StatusCallback", 21609)
        for key in ("Method", "FallbackMethod", "StatusCallbackMethod"):
            _method(form, key)
        twiml = _single(form, "Twiml")
        if twiml is not None and len(twiml) > 4000:
            raise _bad(20001, "Twiml is too long (at most 4000 characters)")
        _int(form, "TimeLimit", 1, 86400)
        if resource["status"] in _TERMINAL_CALL_STATES:
            raise _bad(21220, "Call is not in-progress. Cannot redirect.")
        if status == "completed":
            self._set_call_status(resource, "completed")
        elif status == "canceled":
            # Twilio: 'canceled' only ends a queued or ringing call.
            if resource["status"] in ("queued", "ringing"):
                self._set_call_status(resource, "canceled")
        else:
            resource["date_updated"] = _rfc2822()
        record["updates"].append({"time": time.time(), "params": dict(form)})
        return 200, copy.deepcopy(resource)

    def _delete_call(self, account_sid: str, sid: str, path: str, **_: Any) -> tuple[int, Any]:
        record = self._call_for(account_sid, sid, path)
        if record["resource"]["status"] not in _TERMINAL_CALL_STATES:
            raise _bad(21220, "Call is in progress and cannot be deleted.")
        del self._calls[sid]
        return 204, None

    # ------------------------------------------------------------------ messages
    def _is_opted_out(self, to: str, from_: str | None) -> bool:
        return (to, None) in self._opted_out or (from_ is not None and (to, from_) in self._opted_out)

    def _create_message(self, account_sid: str, form: dict[str, Any], **_: Any) -> tuple[int, Any]:
        _check_known(form, MESSAGE_CREATE_PARAMS)
        to = _single(form, "To")
        from_ = _single(form, "From")
        service_sid = _single(form, "MessagingServiceSid")
        body = _single(form, "Body")
        media = form.get("MediaUrl", [])
        media = [media] if isinstance(media, str) else list(media)
        content_sid = _single(form, "ContentSid")
        if not to:
            raise _bad(21604, "A 'To' phone number is required.")
        if not _is_e164(to):
            raise _bad(21211, f"Invalid 'To' Phone Number: {to}")
        if not from_ and not service_sid:
            raise _bad(21603, "A 'From' or 'MessagingServiceSid' parameter is required to send a message")
        if service_sid is not None and not re.fullmatch("MG" + _SID_HEX, service_sid):
            raise _bad(21701, f"The Messaging Service Sid {service_sid} is invalid.")
        if from_:
            if not _is_e164(from_):
                raise _bad(21212, f"Invalid From Number (caller ID): {from_}")
            number = self._account_number(account_sid, from_)
            if number is None or not number["capabilities"].get("sms"):
                raise _bad(
                    21606,
                    f"The From phone number {from_} is not a valid, SMS-capable "
                    "inbound phone number or short code for your account.",
                )
            if from_ == to:
                raise _bad(21266, "'To' and 'From' number cannot be the same")
        if not body and not media and not content_sid:
            raise _bad(21602, "Message body is required.")
        if body is not None and len(body) > MAX_BODY_CHARS:
            raise _bad(21617, "The concatenated message body exceeds the 1600 character limit.")
        for url in media:
            if not _is_http_url(url):
                raise _bad(21620, f"Invalid media URL(s): {url}")
        if len(media) > 10:
            raise _bad(21623, "Number of media files exceeds allowed limit (10)")
        self._check_url(form, "StatusCallback", 21609)
        if self._is_opted_out(to, from_):
            raise _bad(21610, "Attempt to send to unsubscribed recipient")

        sid = make_sid("SM" if not media else "MM")
        now = _rfc2822()
        base = f"{API_PREFIX}/Accounts/{account_sid}/Messages/{sid}"
        resource = {
            "account_sid": account_sid,
            "api_version": API_VERSION,
            "body": body or "",
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": from_ or None,
            "messaging_service_sid": service_sid,
            "num_media": str(len(media)),
            "num_segments": str(_num_segments(body or "")),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued" if from_ else "accepted",
            "subresource_uris": {"media": f"{base}/Media.json", "feedback": f"{base}/Feedback.json"},
            "to": to,
            "uri": f"{base}.json",
        }
        self._messages[sid] = {"resource": resource, "request": dict(form), "updates": []}
        return 201, copy.deepcopy(resource)

    def _message_for(self, account_sid: str, sid: str, path: str) -> dict[str, Any]:
        record = self._messages.get(sid)
        if record is None or record["resource"]["account_sid"] != account_sid:
            raise _not_found(path)
        return record

    def _list_messages(self, account_sid: str, query: dict[str, Any], **_: Any) -> tuple[int, Any]:
        filters = self._filters(query, ["To", "From"])
        records = [
            m["resource"] for m in reversed(self._messages.values()) if m["resource"]["account_sid"] == account_sid
        ]
        for name, value in filters:
            field = name.lower()
            records = [r for r in records if r[field] == value]
        base = f"{API_PREFIX}/Accounts/{account_sid}/Messages.json"
        return self._page("messages", base, records, query, filters)

    def _fetch_message(self, account_sid: str, sid: str, path: str, **_: Any) -> tuple[int, Any]:
        return 200, copy.deepcopy(self._message_for(account_sid, sid, path)["resource"])

    def _delete_message(self, account_sid: str, sid: str, path: str, **_: Any) -> tuple[int, Any]:
        self._message_for(account_sid, sid, path)
        del self._messages[sid]
        return 204, None

    # ------------------------------------------------------------------ control API (JSON, no auth)
    def _control_routes(self) -> list[tuple[str, str, Callable]]:
        return [
            ("GET", "/_standin/health", self._c_health),
            ("POST", "/_standin/accounts", self._c_add_account),
            ("GET", "/_standin/accounts", self._c_accounts),
            ("DELETE", "/_standin/accounts/{sid}", self._c_remove_account),
            ("POST", "/_standin/numbers", self._c_add_number),
            ("GET", "/_standin/numbers", self._c_numbers),
            ("GET", "/_standin/numbers/{account_sid}", self._c_numbers),
            ("POST", "/_standin/config", self._c_config),
            ("GET", "/_standin/config", self._c_get_config),
            ("GET", "/_standin/requests", self._c_requests),
            ("DELETE", "/_standin/requests", self._c_clear_requests),
            ("POST", "/_standin/reset", self._c_reset),
            ("POST", "/_standin/opt_out", self._c_opt_out),
            ("GET", "/_standin/calls", self._c_calls),
            ("POST", "/_standin/inbound_calls", self._c_add_inbound_call),
            ("GET", "/_standin/calls/{call_sid}", self._c_call),
            ("POST", "/_standin/calls/{call_sid}", self._c_set_call_status),
            ("GET", "/_standin/messages", self._c_messages),
        ]

    @staticmethod
    def _json(data: Any, status: int = 200) -> web.Response:
        return web.json_response(data, status=status)

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return {}
        try:
            data = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise web.HTTPBadRequest(
                text=json.dumps({"error": "body must be JSON"}), content_type="application/json"
            ) from None
        if not isinstance(data, dict):
            raise web.HTTPBadRequest(
                text=json.dumps({"error": "body must be a JSON object"}), content_type="application/json"
            )
        return data

    async def _c_health(self, request: web.Request) -> web.Response:
        return self._json({"ok": True})

    async def _c_add_account(self, request: web.Request) -> web.Response:
        data = await self._body(request)
        try:
            sid, token = self.add_account(data.get("sid"), data.get("token"), data.get("friendly_name"))
        except ValueError as exc:
            return self._json({"error": str(exc)}, 400)
        return self._json({"sid": sid, "token": token}, 201)

    async def _c_remove_account(self, request: web.Request) -> web.Response:
        if not self.remove_account(request.match_info["sid"]):
            return self._json({"error": "no such account"}, 404)
        return self._json({"removed": True})

    async def _c_accounts(self, request: web.Request) -> web.Response:
        return self._json([{"sid": s, "token": t} for s, t in self.accounts().items()])

    async def _c_add_number(self, request: web.Request) -> web.Response:
        data = await self._body(request)
        account_sid = data.pop("account_sid", None)
        phone_number = data.pop("phone_number", None)
        if not account_sid or not phone_number:
            return self._json({"error": "account_sid and phone_number are required"}, 400)
        try:
            number = self.add_number(account_sid, phone_number, **data)
        except KeyError as exc:
            return self._json({"error": f"unknown account: {exc}"}, 404)
        except ValueError as exc:
            status = 409 if "already in use" in str(exc) else 400
            return self._json({"error": str(exc)}, status)
        return self._json(number, 201)

    async def _c_numbers(self, request: web.Request) -> web.Response:
        return self._json(self.numbers(request.match_info.get("account_sid")))

    async def _c_config(self, request: web.Request) -> web.Response:
        data = await self._body(request)
        try:
            return self._json(self.configure(latency_ms=data.get("latency_ms"), fail=data.get("fail")))
        except (ValueError, TypeError) as exc:
            return self._json({"error": str(exc)}, 400)

    async def _c_get_config(self, request: web.Request) -> web.Response:
        return self._json(self.config())

    async def _c_requests(self, request: web.Request) -> web.Response:
        return self._json(self.requests(request.query.get("path_contains"), request.query.get("method")))

    async def _c_clear_requests(self, request: web.Request) -> web.Response:
        self.clear_requests()
        return web.Response(status=204)

    async def _c_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return self._json({"ok": True})

    async def _c_opt_out(self, request: web.Request) -> web.Response:
        data = await self._body(request)
        phone_number = data.get("phone_number")
        if not phone_number:
            return self._json({"error": "phone_number is required"}, 400)
        self.opt_out(phone_number, data.get("from_number"), bool(data.get("opted_out", True)))
        return self._json({"ok": True})

    async def _c_calls(self, request: web.Request) -> web.Response:
        return self._json(self.calls())

    async def _c_add_inbound_call(self, request: web.Request) -> web.Response:
        data = await self._body(request)
        try:
            sid = self.add_inbound_call(str(data.get("account_sid")), str(data.get("from")), str(data.get("to")))
        except KeyError:
            return self._json({"error": "unknown account"}, 404)
        return self._json(self.call(sid), 201)

    async def _c_call(self, request: web.Request) -> web.Response:
        call = self.call(request.match_info["call_sid"])
        return self._json(call) if call else self._json({"error": "unknown call"}, 404)

    async def _c_set_call_status(self, request: web.Request) -> web.Response:
        data = await self._body(request)
        try:
            return self._json(self.set_call_status(request.match_info["call_sid"], str(data.get("status"))))
        except KeyError:
            return self._json({"error": "unknown call"}, 404)
        except ValueError as exc:
            return self._json({"error": str(exc)}, 400)

    async def _c_messages(self, request: web.Request) -> web.Response:
        return self._json(self.messages())


# --------------------------------------------------------------------------- standalone


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local Twilio REST API stand-in")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18010)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument(
        "--account", action="append", default=[], metavar="SID:TOKEN", help="pre-register an account (repeatable)"
    )
    parser.add_argument(
        "--number",
        action="append",
        default=[],
        metavar="SID:+E164",
        help="pre-register an incoming number (repeatable)",
    )
    args = parser.parse_args(argv)

    async def run() -> None:
        standin = TwilioStandin(latency_ms=args.latency_ms)
        for spec in args.account:
            sid, _, token = spec.partition(":")
            standin.add_account(sid, token or None)
        for spec in args.number:
            sid, _, number = spec.partition(":")
            standin.add_number(sid, number)
        url = await standin.start(args.host, args.port)
        print(f"Twilio stand-in listening on {url} (latency {args.latency_ms} ms)", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await standin.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
