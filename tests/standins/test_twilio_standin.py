"""The Twilio REST stand-in, driven through the real twilio SDK (via make_client)."""

from __future__ import annotations

import asyncio
import base64
import time

import aiohttp
import pytest
import requests
from twilio.base.exceptions import TwilioException, TwilioRestException

from standins.twilio_api import TwilioStandin, make_account_sid, make_token
from telephony.twilio_client import BaseUrlTwilioHttpClient, make_client, rewrite_url


@pytest.fixture(scope="module")
def standin():
    server = TwilioStandin()
    server.start_in_thread()
    yield server
    server.stop_thread()


@pytest.fixture(autouse=True)
def _fresh_state(standin):
    """Numbers are unique across accounts (as at Twilio): start every test empty."""
    standin.reset()
    yield
    standin.reset()


@pytest.fixture
def account(standin):
    """A fresh account (sid, token) with three numbers and a client for it."""
    sid, token = standin.add_account()
    numbers = [
        standin.add_number(sid, "+14155550101", voice_url="https://old.example.com/voice"),
        standin.add_number(sid, "+14155550102", friendly_name="support"),
        standin.add_number(sid, "+442071838750"),
    ]
    client = make_client(sid, token, standin.base_url, timeout=5)
    return sid, token, numbers, client


def _http(standin, method, path, **kwargs):
    return requests.request(method, standin.base_url + path, timeout=5, **kwargs)


# ----------------------------------------------------------------------------- sdk glue


def test_rewrite_url_and_stock_behaviour():
    url = "https://api.twilio.com/2010-04-01/Accounts/AC1/Calls.json?PageSize=5"
    assert rewrite_url(url, "http://127.0.0.1:18010") == (
        "http://127.0.0.1:18010/2010-04-01/Accounts/AC1/Calls.json?PageSize=5"
    )
    assert rewrite_url("https://lookups.twilio.com/v2/PhoneNumbers/+1", "http://h:1/tw/") == (
        "http://h:1/tw/v2/PhoneNumbers/+1"
    )
    assert rewrite_url(url, "https://api.twilio.com") == url
    assert rewrite_url(url, None) == url
    assert rewrite_url("https://example.com/x", "http://h:1") == "https://example.com/x"
    stock = BaseUrlTwilioHttpClient("https://api.twilio.com", timeout=3)
    assert stock.session is not None
    assert stock.is_stock and stock.session.trust_env and stock.timeout == 3
    local = BaseUrlTwilioHttpClient("http://127.0.0.1:1")
    assert local.session is not None
    assert not local.is_stock and not local.session.trust_env
    with pytest.raises(ValueError):
        BaseUrlTwilioHttpClient("ftp://127.0.0.1:1")


def test_make_client_ignores_edge_and_region(standin, account, monkeypatch):
    sid, token, numbers, _ = account
    monkeypatch.setenv("TWILIO_EDGE", "sydney")
    monkeypatch.setenv("TWILIO_REGION", "au1")
    client = make_client(sid, token, standin.base_url)
    assert client.edge is None and client.region is None
    assert client.incoming_phone_numbers(numbers[0]["sid"]).fetch().sid == numbers[0]["sid"]


# ----------------------------------------------------------------------------- numbers


def test_list_exact_partial_and_wildcard(account):
    sid, _, numbers, client = account
    every = client.incoming_phone_numbers.list()
    assert [n.phone_number for n in every] == ["+14155550101", "+14155550102", "+442071838750"]
    assert every[0].account_sid == sid and every[0].voice_url == "https://old.example.com/voice"
    assert every[0].capabilities == {"voice": True, "sms": True, "mms": True, "fax": False}
    assert every[0].date_created is not None and every[0].date_created.tzinfo is not None
    assert every[0].friendly_name == "(415) 555-0101"

    exact = client.incoming_phone_numbers.list(phone_number="+14155550102")
    assert [n.sid for n in exact] == [numbers[1]["sid"]]
    partial = client.incoming_phone_numbers.list(phone_number="555010")
    assert {n.phone_number for n in partial} == {"+14155550101", "+14155550102"}
    wildcard = client.incoming_phone_numbers.list(phone_number="+1415555010*")
    assert len(wildcard) == 2
    assert client.incoming_phone_numbers.list(phone_number="20718*8750")[0].phone_number == "+442071838750"
    assert client.incoming_phone_numbers.list(phone_number="+1999") == []
    # '+' anchors at the start: "+44" is not contained in +1415...
    assert [n.phone_number for n in client.incoming_phone_numbers.list(phone_number="+44")] == ["+442071838750"]
    assert [n.sid for n in client.incoming_phone_numbers.list(friendly_name="support")] == [numbers[1]["sid"]]


