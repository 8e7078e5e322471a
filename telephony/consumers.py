"""Twilio Media Streams: one consumer per live call.

django-tenants' middleware does not run for WebSockets: the tenant comes from the signed
stream token in the `start` message, and every database call runs in that schema. Per
frame, the consumer only base64-decodes and forwards: no database, no channel layer.

However the call ends (Twilio's `stop`, the socket closing, the engine giving up, or an
exception anywhere), one end path runs, once: the engine stops and closes Deepgram's
sockets, the media stream is closed, and the transcript is saved, the slot released and
the summary queued (`live_calls.close_live_call`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from agents import anthropic_client, deepgram_client  # noqa: F401  (warm the SDK imports at load)
from agents.engine.conversation import CallHooks, Conversation, EndReason, Outcome
from telephony import stream_tokens
from telephony.services import live_calls

logger = logging.getLogger(__name__)

NORMAL_CLOSURE = 1000
INTERNAL_ERROR = 1011
POLICY_VIOLATION = 4403


class MediaStreamConsumer(AsyncWebsocketConsumer):
    # The media path needs no channel layer: one call, one socket, one process.
    channel_layer_alias = "no-channel-layer"
    conversation: Conversation | None = None
    stream_sid: str = ""
    grant: stream_tokens.StreamGrant | None = None  # set once the stream is admitted: the end path closes its call
    upgrade_signature: str = ""
    _start_deadline: asyncio.Task[None] | None = None
    _end_path: asyncio.Task[None] | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # Channels' loop (await_many_dispatch) creates an asyncio task per message to wait on
        # the channel layer too; with no channel layer, a plain loop does the same work for
        # 50 messages a second per call at a fraction of the cost.
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass
        except Exception:
            # A bug or malformed input must not skip the end path (transcript, slot, sockets).
            logger.exception("media stream %s failed", self.stream_sid or "(before start)")
            await self._end(EndReason.STREAM_ERROR, close_code=INTERNAL_ERROR)

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels' dispatch closes stale DB connections (a thread hop) on every message;
        # this consumer touches the database only at start and end, through
        # database_sync_to_async, which does that itself.
        handler = getattr(self, message["type"].replace(".", "_"), None)
        if handler is None:
            raise ValueError(f"no handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        headers = dict(self.scope.get("headers") or [])
        self.upgrade_signature = headers.get(b"x-twilio-signature", b"").decode("latin-1")
        if not self.upgrade_signature:
            # Twilio signs every upgrade; it is checked once `start` names the call (and so
            # the number whose auth token signed it).
            logger.warning("media stream refused: the upgrade is not signed")
            await self.close()  # before accepting: a 403
            return
        await self.accept()
        self._start_deadline = asyncio.create_task(self._close_unless_started())

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None:
            return
        audio = _caller_audio(text_data)
        if audio is not None:
            if self.conversation is not None:
                await self.conversation.on_caller_audio(audio)
            return
        message = json.loads(text_data)
        event = message.get("event")
        if event == "media":
            if self.conversation is not None and message["media"].get("track", "inbound") == "inbound":
                await self.conversation.on_caller_audio(base64.b64decode(message["media"]["payload"]))
        elif event == "mark":
            if self.conversation is not None:
                await self.conversation.on_mark(message.get("mark", {}).get("name", ""))
        elif event == "start":
            await self._start(message)
        elif event == "dtmf":
            if self.conversation is not None:
                await self.conversation.on_dtmf(str(message.get("dtmf", {}).get("digit", "")))
        elif event == "stop":
            await self._end(EndReason.CALLER_HUNG_UP, close_code=NORMAL_CLOSURE)

    async def disconnect(self, code: int) -> None:
        await self._end(EndReason.STREAM_CLOSED)

    async def _close_unless_started(self) -> None:
        """A socket that never sends `start` (Twilio sends it at once) is not kept open."""
        await asyncio.sleep(settings.MEDIA_STREAM_START_TIMEOUT_SECONDS)
        logger.warning("media stream closed: no start within %s s", settings.MEDIA_STREAM_START_TIMEOUT_SECONDS)
        await self.close(code=POLICY_VIOLATION)

    async def _start(self, message: dict[str, Any]) -> None:
        if self._start_deadline is not None:
            self._start_deadline.cancel()
        if self.grant is not None or self._end_path is not None:
            return  # one `start` per stream
        start = message.get("start") or {}
        params = start.get("customParameters") or {}
        self.stream_sid = message.get("streamSid") or start.get("streamSid") or ""
        try:
            grant = stream_tokens.verify(str(params.get("token", "")), call_id=str(params.get("call_id", "")))
            if not await stream_tokens.consume(grant):
                raise stream_tokens.InvalidStreamToken("token already used")
            self.grant = grant  # from here on, whatever fails, the end path closes this call
            live = await database_sync_to_async(live_calls.open_live_call)(
                schema_name=grant.schema_name, call_id=grant.call_id, signature=self.upgrade_signature
            )
        except (stream_tokens.InvalidStreamToken, live_calls.StreamRefused) as exc:
            self.grant = None  # a refused stream is not this socket's call to end
            logger.warning("media stream refused: %s", exc)
            await self.close(code=POLICY_VIOLATION)
            return
        control = live.control
        hooks = CallHooks(
            hang_up=lambda: asyncio.to_thread(control.hang_up),
            transfer=lambda number: asyncio.to_thread(control.transfer, number),
            say_and_hang_up=lambda text: asyncio.to_thread(control.say_and_hang_up, text),
            abort=self._abort,
        )
        self.conversation = Conversation(live.setup, sink=self, hooks=hooks)
        await self.conversation.start()

    # --- the end path --------------------------------------------------------------------
    async def _end(self, reason: EndReason, close_code: int | None = None) -> None:
        """Run the end path (once, whoever asks first) and wait for it."""
        if self._end_path is None:
            self._end_path = asyncio.create_task(self._run_end_path(reason, close_code), name="end-path")
        # Shielded: this consumer being cancelled must not cut the end path short.
        await asyncio.shield(self._end_path)

    def _abort(self, reason: EndReason, error: BaseException | None) -> None:
        """The engine cannot go on: end the call from here (called from the engine's tasks,
        which the end path stops, so it runs in a task of its own)."""
        if self._end_path is not None:
            return
        if isinstance(error, OSError):  # sending to Twilio failed: the socket is already gone
            reason = EndReason.STREAM_CLOSED
        code = NORMAL_CLOSURE if error is None else INTERNAL_ERROR
        self._end_path = asyncio.create_task(self._run_end_path(reason, code), name="end-path")

    async def _run_end_path(self, reason: EndReason, close_code: int | None) -> None:
        if self._start_deadline is not None:
            self._start_deadline.cancel()
        conversation, self.conversation = self.conversation, None  # frames still arriving go nowhere
        outcome = Outcome(end_reason=reason)
        if conversation is not None:
            try:
                outcome = await conversation.finish(reason)
            except Exception:
                logger.exception("call %s: the engine did not stop cleanly", conversation.setup.call_id)
        if close_code is not None:
            # Closing the stream ends the call at Twilio (nothing follows <Connect>).
            with contextlib.suppress(Exception):  # the socket may be gone already
                await self.close(code=close_code)
        if self.grant is not None:
            try:
                await database_sync_to_async(live_calls.close_live_call)(
                    schema_name=self.grant.schema_name, call_id=self.grant.call_id, outcome=outcome
                )
            except Exception:
                logger.exception("call %s: could not save how it ended", self.grant.call_id)

    # --- MediaSink: audio and control back to Twilio ----------------------------------
    async def send_media(self, frame: bytes) -> None:
        # Straight to the ASGI server (50 frames a second per call): Channels' send()
        # only wraps this message.
        payload = base64.b64encode(frame).decode()
        text = f'{{"event":"media","streamSid":"{self.stream_sid}","media":{{"payload":"{payload}"}}}}'
        await self.base_send({"type": "websocket.send", "text": text})

    async def send_mark(self, name: str) -> None:
        await self.base_send(
            {
                "type": "websocket.send",
                "text": json.dumps({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}}),
            }
        )

    async def send_clear(self) -> None:
        await self.send(text_data=json.dumps({"event": "clear", "streamSid": self.stream_sid}))


def _caller_audio(text: str) -> bytes | None:
    """The caller's audio in a `media` message, found without parsing its JSON: 50 of
    these a second per call. None for anything else (or any other layout of a media
    message), which is then parsed in full."""
    if not text.startswith('{"event":"media",'):
        return None
    start = text.find('"payload":"') + 11
    end = text.find('"', start)
    track = text.find('"track":"')
    if start < 11 or end < 0 or "\\" in text or (track >= 0 and not text.startswith('inbound"', track + 9)):
        return None
    return base64.b64decode(text[start:end])
