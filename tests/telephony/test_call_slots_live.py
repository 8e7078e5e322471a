"""Call slots on the live path, through a real server: leases renewed by the process that
serves the call, and a Redis that dies and comes back (empty) mid-call or before the
call. The server gets a redis-server of its own (never the machine's), with short leases
so that what takes minutes in production takes seconds here."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from django.conf import settings
from django_tenants.utils import schema_context
from twilio.request_validator import RequestValidator

from standins.caller import CallRecording, SimulatedCall, Utterance
from telephony.models import Call
from tests.conftest import OwnRedis, running_redis, start_uvicorn, wait_for
from tests.telephony.test_live_call import _caller, claude, line  # noqa: F401  (fixtures, used by name)

ADMISSION_LEASE, LIVE_LEASE, RENEW_EVERY = 2.0, 4.0, 1.0
PREFIX = "nixflex-test:live-slots"  # on the throwaway Redis: nobody else's keys there
GREETING = "Thanks for calling Smile Dental Croydon!"
REPLY = "Of course. What day would suit you?"


@pytest.fixture
def clinic(line: dict[str, Any]) -> dict[str, Any]:  # noqa: F811  (test_live_call's fixture)
    """Alice's clinic: a customer, an agent, an imported number (test_live_call's `line`)."""
    return line


@pytest.fixture
def scripted_claude(claude: Any) -> Any:  # noqa: F811  (test_live_call's fixture)
    """The Anthropic stand-in, scripted as in test_live_call."""
    return claude


@pytest.fixture(scope="module")
def throwaway_redis() -> Iterator[OwnRedis]:
    with running_redis() as server:
        yield server


@pytest.fixture(scope="module")
def slot_server(providers: Any, throwaway_redis: OwnRedis) -> Iterator[str]:
    """uvicorn serving the app with its Redis (leases, stream tokens, broker) on the
    throwaway server, and short leases renewed every second."""
    env = {
        "REDIS_URL": throwaway_redis.url,
        "CALL_LEASE_PREFIX": PREFIX,
        "CALL_ADMISSION_LEASE_SECONDS": str(ADMISSION_LEASE),
        "CALL_LIVE_LEASE_SECONDS": str(LIVE_LEASE),
        "CALL_LEASE_RENEW_SECONDS": str(RENEW_EVERY),
    }
    log_path = Path(throwaway_redis.dir) / "server.log"  # there until the module's tests end
    with start_uvicorn(env, log_path) as (_, url):
        yield url


@pytest.fixture
def store(throwaway_redis: OwnRedis) -> OwnRedis:
    throwaway_redis.start()  # running at the start of every test, whatever the last one did
    return throwaway_redis


def _lease(store: OwnRedis, call_id: str) -> float | None:
    """The call's lease expiry in the platform pool, if it holds a live one."""
    try:
        expiry = store.client().zscore(f"{PREFIX}:platform", call_id)
    except redis.RedisError:
        return None
    return expiry if expiry is not None and expiry > time.time() else None


def _health(server: str) -> dict[str, Any]:
    return requests.get(f"{server}/health", timeout=5).json()


def _run_call(
    server: str,
    providers: Any,
    clinic: dict[str, Any],
    script: list[Utterance],
    during: Callable[[SimulatedCall], Awaitable[None]],
) -> CallRecording:
    """One simulated call, with `during` running alongside it (it sees the call's progress)."""
    call = SimulatedCall(
        server_url=server,
        public_base_url=settings.PUBLIC_BASE_URL,
        twilio_url=providers["twilio"].base_url,
        account_sid=clinic["sid"],
        auth_token=clinic["token"],
        from_number=_caller(),
        to_number=clinic["e164"],
        script=script,
        max_seconds=60,
    )

    async def both() -> CallRecording:
        recording, _ = await asyncio.gather(call.run(), during(call))
        return recording

    return asyncio.run(both())


async def _until(predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.05)
    return value


def _completed(clinic: dict[str, Any], call_id: str) -> Call:
    with schema_context(clinic["persona"].account.schema_name):
        return wait_for(lambda: Call.objects.filter(id=call_id, status=Call.COMPLETED).first(), timeout=30)


