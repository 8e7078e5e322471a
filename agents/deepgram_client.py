"""The one module that talks to Deepgram (through `deepgram-sdk`): live speech-to-text and
streaming text-to-speech, both mu-law 8 kHz so Twilio's audio is only forwarded.

One socket per direction per call, opened at the start and kept for the whole call;
a dropped socket is reopened (the engine decides what to say meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import websockets.frames
from deepgram import AsyncDeepgramClient
from deepgram.environment import DeepgramClientEnvironment

# Imported here, at process start, not lazily on the first call: a lazy import in the
# middle of a call blocks the event loop, and every call's audio with it.
from deepgram.listen.v1 import socket_client as _listen_socket  # noqa: F401
from deepgram.speak.v1 import socket_client as _speak_socket  # noqa: F401
from deepgram.speak.v1.types.speak_v1text import SpeakV1Text
from django.conf import settings

from agents.voices import DEFAULT_VOICE_ID

logger = logging.getLogger(__name__)


class _MaskingKeys:
    """Masking keys for the frames this process sends over WebSockets (to Deepgram: 50
    caller frames a second per call). websockets draws each key from os.urandom, a system
    call that cost ~10% of the event loop at 50 calls; a generator seeded from it does the
    same job here. Masking (RFC 6455 10.3) keeps a hostile script in a browser from
    choosing the bytes a proxy sees; our frames are caller audio sent by the server over
    TLS, so the keys' unpredictability guards nothing there."""

    def __init__(self) -> None:
        self._random = random.Random(os.urandom(32))

    def token_bytes(self, count: int) -> bytes:
        return self._random.randbytes(count)


websockets.frames.secrets = _MaskingKeys()  # type: ignore[assignment]

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncDeepgramClient] = weakref.WeakKeyDictionary()


def client() -> AsyncDeepgramClient:
    """One SDK client per event loop (it holds an HTTP pool bound to the loop)."""
    loop = asyncio.get_running_loop()
    existing = _clients.get(loop)
    if existing is None:
        base = settings.DEEPGRAM_BASE_URL
        ws = base.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        environment = DeepgramClientEnvironment(base=base, production=ws, agent=ws, agent_rest=base)
        existing = AsyncDeepgramClient(api_key=settings.DEEPGRAM_API_KEY, environment=environment)
        # The SDK rebuilds its request headers for every socket it opens, reading its own
        # package metadata from disk each time (~2 ms on the event loop, twice per call):
        # they never change, so build them once.
        wrapper = existing._client_wrapper
        headers = wrapper.get_headers()
        wrapper.get_headers = lambda: dict(headers)  # type: ignore[method-assign]
        _clients[loop] = existing
    return existing


async def warm(voice: str = DEFAULT_VOICE_ID, timeout: float = 5.0) -> None:
    """Create this loop's client and open one TTS socket the way a call does (handshake,
    a Flush, Close), so the first call after a start does not pay for the SDK's first-use
    paths. A failure here only costs the warm-up."""
    sdk = client()
    _ = sdk.listen.v1, sdk.speak.v1  # the SDK imports these on first use
    flushed = asyncio.Event()
    tts = TextToSpeech(voice, on_audio=lambda audio: None, on_flushed=flushed.set, max_reconnects=0)
    reader = asyncio.create_task(tts.run(), name="deepgram-warm-up")
    connected = asyncio.create_task(tts.wait_connected(timeout))
    try:
        # The reader ends at once if the socket cannot be opened (no reconnects here).
        await asyncio.wait({connected, reader}, return_when=asyncio.FIRST_COMPLETED)
        if not (connected.done() and connected.result()):
            logger.warning("deepgram warm-up: no TTS socket")
        elif await tts.flush():
            with contextlib.suppress(TimeoutError):  # an empty Flush need not be answered
                await asyncio.wait_for(flushed.wait(), 1.0)
    finally:
        await tts.close()
        for task in (connected, reader):
            task.cancel()
        await asyncio.gather(connected, reader, return_exceptions=True)


@dataclass(frozen=True)
class SttOptions:
    language: str = "en"
    endpointing_ms: int = 300
    utterance_end_ms: int = 1000
    tag: str = ""


@dataclass(frozen=True)
class Transcript:
    text: str
    is_final: bool
    speech_final: bool
    start: float
    end: float


class SpeechStarted:
    pass


class UtteranceEnd:
    pass


SttEvent = Transcript | SpeechStarted | UtteranceEnd


