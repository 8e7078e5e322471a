"""Call slots: short until the stream starts, a share of the pool per account, the
capacity the web processes advertise, and status callbacks that only the call's own
number may sign. Webhooks signed for real through the Django test client; each test
gets a lease prefix of its own, so it sees only the slots it takes."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from io import StringIO
from typing import Any, cast

import pytest
import redis
from django.core.management import call_command
from django.test import Client
from django_tenants.utils import schema_context
from twilio.request_validator import RequestValidator

from telephony import concurrency
from telephony.models import Call
from telephony.services import live_calls
from telephony.services.calls import stream_url
from tenants.db import tenant_connection
from tests.conftest import Persona, wait_for
from tests.telephony.test_status_callbacks import callback, row
from tests.telephony.test_voice_webhook import (
    Line,
    assert_say_and_hang_up,
    assert_stream,
    calls_in,
    import_line,
    inbound_params,
    post_twilio,
    ring,
    sign,
)


@pytest.fixture(autouse=True)
def own_slots(settings: Any) -> Iterator[redis.Redis]:
    """A lease prefix for this test alone: only the calls it admits hold slots, and only
    this process (which admits them) advertises capacity in it."""
    settings.CALL_LEASE_PREFIX = f"{settings.CALL_LEASE_PREFIX}:{uuid.uuid4().hex[:8]}"
    r = redis.Redis.from_url(settings.REDIS_URL)
    yield r
    keys = list(r.scan_iter(f"{settings.CALL_LEASE_PREFIX}:*"))
    if keys:
        r.delete(*keys)


def _platform(r: redis.Redis, settings: Any) -> set[str]:
    key = f"{settings.CALL_LEASE_PREFIX}:platform"
    r.zremrangebyscore(key, "-inf", time.time())
    members = cast("list[bytes]", r.zrange(key, 0, -1))  # without withscores: the members, undecoded
    return {m.decode() for m in members}


def test_webhooks_that_never_stream_free_their_slots_within_seconds(
    make_persona: Any, alice: Persona, twilio: Any, settings: Any, own_slots: redis.Redis
) -> None:
    # Mallory knows her own Twilio token, so she can sign voice webhooks for calls that never
    # happen. Forty of them fill the platform...
    settings.PLATFORM_MAX_CONCURRENT_CALLS = 40
    settings.PLATFORM_ACCOUNT_SHARE = 1.0  # (the share is tested on its own below)
    settings.CALL_ADMISSION_LEASE_SECONDS = 8.0  # seconds, not the hours of a call's whole length
    mallory = import_line(make_persona("Mallory", max_concurrent_calls=100), twilio)
    alices = import_line(alice, twilio)
    for _ in range(40):
        assert_stream(ring(mallory)[0], mallory)
    assert len(_platform(own_slots, settings)) == 40
    assert "busy" in assert_say_and_hang_up(ring(alices)[0])

    # ...but only until their short admission lease runs out: no stream, no slot.
    wait_for(lambda: _platform(own_slots, settings) == set(), timeout=10)
    assert concurrency.active_calls(mallory.schema) == 0
    assert_stream(ring(alices)[0], alices)


def test_one_account_cannot_take_the_whole_platform_pool(
    make_persona: Any, alice: Persona, twilio: Any, settings: Any
) -> None:
    settings.PLATFORM_MAX_CONCURRENT_CALLS = 4
    assert settings.PLATFORM_ACCOUNT_SHARE == 0.5  # the default: half the pool at most
    mallory = import_line(make_persona("Mallory", max_concurrent_calls=100), twilio)
    alices = import_line(alice, twilio)

    for _ in range(2):
        assert_stream(ring(mallory)[0], mallory)
    refused, params = ring(mallory)
    assert "busy" in assert_say_and_hang_up(refused)
    call = row(mallory, params["CallSid"])
    assert (call.status, call.rejection_reason, call.end_reason) == (
        Call.REJECTED,
        Call.CONCURRENT_CALL_LIMIT,
        concurrency.ACCOUNT_SHARE_FULL,
    )
    assert concurrency.active_calls(mallory.schema) == 2

    # The rest of the pool is there for everyone else.
    for _ in range(2):
        assert_stream(ring(alices)[0], alices)
    assert "busy" in assert_say_and_hang_up(ring(alices)[0])  # now the platform is full
    assert [c.end_reason for c in calls_in(alices.schema) if c.status == Call.REJECTED] == [concurrency.PLATFORM_FULL]


def test_a_full_platform_refuses_calls_politely_and_records_why(
    line_pair: tuple[Line, Line], settings: Any, own_slots: redis.Redis
) -> None:
    """This process is the only web process here: its advertised capacity is the platform's."""
    settings.PROCESS_CALL_CAPACITY = 2
    settings.PLATFORM_ACCOUNT_SHARE = 1.0
    first, second = line_pair
    assert_stream(ring(first)[0], first)
    assert_stream(ring(second)[0], second)

    refused, params = ring(first)
    assert "busy" in assert_say_and_hang_up(refused)
    call = row(first, params["CallSid"])
    assert (call.status, call.rejection_reason, call.end_reason) == (
        Call.REJECTED,
        Call.CONCURRENT_CALL_LIMIT,
        concurrency.CAPACITY_FULL,
    )
    assert call.ended_at is not None

    # What the process advertises, for load balancers and the benchmark...
    health = Client(HTTP_HOST="api.localhost").get("/health").json()
    assert health["calls"] == {"capacity": 2, "live": 0}
    # ...and what the platform sees.
    out = StringIO()
    call_command("call_capacity", "--json", stdout=out)
    load = json.loads(out.getvalue())
    assert (load["capacity"], load["pool"], load["slots_held"]) == (2, 2, 2)
    assert len(load["processes"]) == 1