def test_paging_follows_next_page_uri(standin):
    sid, token = standin.add_account()
    for i in range(120):
        standin.add_number(sid, f"+1628555{i:04d}")
    client = make_client(sid, token, standin.base_url)
    standin.clear_requests()

    listed = client.incoming_phone_numbers.list(page_size=50)
    assert len(listed) == 120 and len({n.sid for n in listed}) == 120
    assert [n.phone_number for n in listed] == [f"+1628555{i:04d}" for i in range(120)]
    sent = standin.requests(path_contains=sid)
    assert [r["query"].get("Page") for r in sent] == [None, "1", "2"]
    assert all(r["query"]["PageSize"] == "50" for r in sent)
    assert sent[1]["query"]["PageToken"] == f"PA{listed[49].sid}"

    # Filters survive into next_page_uri; limit stops early.
    filtered = client.incoming_phone_numbers.list(phone_number="+162855501**", page_size=3)
    assert [n.phone_number for n in filtered] == [f"+1628555{i:04d}" for i in range(100, 120)]
    assert len(client.incoming_phone_numbers.list(limit=7, page_size=5)) == 7

    page = client.incoming_phone_numbers.page(page_size=50)
    page2 = page.next_page()
    assert page2 is not None
    page3 = page2.next_page()
    assert page3 is not None
    assert len(list(page3)) == 20 and page3.next_page() is None
    previous = page2.previous_page()
    assert previous is not None
    assert [n.sid for n in previous] == [n.sid for n in listed[:50]]


def test_fetch_update_delete(standin, account):
    sid, _, numbers, client = account
    pn = numbers[0]["sid"]
    fetched = client.incoming_phone_numbers(pn).fetch()
    assert fetched.phone_number == "+14155550101" and fetched.voice_method == "POST"
    assert fetched.uri == f"/2010-04-01/Accounts/{sid}/IncomingPhoneNumbers/{pn}.json"

    updated = client.incoming_phone_numbers(pn).update(
        voice_url="https://app.example.com/twilio/voice",
        voice_method="post",
        voice_fallback_url="https://app.example.com/twilio/fallback",
        status_callback="https://app.example.com/twilio/status",
        sms_url="",
        friendly_name="main line",
    )
    assert updated.voice_url == "https://app.example.com/twilio/voice"
    again = client.incoming_phone_numbers(pn).fetch()
    assert (
        again.voice_url,
        again.voice_method,
        again.voice_fallback_url,
        again.status_callback,
        again.friendly_name,
    ) == (
        "https://app.example.com/twilio/voice",
        "POST",
        "https://app.example.com/twilio/fallback",
        "https://app.example.com/twilio/status",
        "main line",
    )
    assert standin.get_number(pn)["voice_url"] == "https://app.example.com/twilio/voice"
    posted = standin.requests(path_contains=pn, method="POST")[-1]
    assert posted["form"]["VoiceUrl"] == "https://app.example.com/twilio/voice"
    assert posted["status"] == 200 and posted["account_sid"] == sid

    with pytest.raises(TwilioRestException) as exc:
        client.incoming_phone_numbers(pn).update(voice_url="ftp://nope.example.com/x")
    assert exc.value.status == 400 and exc.value.code == 21502
    with pytest.raises(TwilioRestException) as exc:
        client.incoming_phone_numbers(pn).update(voice_url="not a url")
    assert exc.value.code == 21502
    with pytest.raises(TwilioRestException) as exc:
        client.incoming_phone_numbers(pn).update(voice_method="PUT")
    assert exc.value.status == 400
    # Nothing was applied by the refused updates.
    assert client.incoming_phone_numbers(pn).fetch().voice_url == "https://app.example.com/twilio/voice"
    # Unknown parameter names are refused.
    raw = _http(
        standin,
        "POST",
        f"/2010-04-01/Accounts/{sid}/IncomingPhoneNumbers/{pn}.json",
        data={"VoiceURL": "https://x.example.com"},
        auth=(sid, account[1]),
    )
    assert raw.status_code == 400 and raw.json()["code"] == 20001

    assert client.incoming_phone_numbers(pn).delete() is True
    with pytest.raises(TwilioRestException) as exc:
        client.incoming_phone_numbers(pn).fetch()
    assert exc.value.status == 404 and exc.value.code == 20404


