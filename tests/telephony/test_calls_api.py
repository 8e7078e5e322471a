"""GET /v1/calls and GET /v1/calls/{id}: listing, filters, pagination, detail, isolation."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest
from django.utils.dateparse import parse_datetime
from django_tenants.utils import schema_context

from telephony.models import Call, PhoneNumber
from tests.conftest import ApiClient, Persona, assert_error
from tests.telephony.test_voice_webhook import (  # noqa: F401  (_release_leases is an autouse fixture)
    CALLER,
    Line,
    _release_leases,
    assert_stream,
    hang_up,
    import_line,
    new_call_sid,
    ring,
)

T0 = dt.datetime(2026, 1, 10, 12, 0, tzinfo=dt.UTC)
CALLEE = "+447700900555"
LIST_KEYS = {
    "id",
    "object",
    "direction",
    "status",
    "from_number",
    "to_number",
    "agent_id",
    "customer_id",
    "twilio_call_sid",
    "rejection_reason",
    "end_reason",
    "started_at",
    "answered_at",
    "ended_at",
    "duration_seconds",
    "summary",
    "created_at",
}
DETAIL_KEYS = LIST_KEYS | {"transcript", "turns", "extraction", "summary_status"}


def make_call(line: Line, *, hours: float, **fields: Any) -> Call:
    """A call on the line, created `hours` after T0 (rows written directly, as the engine does)."""
    at = T0 + dt.timedelta(hours=hours)
    with schema_context(line.schema):
        values = {
            "twilio_call_sid": new_call_sid(),
            "direction": Call.INBOUND,
            "from_number": CALLER,
            "to_number": line.e164,
            "phone_number": PhoneNumber.objects.get(phone_number=line.e164),
            "agent_id": line.agent_id,
            "customer_id": line.customer_id,
            "status": Call.COMPLETED,
            **fields,
        }
        call = Call.objects.create(**values)
        Call.objects.filter(pk=call.pk).update(created_at=at, started_at=at)
        call.refresh_from_db()
    return call


@dataclass
class Book:
    """Alice's two lines and five calls, c[0] oldest."""

    a: Line
    b: Line
    c: list[Call]

    def ids(self, *indexes: int) -> list[str]:
        return [self.c[i].id for i in indexes]


@pytest.fixture
def book(alice: Persona, twilio: Any) -> Book:
    a, b = import_line(alice, twilio), import_line(alice, twilio)
    calls = [
        make_call(a, hours=0),  # inbound to A
        make_call(b, hours=1, status=Call.REJECTED, rejection_reason="concurrent_call_limit"),
        make_call(
            a,
            hours=2,
            direction=Call.OUTBOUND,
            from_number=a.e164,
            to_number=CALLEE,
            customer_id=None,
            status=Call.IN_PROGRESS,
        ),  # outbound from A
        make_call(b, hours=3, from_number=a.e164, status=Call.RINGING),  # A's number rings B
        make_call(
            a, hours=4, phone_number=None, agent_id=None, customer_id=None, status=Call.FAILED
        ),  # A's number, since deleted
    ]
    return Book(a, b, calls)


def listed(persona: Persona, params: dict[str, Any] | None = None) -> list[str]:
    response = persona.client().get("/v1/calls", params)
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["data"]]


def test_list_is_newest_first_in_the_list_shape(alice: Persona, book: Book) -> None:
    body = alice.client().get("/v1/calls").json()
    assert [item["id"] for item in body["data"]] == book.ids(4, 3, 2, 1, 0)
    assert body["has_more"] is False and set(body) == {"data", "has_more"}
    for item in body["data"]:
        assert set(item) == LIST_KEYS and item["object"] == "call"  # no transcript in lists
    newest, outbound, rejected = body["data"][0], body["data"][2], body["data"][3]
    assert parse_datetime(newest["created_at"]) == T0 + dt.timedelta(hours=4)
    assert (newest["agent_id"], newest["customer_id"], newest["status"]) == (None, None, "failed")
    assert (outbound["direction"], outbound["from_number"], outbound["to_number"]) == ("outbound", book.a.e164, CALLEE)
    assert (rejected["status"], rejected["rejection_reason"]) == ("rejected", "concurrent_call_limit")
    assert (rejected["agent_id"], rejected["customer_id"]) == (book.b.agent_id, book.b.customer_id)


