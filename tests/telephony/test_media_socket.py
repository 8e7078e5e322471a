"""The media WebSocket itself, through the real server (uvicorn as the project runs it):
an upgrade on a reused keep-alive connection lasts the whole call, a socket that never
sends `start` is closed, and an upgrade without Twilio's signature is refused."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import time
from typing import Any

import aiohttp
import pytest
from django.conf import settings
from django_tenants.utils import schema_context

from standins.caller import CallRecording, SimulatedCall, Utterance
from telephony.models import Call
from tests.telephony import test_live_call
from tests.telephony.test_live_call import _caller, _saved

line, claude = test_live_call.line, test_live_call.claude  # the same fixtures

HOLD_S = 11.0  # longer than twice uvicorn's 5 s keep-alive timeout


def _call(server: str, providers: Any, line: dict[str, Any], script: list[Utterance], **kwargs: Any) -> SimulatedCall:
    return SimulatedCall(
        server_url=server,
        public_base_url=settings.PUBLIC_BASE_URL,
        twilio_url=providers["twilio"].base_url,
        account_sid=line["sid"],
        auth_token=line["token"],
        from_number=_caller(),
        to_number=line["e164"],
        script=script,
        **kwargs,
    )


def _client_text_frame(payload: bytes) -> bytes:
    """One masked text frame, as a WebSocket client sends it."""
    mask = os.urandom(4)
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def _upgrade_after_a_request(server: str, hold_s: float, pipelined: bool) -> tuple[bytes, bytes, bytes]:
    """A plain request, then a WebSocket upgrade on the same connection: sent the moment the
    response has arrived (as a proxy with a warm connection does), or pipelined with it.
    Then the socket is held open and used. Returns the first response's body, the upgrade's
    status line, and the echo (or what the server sent before closing)."""
    host, port = server.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    request = b"GET /health HTTP/1.1\r\nHost: api.localhost\r\n\r\n"
    upgrade_request = (
        b"GET /ws/health HTTP/1.1\r\nHost: api.localhost\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: "
        + base64.b64encode(os.urandom(16))
        + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    writer.write(request + upgrade_request if pipelined else request)
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        match = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
        assert match, head
        body = await asyncio.wait_for(reader.readexactly(int(match.group(1))), 5)
        if not pipelined:
            writer.write(upgrade_request)
        upgrade = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        await asyncio.sleep(hold_s)
        writer.write(_client_text_frame(b'{"ping": 1}'))
        header = await asyncio.wait_for(reader.readexactly(2), 5)
        echo = await asyncio.wait_for(reader.readexactly(header[1] & 0x7F), 5)
        return body, upgrade.split(b"\r\n")[0], echo
    except asyncio.IncompleteReadError as exc:
        return b"", b"", b"closed after " + exc.partial
    finally:
        writer.close()


def test_media_stream_on_a_reused_keep_alive_connection_lasts_the_whole_call(
    line, claude, asgi_server, providers
) -> None:
    # A proxy in front of the server sends the voice webhook and then the media stream's
    # upgrade on one keep-alive connection; the call lasts well past the keep-alive timeout.
    call = _call(
        asgi_server,
        providers,
        line,
        [Utterance("I'd like to book a cleaning"), Utterance("Thanks, goodbye", pause_s=HOLD_S)],
        reuse_connection=True,
    )

    async def all_three() -> tuple[CallRecording, tuple[bytes, bytes, bytes], tuple[bytes, bytes, bytes]]:
        return await asyncio.gather(
            call.run(),
            _upgrade_after_a_request(asgi_server, HOLD_S, pipelined=False),
            _upgrade_after_a_request(asgi_server, HOLD_S, pipelined=True),
        )

    rec, *raw = asyncio.run(all_three())

    assert rec.stream_reused_connection  # the webhook's connection
    assert rec.error == "", rec.error
    assert rec.agent_texts == [
        "Thanks for calling Smile Dental Croydon!",
        "Of course. What day would suit you?",
        "Goodbye!",
    ]
    assert rec.ended_by == "agent"
    assert rec.stream_opened is not None and rec.stream_closed is not None
    assert rec.stream_closed - rec.stream_opened > HOLD_S
    assert _saved(line, rec.call_id).end_reason == "agent_ended"

    # The same on a bare connection, upgraded right after a response, and pipelined: the
    # first response goes out whole before the 101, and the socket lives on.
    for body, upgrade, echo in raw:
        assert json.loads(body)["status"] == "ok"  # the whole health response, before the 101
        assert upgrade == b"HTTP/1.1 101 Switching Protocols"
        assert echo == b'{"echo": {"ping": 1}}'


def test_a_socket_that_never_sends_start_is_closed(asgi_server) -> None:
    url = asgi_server.replace("http://", "ws://") + "/media"

    async def without_start(send_media: bool) -> tuple[float, int | None]:
        started = time.monotonic()
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(url, headers={"X-Twilio-Signature": "c2lnbmF0dXJl"}) as ws,
        ):
            await ws.send_str(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))

            async def media() -> None:  # frames, but never a `start`
                while not ws.closed:
                    await ws.send_str(
                        json.dumps(
                            {
                                "event": "media",
                                "streamSid": "MZ" + "0" * 32,
                                "media": {"track": "inbound", "payload": "//8="},
                            }
                        )
                    )
                    await asyncio.sleep(0.02)

            sender = asyncio.create_task(media()) if send_media else None
            try:
                message = await ws.receive(timeout=15)
            finally:
                if sender is not None:
                    sender.cancel()
            assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), message
            return time.monotonic() - started, ws.close_code

    async def both() -> tuple[tuple[float, int | None], tuple[float, int | None]]:
        return await asyncio.gather(without_start(False), without_start(True))

    for elapsed, code in asyncio.run(both()):
        assert elapsed < 10 and code == 4403, (elapsed, code)


def test_an_upgrade_without_twilio_signature_is_refused(line, claude, asgi_server, providers) -> None:
    call = _call(asgi_server, providers, line, [Utterance("hello")], sign_upgrade=False, max_seconds=5)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        asyncio.run(call.run())
    assert refused.value.status == 403
    with schema_context(line["persona"].account.schema_name):
        assert Call.objects.get(id=call.rec.call_id).answered_at is None