def test_unknown_number_is_20404(account):
    _, _, _, client = account
    missing = "PN" + "0" * 32
    with pytest.raises(TwilioRestException) as exc:
        client.incoming_phone_numbers(missing).fetch()
    assert exc.value.status == 404 and exc.value.code == 20404
    with pytest.raises(TwilioRestException) as exc:
        client.incoming_phone_numbers(missing).update(voice_url="https://x.example.com/v")
    assert exc.value.code == 20404


def test_numbers_of_other_accounts_are_invisible(standin, account):
    _, _, numbers, _ = account
    other_sid, other_token = standin.add_account()
    other = make_client(other_sid, other_token, standin.base_url)
    assert other.incoming_phone_numbers.list() == []
    with pytest.raises(TwilioRestException) as exc:
        other.incoming_phone_numbers(numbers[0]["sid"]).fetch()
    assert exc.value.code == 20404


def test_bad_credentials_are_20003(standin, account):
    sid, token, numbers, _ = account
    pn = numbers[0]["sid"]
    for bad_sid, bad_token in [(sid, "wrong"), (make_account_sid(), make_token())]:
        client = make_client(bad_sid, bad_token, standin.base_url)
        with pytest.raises(TwilioRestException) as exc:
            client.api.v2010.accounts(sid).incoming_phone_numbers(pn).fetch()
        assert exc.value.status == 401 and exc.value.code == 20003
        with pytest.raises(TwilioException) as list_error:  # a failed list is a plain TwilioException
            client.incoming_phone_numbers.list()
        response = list_error.value.args[1]
        assert response.status_code == 401 and '"code": 20003' in response.text
    # Good credentials, but another account's URL.
    other_sid, _ = standin.add_account()
    client = make_client(sid, token, standin.base_url)
    with pytest.raises(TwilioRestException) as exc:
        client.api.v2010.accounts(other_sid).incoming_phone_numbers.create(phone_number="+14155550199")
    assert exc.value.status == 401 and exc.value.code == 20003
    raw = _http(standin, "GET", f"/2010-04-01/Accounts/{sid}/IncomingPhoneNumbers.json")
    assert raw.status_code == 401 and raw.json() == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }


def test_account_fetch_and_number_purchase(account):
    sid, token, _, client = account
    fetched = client.api.v2010.accounts(sid).fetch()
    assert fetched.sid == sid and fetched.status == "active"
    bought = client.incoming_phone_numbers.create(area_code="628", voice_url="https://app.example.com/v")
    assert bought.phone_number.startswith("+1628") and bought.sid.startswith("PN")
    with pytest.raises(TwilioRestException) as exc:
        client.incoming_phone_numbers.create(phone_number="+14155550101")
    assert exc.value.code == 21422


# ----------------------------------------------------------------------------- latency / failures


def test_latency_delays_and_overlaps(standin, account):
    sid, token, numbers, client = account
    pn = numbers[0]["sid"]
    standin.configure(latency_ms=250)
    started = time.monotonic()
    client.incoming_phone_numbers(pn).fetch()
    assert time.monotonic() - started >= 0.25

    async def burst(n):
        url = f"{standin.base_url}/2010-04-01/Accounts/{sid}/IncomingPhoneNumbers/{pn}.json"
        headers = {"Authorization": "Basic " + base64.b64encode(f"{sid}:{token}".encode()).decode()}
        conn = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=conn, headers=headers) as s:

            async def one():
                async with s.get(url) as r:
                    return r.status

            return await asyncio.gather(*[one() for _ in range(n)])

    started = time.monotonic()
    statuses = asyncio.run(burst(300))
    elapsed = time.monotonic() - started
    assert statuses == [200] * 300
    assert 0.25 <= elapsed < 3.0, elapsed  # concurrent, not 300 x 250 ms