def _ring_without_streaming(server: str, clinic: dict[str, Any]) -> str:
    """A correctly signed voice webhook for a call that never opens its media stream."""
    params = {
        "CallSid": f"CA{uuid.uuid4().hex}",
        "AccountSid": clinic["sid"],
        "From": _caller(),
        "To": clinic["e164"],
        "CallStatus": "ringing",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
    }
    signature = RequestValidator(clinic["token"]).compute_signature(f"{settings.PUBLIC_BASE_URL}/twilio/voice", params)
    response = requests.post(f"{server}/twilio/voice", data=params, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 200 and "<Connect>" in response.text, response.text
    return response.text.split('name="call_id" value="')[1].split('"')[0]


def test_a_live_call_renews_its_slot_while_a_call_that_never_streams_loses_its_own(
    clinic: dict[str, Any], scripted_claude: Any, slot_server: str, providers: Any, store: OwnRedis
) -> None:
    ghost = _ring_without_streaming(slot_server, clinic)
    assert _lease(store, ghost) is not None
    seen: dict[str, Any] = {}

    async def during(call: SimulatedCall) -> None:
        await _until(lambda: len(call.rec.agent_texts) >= 2)  # the greeting and the first reply
        seen["health"] = await asyncio.to_thread(_health, slot_server)
        first = await _until(lambda: _lease(store, call.rec.call_id))
        # Past the admission lease and the live lease: still held, pushed forward each second.
        await asyncio.sleep(LIVE_LEASE + 0.5)
        seen["later"], seen["checked_at"] = _lease(store, call.rec.call_id), time.time()
        seen["first"], seen["ghost"] = first, _lease(store, ghost)

    rec = _run_call(
        slot_server,
        providers,
        clinic,
        [Utterance("I'd like to book a cleaning"), Utterance("Thanks, goodbye", pause_s=LIVE_LEASE + 2)],
        during,
    )
    assert rec.agent_texts == [GREETING, REPLY, "Goodbye!"] and rec.ended_by == "agent"
    # Looked at after the lease first seen had run out: held still, so renewed (not just long).
    assert seen["checked_at"] > seen["first"] and seen["later"] is not None
    assert seen["ghost"] is None  # the call that never streamed gave its slot up by itself
    assert seen["health"]["calls"] == {"capacity": settings.PROCESS_CALL_CAPACITY, "live": 1}
    _completed(clinic, rec.call_id)
    wait_for(lambda: _lease(store, rec.call_id) is None, timeout=10)  # given back at the end
    assert _health(slot_server)["calls"]["live"] == 0


def test_redis_restarting_mid_call_drops_no_call_and_the_slot_comes_back(
    clinic: dict[str, Any], scripted_claude: Any, slot_server: str, providers: Any, store: OwnRedis
) -> None:
    seen: dict[str, Any] = {}

    async def during(call: SimulatedCall) -> None:
        await _until(lambda: len(call.rec.agent_texts) >= 2)
        await _until(lambda: _lease(store, call.rec.call_id))
        store.stop(crash=True)  # a crash: every lease, token and queued message is gone
        await asyncio.sleep(RENEW_EVERY * 2.5)  # renewals fail meanwhile
        seen["down_while_live"] = not call.rec.ended_by
        store.start()
        # The process serving the call puts its slot (and its advertisement) back.
        seen["lease"] = await _until(lambda: _lease(store, call.rec.call_id), timeout=RENEW_EVERY * 4)
        seen["advertised"] = store.client().zcard(f"{PREFIX}:processes")

    rec = _run_call(
        slot_server,
        providers,
        clinic,
        [Utterance("I'd like to book a cleaning"), Utterance("Thanks, goodbye", pause_s=8)],
        during,
    )
    assert seen["down_while_live"] and seen["lease"] and seen["advertised"] == 1
    assert rec.agent_texts == [GREETING, REPLY, "Goodbye!"] and rec.ended_by == "agent" and not rec.error
    call = _completed(clinic, rec.call_id)
    assert call.end_reason == "agent_ended"
    assert [e["role"] for e in call.transcript] == ["agent", "caller", "agent", "caller", "agent"]
    wait_for(lambda: _lease(store, rec.call_id) is None, timeout=10)


def test_a_call_arriving_while_redis_is_down_is_answered(
    clinic: dict[str, Any], scripted_claude: Any, slot_server: str, providers: Any, store: OwnRedis
) -> None:
    store.stop(crash=True)
    seen: dict[str, Any] = {}

    async def during(call: SimulatedCall) -> None:
        await _until(lambda: len(call.rec.agent_texts) >= 2)
        store.start()
        # Admitted on the process's own ledger; its slot is taken in Redis once it is back.
        seen["lease"] = await _until(lambda: _lease(store, call.rec.call_id), timeout=RENEW_EVERY * 4)

    rec = _run_call(
        slot_server,
        providers,
        clinic,
        [Utterance("I'd like to book a cleaning"), Utterance("Thanks, goodbye", pause_s=5)],
        during,
    )
    assert rec.twiml and not rec.refused  # not a 500, not "lines busy"
    assert rec.agent_texts == [GREETING, REPLY, "Goodbye!"] and rec.ended_by == "agent"
    assert seen["lease"]
    assert _completed(clinic, rec.call_id).end_reason == "agent_ended"
    wait_for(lambda: _lease(store, rec.call_id) is None, timeout=10)