class _ProviderSocket:
    """One Deepgram WebSocket for the whole call: opened at start, reopened if it drops
    (with a short backoff), given up after `max_reconnects` failures in a row, when
    `on_down` tells the engine."""

    kind = "socket"

    def __init__(self, on_down: Callable[[], Awaitable[None]] | None, max_reconnects: int) -> None:
        self._on_down = on_down
        self._max_reconnects = max_reconnects
        self._socket: Any = None
        self._connected = asyncio.Event()
        self._closing = False
        self.reconnects = 0

    def _open(self) -> Any:
        raise NotImplementedError

    async def _handle(self, message: Any) -> None:
        raise NotImplementedError

    async def _close_message(self, socket: Any) -> None:
        raise NotImplementedError

    async def wait_connected(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
            return True
        except TimeoutError:
            return False

    async def close(self) -> None:
        self._closing = True
        socket, self._socket = self._socket, None
        if socket is not None:
            with contextlib.suppress(Exception):
                await self._close_message(socket)

    async def _send(self, action: Callable[[Any], Awaitable[None]], wait: float = 0.0) -> bool:
        """Run `action(socket)`; False if there is no socket (or it just broke)."""
        if self._socket is None and not (wait and await self.wait_connected(wait)):
            return False
        try:
            await action(self._socket)
            return True
        except Exception:  # the reader notices the drop and reconnects
            self._socket = None
            return False

    async def run(self) -> None:
        failures = 0
        while not self._closing:
            try:
                async with self._open() as socket:
                    self._socket = socket
                    self._connected.set()
                    failures = 0
                    async for message in socket:
                        await self._handle(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("deepgram %s socket failed: %s", self.kind, type(exc).__name__)
            self._socket = None
            self._connected.clear()
            if self._closing:
                return
            failures += 1
            self.reconnects += 1
            if failures > self._max_reconnects:
                if self._on_down is not None:
                    await self._on_down()
                return
            await asyncio.sleep(min(0.1 * 2**failures, 1.0))


class SpeechToText(_ProviderSocket):
    """Deepgram live STT for one call. `send()` forwards Twilio's frames as they are."""

    kind = "stt"

    def __init__(
        self,
        options: SttOptions,
        on_event: Callable[[SttEvent], Awaitable[None]],
        on_down: Callable[[], Awaitable[None]] | None = None,
        max_reconnects: int = 3,
    ) -> None:
        super().__init__(on_down, max_reconnects)
        self._options = options
        self._on_event = on_event

    async def send(self, audio: bytes) -> None:
        # While reconnecting, this audio is lost, as on a real line glitch. 50 times a
        # second per call: the socket is used directly, not through `_send`.
        socket = self._socket
        if socket is None:
            return
        try:
            await socket.send_media(audio)
        except Exception:  # the reader notices the drop and reconnects
            self._socket = None

    def _open(self) -> Any:
        return client().listen.v1.connect(
            model="nova-3",
            encoding="mulaw",
            sample_rate=8000,
            channels=1,
            language=self._options.language,
            interim_results=True,
            endpointing=self._options.endpointing_ms,
            utterance_end_ms=self._options.utterance_end_ms,
            vad_events=True,
            smart_format=True,
            tag=self._options.tag or None,
        )

    async def _close_message(self, socket: Any) -> None:
        await socket.send_close_stream()

    async def _handle(self, message: Any) -> None:
        kind = getattr(message, "type", None)
        if kind == "Results":
            alternatives = message.channel.alternatives
            text = alternatives[0].transcript if alternatives else ""
            await self._on_event(
                Transcript(
                    text=text,
                    is_final=bool(message.is_final),
                    speech_final=bool(message.speech_final),
                    start=message.start,
                    end=message.start + message.duration,
                )
            )
        elif kind == "SpeechStarted":
            await self._on_event(SpeechStarted())
        elif kind == "UtteranceEnd":
            await self._on_event(UtteranceEnd())


class TextToSpeech(_ProviderSocket):
    """Deepgram streaming TTS for one call: Speak + Flush in, raw mu-law out."""

    kind = "tts"

    def __init__(
        self,
        voice: str,
        on_audio: Callable[[bytes], None],
        on_flushed: Callable[[], None],
        on_cleared: Callable[[], None] | None = None,
        on_down: Callable[[], Awaitable[None]] | None = None,
        max_reconnects: int = 3,
    ) -> None:
        super().__init__(on_down, max_reconnects)
        self._voice = voice
        self._on_audio = on_audio
        self._on_flushed = on_flushed
        self._on_cleared = on_cleared

    async def speak(self, text: str, flush: bool) -> bool:
        async def action(socket: Any) -> None:
            await socket.send_text(SpeakV1Text(type="Speak", text=text))
            if flush:
                await socket.send_flush()

        return await self._send(action, wait=2.0)

    async def flush(self) -> bool:
        return await self._send(lambda socket: socket.send_flush(), wait=2.0)

    async def clear(self) -> None:
        await self._send(lambda socket: socket.send_clear())

    def _open(self) -> Any:
        return client().speak.v1.connect(model=self._voice, encoding="mulaw", sample_rate=8000)

    async def _close_message(self, socket: Any) -> None:
        await socket.send_close()

    async def _handle(self, message: Any) -> None:
        # Branch on .type: the SDK parses Cleared into the same shape as Flushed.
        if isinstance(message, bytes):
            self._on_audio(message)
            return
        kind = getattr(message, "type", None)
        if kind == "Flushed":
            self._on_flushed()
        elif kind == "Cleared" and self._on_cleared is not None:
            self._on_cleared()
        elif kind == "Warning":
            logger.warning("deepgram tts warning: %s", getattr(message, "description", ""))