def test_fail_500(standin, account):
    _, _, numbers, client = account
    pn = numbers[0]["sid"]
    standin.configure(fail={"mode": "500", "count": 2})
    with pytest.raises(TwilioRestException) as exc:
        client.incoming_phone_numbers(pn).fetch()
    assert exc.value.status == 500 and exc.value.code == 20500
    with pytest.raises(TwilioException):
        client.incoming_phone_numbers.list()
    assert client.incoming_phone_numbers(pn).fetch().sid == pn  # count used up
    assert standin.config()["fail"] == {"mode": "none"}

    # Narrowed by method and path: GETs keep working.
    standin.configure(fail={"mode": "500", "methods": ["POST"], "path_contains": "IncomingPhoneNumbers"})
    assert client.incoming_phone_numbers(pn).fetch().sid == pn
    with pytest.raises(TwilioRestException):
        client.incoming_phone_numbers(pn).update(voice_url="https://x.example.com/v")
    statuses = [r["status"] for r in standin.requests(path_contains=pn)[-2:]]
    assert statuses == [200, 500]


def test_fail_401_and_429(standin, account):
    _, _, numbers, client = account
    pn = numbers[0]["sid"]
    standin.configure(fail={"mode": "401", "count": 1})
    with pytest.raises(TwilioRestException) as exc:
        client.incoming_phone_numbers(pn).fetch()
    assert exc.value.code == 20003 and exc.value.status == 401
    standin.configure(fail={"mode": "429", "count": 1})
    with pytest.raises(TwilioRestException) as exc:
        client.incoming_phone_numbers(pn).fetch()
    assert exc.value.code == 20429 and exc.value.status == 429
    assert client.incoming_phone_numbers(pn).fetch().sid == pn


def test_fail_timeout(standin, account):
    sid, token, numbers, _ = account
    pn = numbers[0]["sid"]
    client = make_client(sid, token, standin.base_url, timeout=0.3)
    standin.configure(fail={"mode": "timeout", "count": 1, "hold_s": 3})
    started = time.monotonic()
    # The SDK does not wrap transport errors: a timeout surfaces as requests' Timeout.
    with pytest.raises(requests.exceptions.Timeout):
        client.incoming_phone_numbers(pn).fetch()
    assert time.monotonic() - started < 2
    assert client.incoming_phone_numbers(pn).fetch().sid == pn


# ----------------------------------------------------------------------------- calls