@pytest.mark.parametrize(
    "params, expected",
    [
        (lambda b: {"agent_id": b.a.agent_id}, [2, 0]),
        (lambda b: {"agent_id": b.b.agent_id}, [3, 1]),
        (lambda b: {"agent_id": "agent_0000000000000000"}, []),
        (lambda b: {"customer_id": b.a.customer_id}, [0]),
        (lambda b: {"customer_id": b.b.customer_id}, [3, 1]),
        (lambda b: {"status": "completed"}, [0]),
        (lambda b: {"status": "rejected"}, [1]),
        (lambda b: {"status": "in-progress"}, [2]),
        (lambda b: {"status": "busy"}, []),
        (lambda b: {"direction": "outbound"}, [2]),
        (lambda b: {"direction": "inbound"}, [4, 3, 1, 0]),
        # Our number on the call: dialled (inbound) or caller ID (outbound), never the far end.
        (lambda b: {"phone_number": b.a.e164}, [4, 2, 0]),
        (lambda b: {"phone_number": b.b.e164}, [3, 1]),
        (lambda b: {"phone_number": CALLER}, []),
        (lambda b: {"phone_number": CALLEE}, []),
        (lambda b: {"created_after": "2026-01-10T13:00:00Z"}, [4, 3, 2]),  # exclusive
        (lambda b: {"created_after": "2026-01-10T13:00:00+00:00"}, [4, 3, 2]),
        (lambda b: {"created_after": "2026-01-10T14:00:00+01:00"}, [4, 3, 2]),
        (lambda b: {"created_after": "2026-01-10T13:00:00"}, [4, 3, 2]),  # naive is UTC
        (lambda b: {"created_after": "2026-01-10"}, [4, 3, 2, 1, 0]),
        (lambda b: {"created_after": "2026-01-11"}, []),
        (lambda b: {"created_before": "2026-01-10T13:00:00Z"}, [0]),
        (lambda b: {"created_after": "2026-01-10T12:00:00Z", "created_before": "2026-01-10T15:00:00.000Z"}, [2, 1]),
        (lambda b: {"agent_id": b.a.agent_id, "direction": "inbound"}, [0]),
        (lambda b: {"phone_number": b.a.e164, "status": "failed", "created_after": "2026-01-10T15:30:00Z"}, [4]),
    ],
)
def test_filters(alice: Persona, book: Book, params: Any, expected: list[int]) -> None:
    assert listed(alice, params(book)) == book.ids(*expected)


def test_raw_plus_signs_in_the_query_string_are_understood(alice: Persona, book: Book) -> None:
    # Unencoded, "+" reads as a space: +4420... and +01:00 still mean what the caller meant.
    response = alice.client().get(f"/v1/calls?phone_number={book.a.e164}&created_after=2026-01-10T14:00:00+01:00")
    assert [item["id"] for item in response.json()["data"]] == book.ids(4, 2)


@pytest.mark.parametrize(
    "field, value",
    [
        ("created_after", "yesterday"),
        ("created_after", "2026-13-01"),
        ("created_after", "2026-02-30T00:00:00Z"),
        ("created_after", "10/01/2026"),
        ("created_before", "2026-01-10T25:00:00Z"),
        ("created_before", "not-a-date"),
        ("status", "finished"),
        ("direction", "sideways"),
    ],
)
def test_bad_filter_is_invalid_request_naming_the_field(alice: Persona, book: Book, field: str, value: str) -> None:
    error = assert_error(alice.client().get("/v1/calls", {field: value}), 400, "invalid_request", "invalid_request")
    assert list(error["details"]["fields"]) == [field]
    assert field in error["message"]


def test_pagination(alice: Persona, book: Book) -> None:
    client = alice.client()
    first = client.get("/v1/calls", {"limit": 2}).json()
    assert [c["id"] for c in first["data"]] == book.ids(4, 3) and first["has_more"] is True
    second = client.get("/v1/calls", {"limit": 2, "starting_after": first["data"][-1]["id"]}).json()
    assert [c["id"] for c in second["data"]] == book.ids(2, 1) and second["has_more"] is True
    last = client.get("/v1/calls", {"limit": 2, "starting_after": second["data"][-1]["id"]}).json()
    assert [c["id"] for c in last["data"]] == book.ids(0) and last["has_more"] is False
    # With a filter, pages are pages of the filtered list.
    inbound = client.get("/v1/calls", {"limit": 3, "direction": "inbound"}).json()
    assert [c["id"] for c in inbound["data"]] == book.ids(4, 3, 1) and inbound["has_more"] is True
    rest = client.get("/v1/calls", {"limit": 3, "direction": "inbound", "starting_after": book.c[1].id}).json()
    assert [c["id"] for c in rest["data"]] == book.ids(0) and rest["has_more"] is False
    exact = client.get("/v1/calls", {"limit": 5}).json()
    assert len(exact["data"]) == 5 and exact["has_more"] is False


def test_bad_pagination_parameters(alice: Persona, book: Book) -> None:
    client = alice.client()
    assert_error(
        client.get("/v1/calls", {"starting_after": "call_0000000000000000"}), 400, "invalid_request", "invalid_request"
    )
    for limit in ("0", "101", "ten"):
        assert_error(client.get("/v1/calls", {"limit": limit}), 400, "invalid_request", "invalid_request")


