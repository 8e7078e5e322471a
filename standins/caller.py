"""A call simulator that plays Twilio for an inbound call, for tests, benchmarks and the
offline demo.

It rings the number (mints a CallSid in the Twilio stand-in), POSTs the signed voice
webhook, follows the TwiML to the media WebSocket, and then behaves like Twilio's media
stream: `connected`, `start`, a caller frame every 20 ms (silence, or speech carrying
words in the `standins.audio` codec so the Deepgram stand-in "hears" them), a playback
clock that plays the agent's audio in real time and echoes each `mark` once the audio
before it has played (all pending marks at once on `clear`), and `stop` when the call
ends. The call ends when the agent hangs up (the Twilio stand-in's call turns
`completed` or is redirected), or when the caller has said everything and hangs up.

It records what the agent said and when: each agent utterance's text (decoded from the
audio it played), per-turn latency (end of caller speech -> first agent frame), frame
pacing (inter-arrival jitter) and playback gaps.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from twilio.request_validator import RequestValidator

from standins import audio

FRAME = 0.02
SILENCE = b"\xff" * 160
SILENCE_B64 = base64.b64encode(SILENCE).decode()


@dataclass
class Utterance:
    """Something the caller says.

    when="agent_done": after the agent has finished speaking (its audio played) and
    `pause_s` of silence. when="barge_in": `pause_s` after the agent starts its next
    utterance, over it. `dtmf` sends keypad digits instead of speech.
    """

    text: str = ""
    when: str = "agent_done"
    pause_s: float = 0.4
    dtmf: str = ""


@dataclass
class AgentSpeech:
    text: str
    started: float
    ended: float | None = None
    frames: int = 0
    cleared: bool = False


@dataclass
class TurnTiming:
    caller_text: str
    speech_end: float
    first_agent_frame: float | None = None

    @property
    def latency_ms(self) -> float | None:
        return None if self.first_agent_frame is None else (self.first_agent_frame - self.speech_end) * 1000


@dataclass
class CallRecording:
    call_sid: str = ""
    call_id: str = ""
    twiml: str = ""
    refused: bool = False
    close_code: int | None = None
    agent: list[AgentSpeech] = field(default_factory=list)
    turns: list[TurnTiming] = field(default_factory=list)
    ended_by: str = ""
    frames_received: int = 0
    marks_echoed: int = 0
    clears: int = 0
    gaps: int = 0
    inter_arrival_jitter_ms: list[float] = field(default_factory=list)
    redirect_twiml: str = ""
    stream_params: dict[str, str] = field(default_factory=dict)
    t0: float = 0.0  # time.monotonic() when the call started: the times above are relative to it
    error: str = ""  # why the stream broke, if it did
    stream_opened: float | None = None  # when the media socket was accepted (seconds into the call)
    stream_closed: float | None = None  # when it closed
    # The media stream was upgraded on a connection used before (the voice webhook's).
    stream_reused_connection: bool = False

    @property
    def agent_texts(self) -> list[str]:
        return [a.text for a in self.agent if a.text]


class SimulatedCall:
    def __init__(
        self,
        *,
        server_url: str,
        public_base_url: str,
        twilio_url: str,
        account_sid: str,
        auth_token: str,
        from_number: str,
        to_number: str,
        script: list[Utterance],
        max_seconds: float = 60.0,
        hangup_grace_s: float = 1.5,
        start_extra: dict[str, Any] | None = None,
        tamper_token: bool = False,
        sign_upgrade: bool = True,
        upgrade_auth_token: str | None = None,
        reuse_connection: bool = False,
        echo_marks: bool = True,
        raw_frames: list[tuple[float, str]] | None = None,
    ) -> None:
        """`reuse_connection`: upgrade the media stream on the voice webhook's keep-alive
        connection, as a proxy in front of the server does (Twilio itself opens a new one).
        `echo_marks=False`: never confirm playback (marks are not echoed). `raw_frames`:
        (seconds after `start`, text) frames sent as they are, to inject malformed input."""
        self.server_url = server_url.rstrip("/")
        self.public_base_url = public_base_url.rstrip("/")
        self.twilio_url = twilio_url.rstrip("/")
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.from_number = from_number
        self.to_number = to_number
        self.script = list(script)
        self.max_seconds = max_seconds
        self.hangup_grace_s = hangup_grace_s
        self.tamper_token = tamper_token
        self.sign_upgrade = sign_upgrade
        self.upgrade_auth_token = upgrade_auth_token or auth_token
        self.reuse_connection = reuse_connection
        self.echo_marks = echo_marks
        self.raw_frames = sorted(raw_frames or [])
        self.rec = CallRecording()
        self.rec.t0 = self._t0 = time.monotonic()
        self.stream_params: dict[str, str] = {}
        # playback state (Twilio's buffer)
        self._playback = bytearray()
        self._pending_marks: list[tuple[int, str]] = []  # (bytes of audio before it, name)
        self._played_bytes = 0
        self._queued_bytes = 0
        self._current: AgentSpeech | None = None
        self._utterance_marks = 0
        self._current_audio = bytearray()
        self._last_frame_at: float | None = None
        self._caller_frames: list[bytes] = []
        self._agent_done = asyncio.Event()
        self._agent_spoke_since_caller = True  # the greeting counts for the first utterance
        self._agent_started = asyncio.Event()
        self._closed = asyncio.Event()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._session: aiohttp.ClientSession | None = None
        self._stream_sid = "MZ" + secrets.token_hex(16)
        self._stream_path: str | None = None

    def now(self) -> float:
        return time.monotonic() - self._t0

    # --- the call ----------------------------------------------------------------------
    async def run(self) -> CallRecording:
        async with aiohttp.ClientSession(trace_configs=[self._connection_reuse_trace()]) as session:
            self._session = session
            self.rec.call_sid = await self._ring(session)
            twiml = await self._voice_webhook(session)
            self.rec.twiml = twiml
            stream = _parse_stream(twiml)
            if stream is None:
                self.rec.refused = True
                self.rec.ended_by = "twiml"
                return self.rec
            url, params = stream
            self.stream_params = self.rec.stream_params = params
            self.rec.call_id = params.get("call_id", "")
            await self._stream(session, url, params)
        return self.rec

    def _connection_reuse_trace(self) -> aiohttp.TraceConfig:
        async def request_start(session: Any, context: Any, params: aiohttp.TraceRequestStartParams) -> None:
            context.path = params.url.path

        async def reused(session: Any, context: Any, params: Any) -> None:
            if getattr(context, "path", None) == self._stream_path:
                self.rec.stream_reused_connection = True

        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(request_start)
        trace.on_connection_reuseconn.append(reused)
        return trace

    async def _ring(self, session: aiohttp.ClientSession) -> str:
        async with session.post(
            f"{self.twilio_url}/_standin/inbound_calls",
            json={"account_sid": self.account_sid, "from": self.from_number, "to": self.to_number},
        ) as response:
            response.raise_for_status()
            return (await response.json())["sid"]

    async def _voice_webhook(self, session: aiohttp.ClientSession) -> str:
        params = {
            "CallSid": self.rec.call_sid,
            "AccountSid": self.account_sid,
            "From": self.from_number,
            "To": self.to_number,
            "CallStatus": "ringing",
            "Direction": "inbound",
            "ApiVersion": "2010-04-01",
            "Called": self.to_number,
            "Caller": self.from_number,
        }
        signature = RequestValidator(self.auth_token).compute_signature(f"{self.public_base_url}/twilio/voice", params)
        headers = {"X-Twilio-Signature": signature}
        if not self.reuse_connection:  # Twilio opens the media stream on a new connection
            headers["Connection"] = "close"
        async with session.post(f"{self.server_url}/twilio/voice", data=params, headers=headers) as response:
            if response.status != 200:
                raise RuntimeError(f"voice webhook answered {response.status}")
            return await response.text()

    async def _stream(self, session: aiohttp.ClientSession, url: str, params: dict[str, str]) -> None:
        local = url.replace(_ws_origin(self.public_base_url), _ws_origin(self.server_url), 1)
        self._stream_path = urlsplit(local).path
        headers = {}
        if self.sign_upgrade:
            headers["X-Twilio-Signature"] = RequestValidator(self.upgrade_auth_token).compute_signature(url, {})
        if self.tamper_token:
            params = {**params, "token": params.get("token", "") + "x"}
        async with session.ws_connect(local, headers=headers, max_msg_size=0, autoping=True) as ws:
            self._ws = ws
            self.rec.stream_opened = self.now()
            await ws.send_str(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
            await ws.send_str(
                json.dumps(
                    {
                        "event": "start",
                        "sequenceNumber": "1",
                        "streamSid": self._stream_sid,
                        "start": {
                            "accountSid": self.account_sid,
                            "streamSid": self._stream_sid,
                            "callSid": self.rec.call_sid,
                            "tracks": ["inbound"],
                            "customParameters": params,
                            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                        },
                    }
                )
            )
            tasks = [
                asyncio.create_task(self._clock()),
                asyncio.create_task(self._script_driver()),
                asyncio.create_task(self._watch_call()),
                asyncio.create_task(self._send_raw_frames()),
            ]
            try:
                await self._receive(ws)
            finally:
                self.rec.stream_closed = self.now()
                self._closed.set()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                self.rec.close_code = ws.close_code
                if ws.exception() is not None and not self.rec.error:
                    self.rec.error = repr(ws.exception())
                self._finish_agent_speech()

    async def _hang_up(self, by: str) -> None:
        if self._closed.is_set() or self._ws is None:
            return
        self.rec.ended_by = self.rec.ended_by or by
        try:
            await self._ws.send_str(
                json.dumps(
                    {
                        "event": "stop",
                        "sequenceNumber": "999",
                        "streamSid": self._stream_sid,
                        "stop": {"accountSid": self.account_sid, "callSid": self.rec.call_sid},
                    }
                )
            )
            await self._ws.close()
        except Exception:
            pass
        self._closed.set()

    # --- receiving from the agent ------------------------------------------------------
    async def _receive(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                if msg.type == aiohttp.WSMsgType.ERROR:
                    self.rec.error = f"websocket error: {msg.data!r}"
                continue
            data = json.loads(msg.data)
            event = data.get("event")
            if event == "media":
                frame = base64.b64decode(data["media"]["payload"])
                self._on_agent_frame(frame)
            elif event == "mark":
                self._pending_marks.append((self._queued_bytes, data["mark"]["name"]))
            elif event == "clear":
                self.rec.clears += 1
                self._playback.clear()
                self._queued_bytes = self._played_bytes
                if self._current is not None:
                    self._current.cleared = True
                self._finish_agent_speech()
                for _, name in self._pending_marks:  # Twilio returns the cleared marks at once
                    await self._echo_mark(name)
                self._pending_marks = []

    def _on_agent_frame(self, frame: bytes) -> None:
        now = self.now()
        self.rec.frames_received += 1
        if self._last_frame_at is not None and self._playback:
            # Inter-arrival jitter within a talk spurt (the burst of the lead excluded).
            gap = now - self._last_frame_at
            if gap > FRAME / 4:
                self.rec.inter_arrival_jitter_ms.append(abs(gap - FRAME) * 1000)
        self._last_frame_at = now
        if self._current is None:
            self._current = AgentSpeech(text="", started=now)
            self._utterance_marks = 0
            self.rec.agent.append(self._current)
            self._current_audio = bytearray()
            self._agent_done.clear()
            self._agent_started.set()
            self._agent_spoke_since_caller = True
            for turn in reversed(self.rec.turns):
                if turn.first_agent_frame is None:
                    turn.first_agent_frame = now
                break
        self._current.frames += 1
        self._current_audio += frame
        self._playback += frame
        self._queued_bytes += len(frame)

    def _finish_agent_speech(self) -> None:
        if self._current is not None:
            self._current.ended = self.now()
            self._current.text = audio.decode_text(bytes(self._current_audio)) or ""
            self._current = None
        self._agent_started.clear()
        self._agent_done.set()

    async def _send_raw_frames(self) -> None:
        started = self.now()
        for at, text in self.raw_frames:
            await asyncio.sleep(max(0.0, started + at - self.now()))
            if self._ws is not None and not self._ws.closed:
                await self._ws.send_str(text)

    async def _echo_mark(self, name: str) -> None:
        if not self.echo_marks:
            return
        self.rec.marks_echoed += 1
        if self._ws is not None and not self._ws.closed:
            await self._ws.send_str(
                json.dumps(
                    {"event": "mark", "sequenceNumber": "0", "streamSid": self._stream_sid, "mark": {"name": name}}
                )
            )

    # --- the 20 ms clock: caller audio out, agent audio played -------------------------
    async def _clock(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        tick = 0
        chunk = 0
        while not self._closed.is_set():
            tick += 1
            payload = base64.b64encode(self._caller_frames.pop(0)).decode() if self._caller_frames else SILENCE_B64
            if self._ws is not None and not self._ws.closed:
                chunk += 1
                await self._ws.send_str(
                    f'{{"event":"media","sequenceNumber":"{tick + 1}","streamSid":"{self._stream_sid}","media":'
                    f'{{"track":"inbound","chunk":"{chunk}","timestamp":"{tick * 20}","payload":"{payload}"}}}}'
                )
            await self._play_one()
            delay = start + tick * FRAME - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)

    async def _play_one(self) -> None:
        if self._playback:
            del self._playback[:160]
            self._played_bytes += 160
        elif self._current is not None and not self._utterance_marks:
            # Mid-utterance (its mark has not come yet) with nothing to play: the caller
            # hears a gap.
            self.rec.gaps += 1
        while self._pending_marks and self._pending_marks[0][0] <= self._played_bytes:
            _, name = self._pending_marks.pop(0)
            self._utterance_marks += 1
            await self._echo_mark(name)
        if not self._playback and not self._pending_marks and self._current is not None:
            # An utterance ends once its audio has played and its mark came back (or the
            # agent sent nothing more for a while).
            silent_for = self.now() - (self._last_frame_at or 0.0)
            if self._utterance_marks or silent_for > 1.5:
                self._finish_agent_speech()

    # --- the caller's script -----------------------------------------------------------
    async def _script_driver(self) -> None:
        await self._agent_done.wait()  # the greeting (if any) first
        for utterance in self.script:
            if utterance.when == "barge_in":
                await self._agent_started.wait()
                await asyncio.sleep(utterance.pause_s)
            else:
                await self._wait_agent_quiet(utterance.pause_s)
            await self._say(utterance)
        await self._wait_agent_quiet(self.hangup_grace_s)
        await self._hang_up("caller")

    async def _wait_agent_quiet(self, quiet_s: float, reply_timeout_s: float = 8.0) -> None:
        """Until the agent has answered the caller's last words and then been quiet a while."""
        deadline = self.now() + reply_timeout_s
        while not self._agent_spoke_since_caller and self.now() < deadline:
            await asyncio.sleep(FRAME)
        while True:
            await self._agent_done.wait()
            await asyncio.sleep(quiet_s)
            if self._agent_done.is_set() and self._current is None:
                return

    async def _say(self, utterance: Utterance) -> None:
        if utterance.dtmf:
            assert self._ws is not None, "a caller speaks only once the media stream is open"
            for digit in utterance.dtmf:
                await self._ws.send_str(
                    json.dumps(
                        {
                            "event": "dtmf",
                            "streamSid": self._stream_sid,
                            "sequenceNumber": "0",
                            "dtmf": {"track": "inbound_track", "digit": digit},
                        }
                    )
                )
            self._agent_spoke_since_caller = False
            self.rec.turns.append(TurnTiming(caller_text=f"dtmf:{utterance.dtmf}", speech_end=self.now()))
            return
        frames = audio.encode_text_frames(utterance.text)
        self._agent_spoke_since_caller = False
        self._caller_frames.extend(frames)
        while self._caller_frames and not self._closed.is_set():
            await asyncio.sleep(FRAME)
        self.rec.turns.append(TurnTiming(caller_text=utterance.text, speech_end=self.now()))

    async def _watch_call(self) -> None:
        """The agent hangs up or transfers through Twilio's REST API: the call ends."""
        deadline = self.now() + self.max_seconds
        assert self._session is not None, "watched only while run() holds the session"
        while not self._closed.is_set():
            await asyncio.sleep(0.1)
            if self.now() > deadline:
                await self._hang_up("timeout")
                return
            async with self._session.get(f"{self.twilio_url}/_standin/calls/{self.rec.call_sid}") as response:
                if response.status != 200:
                    continue
                call = await response.json()
            updates = call.get("updates") or []
            redirect = next((u["params"].get("Twiml") for u in updates if u["params"].get("Twiml")), None)
            if call.get("status") in ("completed", "canceled") or redirect:
                self.rec.redirect_twiml = redirect or ""
                # Twilio plays what it has buffered for a redirect; a hang-up cuts it.
                await self._hang_up("agent")
                return


def _ws_origin(http_url: str) -> str:
    scheme, _, rest = http_url.partition("://")
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest.split('/')[0]}"


def _parse_stream(twiml: str) -> tuple[str, dict[str, str]] | None:
    root = ET.fromstring(twiml)
    stream = root.find("./Connect/Stream")
    if stream is None:
        return None
    params = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
    return stream.get("url", ""), params