def test_calls_create_update_and_control_api(standin, account):
    sid, _, numbers, client = account
    call = client.calls.create(
        to="+14155559999",
        from_="+14155550101",
        url="https://app.example.com/twilio/voice",
        status_callback="https://app.example.com/twilio/status",
        status_callback_event=["initiated", "ringing", "answered", "completed"],
        status_callback_method="POST",
        machine_detection="Enable",
        timeout=20,
    )
    assert call.sid.startswith("CA") and len(call.sid) == 34
    assert call.status == "queued" and call.to == "+14155559999" and call._from == "+14155550101"
    assert call.phone_number_sid == numbers[0]["sid"] and call.direction == "outbound-api"

    redirected = client.calls(call.sid).update(twiml="<Response><Hangup/></Response>")
    assert redirected.status == "queued"
    done = client.calls(call.sid).update(status="completed")
    assert done.status == "completed" and done.end_time is not None
    assert client.calls(call.sid).fetch().status == "completed"

    seen = _http(standin, "GET", "/_standin/calls").json()
    mine = next(c for c in seen if c["sid"] == call.sid)
    assert mine["status"] == "completed"
    assert mine["request"]["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
    assert mine["request"]["Url"] == "https://app.example.com/twilio/voice"
    assert mine["request"]["MachineDetection"] == "Enable" and mine["request"]["Timeout"] == "20"
    assert [u["params"] for u in mine["updates"]] == [
        {"Twiml": "<Response><Hangup/></Response>"},
        {"Status": "completed"},
    ]

    with pytest.raises(TwilioRestException) as exc:  # already over
        client.calls(call.sid).update(status="completed")
    assert exc.value.code == 21220
    assert [c.sid for c in client.calls.list(status="completed")] == [call.sid]


def test_calls_validation(standin, account):
    _, _, _, client = account
    cases = [
        ({"to": "5551234", "from_": "+14155550101", "url": "https://a.example.com/v"}, 21211),
        ({"to": "+14155559999", "from_": "+14155557777", "url": "https://a.example.com/v"}, 21210),
        ({"to": "+14155559999", "from_": "+14155550101"}, 21205),
        ({"to": "+14155559999", "from_": "+14155550101", "url": "javascript:alert(1)"}, 21205),
        (
            {
                "to": "+14155559999",
                "from_": "+14155550101",
                "url": "https://a.example.com/v",
                "status_callback_event": ["bogus"],
            },
            20001,
        ),
    ]
    for kwargs, code in cases:
        with pytest.raises(TwilioRestException) as exc:
            client.calls.create(**kwargs)
        assert (exc.value.status, exc.value.code) == (400, code), kwargs
    with pytest.raises(TwilioRestException) as exc:
        client.calls("CA" + "0" * 32).update(status="completed")
    assert exc.value.code == 20404
    call = client.calls.create(to="+14155559999", from_="+14155550101", twiml="<Response><Say>hi</Say></Response>")
    with pytest.raises(TwilioRestException) as exc:
        client.calls(call.sid).update(status="in-progress")
    assert exc.value.status == 400
    assert client.calls(call.sid).update(status="canceled").status == "canceled"
    standin.set_call_status(call.sid, "completed")  # control API can move calls along


# ----------------------------------------------------------------------------- messages


def test_messages(standin, account):
    _, _, _, client = account
    message = client.messages.create(
        to="+14155559999", from_="+14155550101", body="hello", status_callback="https://app.example.com/sms/status"
    )
    assert message.sid.startswith("SM") and message.status == "queued"
    assert message.body == "hello" and message.num_segments == "1"
    assert client.messages(message.sid).fetch().to == "+14155559999"
    seen = _http(standin, "GET", "/_standin/messages").json()
    assert any(m["sid"] == message.sid and m["request"]["Body"] == "hello" for m in seen)

    assert client.messages.create(to="+14155559999", from_="+14155550101", body="x" * 1600)
    with pytest.raises(TwilioRestException) as exc:
        client.messages.create(to="+14155559999", from_="+14155550101", body="x" * 1601)
    assert (exc.value.status, exc.value.code) == (400, 21617)
    with pytest.raises(TwilioRestException) as exc:
        client.messages.create(to="not-a-number", from_="+14155550101", body="hi")
    assert exc.value.code == 21211
    with pytest.raises(TwilioRestException) as exc:
        client.messages.create(to="+14155559999", from_="+14155557777", body="hi")
    assert exc.value.code == 21606

    opted = _http(standin, "POST", "/_standin/opt_out", json={"phone_number": "+14155558888"})
    assert opted.status_code == 200
    with pytest.raises(TwilioRestException) as exc:
        client.messages.create(to="+14155558888", from_="+14155550101", body="hi")
    assert (exc.value.status, exc.value.code) == (400, 21610)
    standin.opt_out("+14155558888", opted_out=False)
    assert client.messages.create(to="+14155558888", from_="+14155550101", body="hi again")


# ----------------------------------------------------------------------------- control API over HTTP


def test_control_api_over_http(standin):
    sid, token = make_account_sid(), make_token()
    assert _http(standin, "POST", "/_standin/accounts", json={"sid": sid, "token": token}).status_code == 201
    created = _http(
        standin,
        "POST",
        "/_standin/numbers",
        json={
            "account_sid": sid,
            "phone_number": "+13105550123",
            "voice_url": "https://app.example.com/v",
            "friendly_name": "la",
        },
    )
    assert created.status_code == 201
    number = created.json()
    assert number["sid"].startswith("PN") and number["voice_url"] == "https://app.example.com/v"
    duplicate = _http(standin, "POST", "/_standin/numbers", json={"account_sid": sid, "phone_number": "+13105550123"})
    assert duplicate.status_code == 409
    listed = _http(standin, "GET", f"/_standin/numbers/{sid}").json()
    assert [n["sid"] for n in listed] == [number["sid"]]

    config = _http(
        standin, "POST", "/_standin/config", json={"latency_ms": 5, "fail": {"mode": "500", "count": 1}}
    ).json()
    assert config == {"latency_ms": 5.0, "fail": {"mode": "500", "count": 1, "hold_s": 30.0}}
    client = make_client(sid, token, standin.base_url)
    with pytest.raises(TwilioRestException):
        client.incoming_phone_numbers(number["sid"]).fetch()
    assert client.incoming_phone_numbers(number["sid"]).fetch().friendly_name == "la"
    logged = _http(standin, "GET", "/_standin/requests", params={"path_contains": number["sid"]}).json()
    assert [r["status"] for r in logged] == [500, 200]
    assert {"method", "path", "query", "form", "account_sid", "time"} <= set(logged[0])

    fresh = TwilioStandin()
    url = fresh.start_in_thread()
    try:
        fresh.add_account(sid, token)
        assert requests.post(url + "/_standin/reset", timeout=5).json() == {"ok": True}
        assert fresh.accounts() == {} and fresh.requests() == []
    finally:
        fresh.stop_thread()