def test_detail_has_transcript_turns_summary_and_extraction(alice: Persona, twilio: Any) -> None:
    line = import_line(alice, twilio)
    transcript = [
        {"role": "agent", "text": "Smile Dental, how can I help?", "at": 0.4},
        {"role": "caller", "text": "I'd like to book a cleaning.", "at": 3.1},
        {"role": "agent", "text": "Sure, is Tuesday at ten good?", "at": 4.0, "interrupted": True},
        {"role": "caller", "text": "1", "at": 6.2, "dtmf": True},
    ]
    turns = [
        {
            "turn": 1,
            "caller_stopped": 3.3,
            "stt_final": 3.45,
            "llm_first_token": 3.7,
            "tts_first_byte": 3.85,
            "first_frame_sent": 3.9,
            "voice_to_voice": 0.6,
            "heard": "Sure, is Tuesday",
        }
    ]
    extraction = {"intent": "book_cleaning", "preferred_day": "Tuesday", "callback_needed": False}
    call = make_call(
        line,
        hours=0,
        transcript=transcript,
        turns=turns,
        summary="Caller booked a cleaning.",
        extraction=extraction,
        summary_status="done",
        answered_at=T0,
        duration_seconds=95,
        ended_at=T0 + dt.timedelta(seconds=95),
        end_reason="caller_hung_up",
    )
    response = alice.client().get(f"/v1/calls/{call.id}")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == DETAIL_KEYS
    assert (body["id"], body["object"], body["twilio_call_sid"]) == (call.id, "call", call.twilio_call_sid)
    assert body["transcript"] == transcript and body["turns"] == turns and body["extraction"] == extraction
    assert (body["summary"], body["summary_status"]) == ("Caller booked a cleaning.", "done")
    assert (body["duration_seconds"], body["end_reason"], body["status"]) == (95, "caller_hung_up", "completed")
    assert parse_datetime(body["ended_at"]) == T0 + dt.timedelta(seconds=95)
    assert parse_datetime(body["answered_at"]) == T0


def test_detail_of_a_call_without_content(alice: Persona, book: Book) -> None:
    body = alice.client().get(f"/v1/calls/{book.c[3].id}").json()
    assert (body["transcript"], body["turns"], body["extraction"]) == ([], [], {})
    assert (body["summary"], body["summary_status"], body["answered_at"], body["ended_at"]) == (
        None,
        "none",
        None,
        None,
    )


def test_another_account_cannot_see_the_calls(alice: Persona, bob: Persona, book: Book) -> None:
    call_id = book.c[0].id
    assert alice.client().get(f"/v1/calls/{call_id}").status_code == 200
    error = assert_error(bob.client().get(f"/v1/calls/{call_id}"), 404, "not_found", "call_not_found")
    assert error["details"] == {"call_id": call_id}
    assert bob.client().get("/v1/calls").json() == {"data": [], "has_more": False}
    assert listed(bob, {"agent_id": book.a.agent_id}) == []
    assert listed(bob, {"phone_number": book.a.e164}) == []
    # Alice's call id is not a cursor in Bob's list either.
    assert_error(bob.client().get("/v1/calls", {"starting_after": call_id}), 400, "invalid_request", "invalid_request")


def test_unknown_call_is_call_not_found(alice: Persona) -> None:
    assert_error(alice.client().get("/v1/calls/call_0000000000000000"), 404, "not_found", "call_not_found")


@pytest.mark.parametrize("authorization", [None, "Bearer key_0000000000000000:sk_wrong"])
def test_unauthenticated_is_invalid_api_key(book: Book, authorization: str | None) -> None:
    client = ApiClient(authorization)
    assert_error(client.get("/v1/calls"), 401, "authentication_error", "invalid_api_key")
    assert_error(client.get(f"/v1/calls/{book.c[0].id}"), 401, "authentication_error", "invalid_api_key")


def test_a_call_answered_by_the_voice_webhook_is_listed(alice: Persona, twilio: Any) -> None:
    line = import_line(alice, twilio)
    response, params = ring(line)
    call_id = assert_stream(response, line)
    [item] = alice.client().get("/v1/calls", {"phone_number": line.e164}).json()["data"]
    assert item["id"] == call_id and item["twilio_call_sid"] == params["CallSid"]
    assert (item["status"], item["direction"], item["from_number"], item["to_number"]) == (
        "ringing",
        "inbound",
        CALLER,
        line.e164,
    )
    assert (item["agent_id"], item["customer_id"]) == (line.agent_id, line.customer_id)
    hang_up(line, params, duration=17)
    detail = alice.client().get(f"/v1/calls/{call_id}").json()
    assert (detail["status"], detail["duration_seconds"]) == ("completed", 17) and detail["ended_at"]
