"""telephony.twilio_client: the one module that imports `twilio`; its errors say whether a
retry can help, and one mapping (services.twilio_errors) turns them into the API's errors."""

from __future__ import annotations

import ast
import socket
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from nixflex.errors import ApiError
from telephony.services.twilio_errors import api_error, twilio_api_errors
from telephony.twilio_client import (
    TwilioAuthFailed,
    TwilioError,
    TwilioGateway,
    TwilioRejected,
    TwilioUnavailable,
    WebhookUrls,
    is_valid_signature,
    say_and_hang_up_twiml,
    stream_twiml,
)
from tests.conftest import ROOT, unique_e164


@pytest.fixture
def account(twilio: Any) -> tuple[str, str, str]:
    sid, token = twilio.add_account()
    e164 = unique_e164()
    twilio.add_number(sid, e164)
    return sid, token, e164


@pytest.mark.parametrize(
    "mode, kind, transient, status",
    [
        ("500", TwilioUnavailable, True, 500),
        ("503", TwilioUnavailable, True, 503),
        ("429", TwilioUnavailable, True, 429),
        ("401", TwilioAuthFailed, False, 401),
    ],
)
def test_twilio_answers_are_classified(
    twilio: Any, account: tuple[str, str, str], mode: str, kind: type, transient: bool, status: int
) -> None:
    sid, token, e164 = account
    twilio.configure(fail={"mode": mode})
    with pytest.raises(TwilioError) as caught:
        TwilioGateway(sid, token).find_number(e164)
    assert type(caught.value) is kind and caught.value.transient is transient
    assert caught.value.twilio_error["status"] == status
    assert token not in str(caught.value)


def test_a_timeout_is_transient(twilio: Any, account: tuple[str, str, str]) -> None:
    sid, token, e164 = account
    twilio.configure(fail={"mode": "timeout", "hold_s": 5})
    with override_settings(TWILIO_TIMEOUT_SECONDS=0.5), pytest.raises(TwilioUnavailable) as caught:
        TwilioGateway(sid, token).find_number(e164)
    assert caught.value.transient and caught.value.reason


def test_nobody_listening_is_transient(account: tuple[str, str, str]) -> None:
    sid, token, e164 = account
    with socket.socket() as s:  # a port that was free a moment ago: connection refused
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with (
        override_settings(TWILIO_API_BASE_URL=f"http://127.0.0.1:{closed}"),
        pytest.raises(TwilioUnavailable) as caught,
    ):
        TwilioGateway(sid, token).find_number(e164)
    assert caught.value.reason == "ConnectionError"


def test_wrong_credentials_and_a_closed_account_are_permanent(twilio: Any, account: tuple[str, str, str]) -> None:
    sid, token, e164 = account
    with pytest.raises(TwilioAuthFailed) as caught:
        TwilioGateway(sid, "not-the-token").verify_credentials()
    assert caught.value.transient is False and caught.value.code == 20003
    twilio.remove_account(sid)
    with pytest.raises(TwilioAuthFailed):
        TwilioGateway(sid, token).find_number(e164)


def test_requests_twilio_refuses_are_permanent(twilio: Any, account: tuple[str, str, str]) -> None:
    sid, token, _ = account
    gateway = TwilioGateway(sid, token)
    unknown = "PN" + "0" * 32
    assert gateway.fetch_number(unknown) is None
    with pytest.raises(TwilioRejected) as caught:
        gateway.point_webhooks(unknown, WebhookUrls.nixflex())
    assert caught.value.transient is False and caught.value.is_not_found


def test_credentials_check_returns_the_account(twilio: Any) -> None:
    sid, token = twilio.add_account(friendly_name="Clinic group")
    info = TwilioGateway(sid, token).verify_credentials()
    assert (info.sid, info.friendly_name, info.status) == (sid, "Clinic group", "active")


@pytest.mark.parametrize(
    "error, given, code, status",
    [
        (
            TwilioUnavailable("lookup", {"code": 20503, "message": "down", "status": 503}),
            False,
            "provider_unavailable",
            502,
        ),
        (TwilioUnavailable("lookup", reason="ReadTimeout"), True, "provider_unavailable", 502),
        (
            TwilioAuthFailed("lookup", {"code": 20003, "message": "Authenticate", "status": 401}),
            True,
            "twilio_invalid_credentials",
            400,
        ),
        (
            TwilioAuthFailed("lookup", {"code": 20003, "message": "Authenticate", "status": 401}),
            False,
            "twilio_auth_failed",
            400,
        ),
        (
            TwilioRejected("update", {"code": 21402, "message": "Url is not a valid URL", "status": 400}),
            False,
            "invalid_request",
            400,
        ),
    ],
)
def test_one_mapping_to_the_api_envelope(error: TwilioError, given: bool, code: str, status: int) -> None:
    mapped = api_error(error, credentials_given=given)
    assert (mapped.code, mapped.status) == (code, status)
    if error.twilio_error:
        assert mapped.details["twilio_error"] == error.twilio_error
    if error.transient:
        assert mapped.details["provider"] == "twilio"
    with pytest.raises(ApiError) as caught, twilio_api_errors(credentials_given=given):
        raise error
    assert caught.value.code == code


def test_twiml_and_signatures() -> None:
    root = ET.fromstring(stream_twiml("wss://voice.example.test/media", {"call_id": "call_1", "token": "t"}))
    stream = root.find("./Connect/Stream")
    assert stream is not None and stream.get("url") == "wss://voice.example.test/media"
    assert {p.get("name"): p.get("value") for p in stream.findall("Parameter")} == {"call_id": "call_1", "token": "t"}
    assert [child.tag for child in ET.fromstring(say_and_hang_up_twiml("Goodbye."))] == ["Say", "Hangup"]
    assert not is_valid_signature("token", "https://x.example/twilio/voice", {}, "")
    assert not is_valid_signature("", "https://x.example/twilio/voice", {}, "c2lnbmF0dXJl")


def _imports_twilio(path: Path) -> bool:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        names = (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and not node.level
            else []
        )
        if any(name == "twilio" or name.startswith("twilio.") for name in names):
            return True
    return False


def test_only_twilio_client_imports_twilio() -> None:
    """Production code reaches Twilio only through telephony/twilio_client.py (the stand-ins
    and tests, which play or check Twilio, may import the SDK)."""
    production = [
        path
        for path in ROOT.rglob("*.py")
        if not ({".venv", "tests", "standins", "bench", "node_modules"} & set(path.relative_to(ROOT).parts))
    ]
    importers = sorted(str(path.relative_to(ROOT)) for path in production if _imports_twilio(path))
    assert importers == ["telephony/twilio_client.py"]