def upgrade_signature(line: Line) -> str:
    """X-Twilio-Signature of the media stream's upgrade: Twilio signs our wss:// stream URL."""
    return RequestValidator(line.token).compute_signature(stream_url(), {})


def test_a_stream_that_starts_after_its_lease_ran_out_must_win_a_slot_again(
    make_persona: Any, twilio: Any, settings: Any
) -> None:
    # Otherwise the holder of a stream token could wait out the short lease and stream anyway.
    settings.CALL_ADMISSION_LEASE_SECONDS = 0.5
    line = import_line(make_persona("Solo", max_concurrent_calls=1), twilio)
    late = assert_stream(ring(line)[0], line)
    time.sleep(0.6)
    now = assert_stream(ring(line)[0], line)  # the late call's slot went to another call
    with pytest.raises(live_calls.StreamRefused, match="no call slot"):
        live_calls.open_live_call(schema_name=line.schema, call_id=late, signature=upgrade_signature(line))
    tenant_connection().set_schema_to_public()

    # The call that holds the slot streams; its lease is now the long, renewed one.
    live = live_calls.open_live_call(schema_name=line.schema, call_id=now, signature=upgrade_signature(line))
    tenant_connection().set_schema_to_public()
    assert live.setup.call_id == now and concurrency.live_calls_here() >= 1
    r = redis.Redis.from_url(settings.REDIS_URL)
    expiry = r.zscore(f"{settings.CALL_LEASE_PREFIX}:account:{line.schema}", now)
    assert expiry is not None and expiry > time.time() + settings.CALL_LIVE_LEASE_SECONDS - 5
    concurrency.release(schema_name=line.schema, call_id=now)
    assert concurrency.active_calls(line.schema) == 0


@pytest.fixture
def line_pair(alice: Persona, twilio: Any) -> tuple[Line, Line]:
    """Two numbers of one account, each from its own Twilio account (two clinics)."""
    return import_line(alice, twilio), import_line(alice, twilio)


def test_status_callback_signed_with_another_numbers_token_is_refused(line_pair: tuple[Line, Line]) -> None:
    clinic_a, clinic_b = line_pair
    response, params = ring(clinic_b)
    assert_stream(response, clinic_b)
    # Clinic A's Twilio token signs a `completed` for clinic B's call, naming A's number.
    forged = {**params, "To": clinic_a.e164, "Called": clinic_a.e164, "AccountSid": clinic_a.twilio_sid}
    response = callback(clinic_a, forged, "completed", CallDuration="1")
    assert response.status_code == 403
    assert row(clinic_b, params["CallSid"]).status == Call.RINGING
    assert concurrency.active_calls(clinic_b.schema) == 1  # the slot is not released by it
    # Signed by the call's own number, it is applied.
    assert callback(clinic_b, params, "completed", CallDuration="1").status_code == 204
    assert row(clinic_b, params["CallSid"]).status == Call.COMPLETED
    assert concurrency.active_calls(clinic_b.schema) == 0


def test_voice_webhook_signed_for_another_numbers_call_is_refused(line_pair: tuple[Line, Line]) -> None:
    clinic_a, clinic_b = line_pair
    response, params = ring(clinic_b)
    b_call = assert_stream(response, clinic_b)
    # Clinic A asks for a stream token for clinic B's call (its CallSid, A's number and token).
    forged = {**inbound_params(clinic_a), "CallSid": params["CallSid"]}
    response = post_twilio("/twilio/voice", forged, sign("/twilio/voice", forged, clinic_a.token))
    assert response.status_code == 403 and b"<Connect" not in response.content
    with schema_context(clinic_b.schema):
        assert [c.id for c in Call.objects.all()] == [b_call]
