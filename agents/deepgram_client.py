"""The one module that talks to Deepgram (through `deepgram-sdk`): live speech-to-text and
streaming text-to-speech, both mu-law 8 kHz so Twilio's audio is only forwarded.

One socket per direction per call, opened at the start and kept for the whole call;
a dropped socket is reopened (the engine decides what to say meanwhile).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from deepgram import AsyncDeepgramClient
from deepgram.environment import DeepgramClientEnvironment
# Imported here, at process start, not lazily on the first call: a lazy import in the
# middle of a call blocks the event loop, and every call's audio with it.
from deepgram.listen.v1 import socket_client as _listen_socket  # noqa: F401
from deepgram.speak.v1 import socket_client as _speak_socket  # noqa: F401
from deepgram.speak.v1.types.speak_v1text import SpeakV1Text
from django.conf import settings

logger = logging.getLogger(__name__)

_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncDeepgramClient]" = weakref.WeakKeyDictionary()


def client() -> AsyncDeepgramClient:
    """One SDK client per event loop (it holds an HTTP pool bound to the loop)."""
    loop = asyncio.get_running_loop()
    existing = _clients.get(loop)
    if existing is None:
        base = settings.DEEPGRAM_BASE_URL
        ws = base.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        environment = DeepgramClientEnvironment(base=base, production=ws, agent=ws, agent_rest=base)
        existing = AsyncDeepgramClient(api_key=settings.DEEPGRAM_API_KEY, environment=environment)
        _clients[loop] = existing
    return existing


class ProviderDown(Exception):
    """A provider socket could not be (re)opened."""


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


class SpeechToText:
    """Deepgram live STT for one call. `send()` forwards Twilio's frames as they are."""

    def __init__(self, options: SttOptions, on_event: Callable[[SttEvent], Awaitable[None]],
                 on_down: Callable[[], Awaitable[None]] | None = None, max_reconnects: int = 3) -> None:
        self._options = options
        self._on_event = on_event
        self._on_down = on_down
        self._max_reconnects = max_reconnects
        self._socket: Any = None
        self._connected = asyncio.Event()
        self._closing = False
        self.reconnects = 0

    async def send(self, audio: bytes) -> None:
        socket = self._socket
        if socket is None:
            return  # reconnecting: this audio is lost, as on a real line glitch
        try:
            await socket.send_media(audio)
        except Exception:  # the reader notices the drop and reconnects
            self._socket = None

    async def finalize(self) -> None:
        if self._socket is not None:
            try:
                await self._socket.send_finalize()
            except Exception:
                pass

    async def close(self) -> None:
        self._closing = True
        socket, self._socket = self._socket, None
        if socket is not None:
            try:
                await socket.send_close_stream()
            except Exception:
                pass

    async def wait_connected(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def run(self) -> None:
        """Open the socket, read events, reopen it when it drops; until close()."""
        failures = 0
        while not self._closing:
            try:
                async with client().listen.v1.connect(
                    model="nova-3", encoding="mulaw", sample_rate=8000, channels=1, language=self._options.language,
                    interim_results=True, endpointing=self._options.endpointing_ms,
                    utterance_end_ms=self._options.utterance_end_ms, vad_events=True, smart_format=True,
                    tag=self._options.tag or None,
                ) as socket:
                    self._socket = socket
                    self._connected.set()
                    failures = 0
                    async for message in socket:
                        await self._dispatch(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("deepgram stt socket failed: %s", type(exc).__name__)
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
            await asyncio.sleep(min(0.1 * 2 ** failures, 1.0))

    async def _dispatch(self, message: Any) -> None:
        kind = getattr(message, "type", None)
        if kind == "Results":
            alternatives = message.channel.alternatives
            text = alternatives[0].transcript if alternatives else ""
            await self._on_event(Transcript(text=text, is_final=bool(message.is_final),
                                            speech_final=bool(message.speech_final), start=message.start,
                                            end=message.start + message.duration))
        elif kind == "SpeechStarted":
            await self._on_event(SpeechStarted())
        elif kind == "UtteranceEnd":
            await self._on_event(UtteranceEnd())


class TextToSpeech:
    """Deepgram streaming TTS for one call: Speak + Flush in, raw mu-law out."""

    def __init__(self, voice: str, on_audio: Callable[[bytes], None], on_flushed: Callable[[], None],
                 on_cleared: Callable[[], None] | None = None,
                 on_down: Callable[[], Awaitable[None]] | None = None, max_reconnects: int = 3) -> None:
        self._voice = voice
        self._on_audio = on_audio
        self._on_flushed = on_flushed
        self._on_cleared = on_cleared
        self._on_down = on_down
        self._max_reconnects = max_reconnects
        self._socket: Any = None
        self._connected = asyncio.Event()
        self._closing = False
        self.reconnects = 0

    async def wait_connected(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def speak(self, text: str, flush: bool) -> bool:
        if self._socket is None and not await self.wait_connected(2.0):
            return False
        try:
            await self._socket.send_text(SpeakV1Text(type="Speak", text=text))
            if flush:
                await self._socket.send_flush()
            return True
        except Exception:
            self._socket = None
            return False

    async def flush(self) -> bool:
        if self._socket is None and not await self.wait_connected(2.0):
            return False
        try:
            await self._socket.send_flush()
            return True
        except Exception:
            self._socket = None
            return False

    async def clear(self) -> None:
        if self._socket is not None:
            try:
                await self._socket.send_clear()
            except Exception:
                self._socket = None

    async def close(self) -> None:
        self._closing = True
        socket, self._socket = self._socket, None
        if socket is not None:
            try:
                await socket.send_close()
            except Exception:
                pass

    async def run(self) -> None:
        failures = 0
        while not self._closing:
            try:
                async with client().speak.v1.connect(model=self._voice, encoding="mulaw", sample_rate=8000) as socket:
                    self._socket = socket
                    self._connected.set()
                    failures = 0
                    async for message in socket:
                        if isinstance(message, bytes):
                            self._on_audio(message)
                        elif getattr(message, "type", None) == "Flushed":
                            self._on_flushed()
                        elif getattr(message, "type", None) == "Cleared" and self._on_cleared is not None:
                            self._on_cleared()
                        elif getattr(message, "type", None) == "Warning":
                            logger.warning("deepgram tts warning: %s", getattr(message, "description", ""))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("deepgram tts socket failed: %s", type(exc).__name__)
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
            await asyncio.sleep(min(0.1 * 2 ** failures, 1.0))


