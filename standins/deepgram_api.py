"""Local stand-in for Deepgram: live STT and TTS (WebSocket + REST), real wire format.

Point the real SDK at it with ``DeepgramClient(api_key=..., environment=
DeepgramClientEnvironment(base="http://H:P", production="ws://H:P", agent="ws://H:P",
agent_rest="http://H:P"))``.

Provider endpoints
------------------
``GET /v1/listen`` (WebSocket)  live STT. Behaviour follows the *energy* of the audio
    received, on an audio clock (bytes received / bytes per second), per 20 ms frame:
    first loud frame -> ``SpeechStarted`` (vad_events=true); interim ``Results``
    every ~300 ms of speech (interim_results=true); ``endpointing`` ms of silence ->
    ``Results`` is_final+speech_final (default endpointing 10 ms, ``false`` disables
    it); speech longer than ``max_segment_ms`` also gets is_final pieces with
    speech_final=false (concatenate them); ``utterance_end_ms`` of audio after the end
    of the last word sent (noise without words included) -> ``UtteranceEnd`` (needs
    interim_results=true); long silence -> an empty is_final ``Results`` every
    ``silence_results_ms`` (like the real service; ignore them). Each utterance
    (speech start -> endpoint/Finalize) consumes at most one script line.
    Text frames: KeepAlive, Finalize (flush as is_final with from_finalize=true),
    CloseStream (final results, Metadata, close 1000). Nothing received for
    ``idle_timeout_s`` -> close 1011 (NET-0001).
    What it hears: the text carried by codec audio (``standins.audio``); otherwise the
    next line of the script for the stream's ``tag`` query param (or of the default
    script), otherwise ``default_transcript``. Script-mode utterances shorter than
    200 ms of loud audio are heard as noise (empty transcript).
``GET /v1/speak`` (WebSocket)  TTS: Speak texts accumulate, Flush synthesizes codec
    audio (``tts_ms_per_char`` per character) sent in ``tts_chunk_ms`` binary chunks,
    then ``Flushed``; Clear drops pending audio and answers ``Cleared``; Close closes.
    ``Metadata`` is sent at open. Unknown voice -> HTTP 400 at the handshake.
    ``Flushed.sequence_id`` is the 0-based index of the Flush; ``Cleared.sequence_id``
    the index of the last Flush (0 if none); audio of a cleared Flush gets no
    ``Flushed``. Defaults as Deepgram's where possible (model aura-asteria-en); the
    stand-in only produces ``mulaw`` and ``linear16`` (the mu-law samples decoded).
``POST /v1/speak``  TTS REST, JSON ``{"text": ...}``: streamed audio, raw with
    ``container=none``, else with a WAV header.
Auth everywhere: ``Authorization: Token <key>`` (also ``token``/``Bearer``/``bearer``,
or ``Sec-WebSocket-Protocol: token, <key>``); wrong key -> 401 INVALID_AUTH.

Control API (JSON; each has a thread-safe Python method)
-------------------------------------------------------
``GET  /_standin/health``                         {"ok": true}
``GET  /_standin/requests`` (alias ``/_standin/connections``)
        {"connections": [{id, kind: listen|speak|speak_rest, path, query, tag, status,
        opened_at, closed_at, close_reason, bytes_received, audio_seconds,
        control: {KeepAlive, Finalize, ...}, events: {Results, SpeechStarted, ...},
        transcripts: [finals], interims, speak_texts, flushes, clears,
        synthesized: [texts], bytes_sent}]}                       -> ``requests()``
``POST /_standin/reset``                          records, scripts, faults, config
                                                                   -> ``reset()``
``POST /_standin/script`` {"tag": "t"|null, "lines": [...], "append": false}
                                                   -> ``set_script(lines, tag=None)``
``POST /_standin/config`` {"final_latency_ms": 0, "tts_ms_per_char": 65, ...}
        (any key of ``CONFIG_DEFAULTS``)           -> ``configure(**kw)``
``POST /_standin/faults/drop``   {"after_s": 1.0, "count": 1, "kind": "listen"}
        the next ``count`` WebSockets of ``kind`` are cut (TCP abort, no close frame)
        ``after_s`` seconds after opening        -> ``drop_next(after_s, count, kind)``
``POST /_standin/faults/drop_active`` {"kind": "listen"}  cut open ones now
                                                   -> ``drop_active(kind)``
``POST /_standin/faults/refuse`` {"count": 1, "status": 503, "kind": "listen"}
        refuse the next handshakes/requests of ``kind`` (listen|speak|speak_rest|any)
                                                   -> ``refuse_next(count, status, kind)``

Run alone: ``python -m standins.deepgram_api --port 8765 [--api-key KEY]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import hashlib
import json
import logging
import math
import struct
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

from standins import audio
from standins.threaded import ThreadedServer

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- voices

_AURA2 = {
    "en": "amalthea andromeda apollo arcas aries asteria athena atlas aurora callista cora "
    "cordelia delia draco electra harmonia helena hera hermes hyperion iris janus juno "
    "jupiter luna mars minerva neptune odysseus ophelia orion orpheus pandora phoebe pluto "
    "saturn selene thalia theia vesta zeus",
    "es": "agustina alvaro antonia aquila carina celeste diana estrella gloria javier luciano "
    "nestor olivia selena silvia sirio valerio",
    "de": "aurelia elara fabian julius kara lara viktoria",
    "nl": "beatrix cornelia daphne hestia lars leda rhea roman sander",
    "fr": "agathe hector",
    "it": "cesare cinzia demetra dionisio elio flavio livia maia melia perseo",
    "ja": "ama ebisu fujin izanami uzume",
}
_AURA1 = "angus arcas asteria athena helios hera luna orion orpheus perseus stella zeus"
VOICES: set[str] = {f"aura-2-{n}-{lang}" for lang, names in _AURA2.items() for n in names.split()}
VOICES |= {f"aura-{n}-en" for n in _AURA1.split()}
DEFAULT_VOICE = "aura-asteria-en"

_BYTES_PER_SAMPLE = {"mulaw": 1, "alaw": 1, "linear16": 2}

CONFIG_DEFAULTS: dict[str, Any] = {
    "api_key": None,  # None: any non-empty key is accepted
    "idle_timeout_s": 10.0,  # listen: close 1011 after this long without a message
    "tts_idle_timeout_s": 60.0,  # speak WebSocket idle close (unconfirmed value)
    "speech_threshold": audio.SPEECH_THRESHOLD,  # RMS of a loud frame
    "interim_interval_ms": 300.0,
    "max_segment_ms": 6000.0,  # is_final pieces during long speech (0 = off)
    "silence_results_ms": 5000.0,  # empty is_final during silence (0 = off)
    "min_script_speech_ms": 200.0,  # shorter loud blips are heard as noise
    "default_transcript": "I'd like to book an appointment.",
    "final_latency_ms": 0.0,  # extra delay before each is_final Results
    "tts_ms_per_char": audio.MS_PER_CHAR,
    "tts_min_ms": audio.MIN_UTTERANCE_MS,
    "tts_chunk_ms": 60.0,  # audio per binary message
    "tts_first_byte_ms": 0.0,  # delay before the first chunk of each Flush / REST call
    "tts_realtime_factor": 0.0,  # 0: as fast as possible; 2.0: twice real time
}


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _bool(v: str | None, default: bool = False) -> bool:
    if v is None:
        return default
    return v.strip().lower() in ("true", "1", "yes")


def _error_body(code: str, msg: str, request_id: str) -> dict[str, str]:
    return {"err_code": code, "err_msg": msg, "request_id": request_id}


def _err_response(status: int, code: str, msg: str) -> web.Response:
    rid = str(uuid.uuid4())
    return web.json_response(
        _error_body(code, msg, rid),
        status=status,
        headers={"dg-request-id": rid, "dg-error": msg},
    )


def _to_linear16(ulaw: bytes) -> bytes:
    return audio.ulaw_decode(ulaw).tobytes()


def _wav_header(encoding: str, sample_rate: int, data_len: int) -> bytes:
    if encoding == "linear16":
        fmt = struct.pack("<HHIIHH", 1, 1, sample_rate, sample_rate * 2, 2, 16)
    else:  # mulaw (7) / alaw (6), non-PCM fmt chunk carries cbSize
        code = 7 if encoding == "mulaw" else 6
        fmt = struct.pack("<HHIIHHH", code, 1, sample_rate, sample_rate, 1, 8, 0)
    return (
        b"RIFF"
        + struct.pack("<I", 4 + 8 + len(fmt) + 8 + data_len)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", data_len)
    )


# --------------------------------------------------------------------------- words


_STRIP = '.,!?;:"()[]{}¿¡…“”‘’'


def _make_words(tokens: list[str], times: list[tuple[float, float]], punctuate: bool) -> list[dict[str, Any]]:
    out = []
    for tok, (start, end) in zip(tokens, times, strict=True):
        bare = tok.strip(_STRIP).lower()
        if not bare:
            continue
        w: dict[str, Any] = {"word": bare, "start": round(start, 3), "end": round(end, 3), "confidence": 0.99}
        if punctuate:
            w["punctuated_word"] = tok
        out.append(w)
    return out


class _IdleWatch:
    """One timer per connection (not a timeout per received message) that calls
    ``on_idle`` once nothing has been received for ``idle_s`` seconds."""

    def __init__(self, idle_s: float, on_idle: Any) -> None:
        self.loop = asyncio.get_running_loop()
        self.last = self.loop.time()
        self.idle_s = idle_s
        self.on_idle = on_idle
        self.task: asyncio.Future | None = None
        self.handle = self.loop.call_later(idle_s, self._check) if idle_s > 0 else None

    def _check(self) -> None:
        remaining = self.last + self.idle_s - self.loop.time()
        if remaining > 0:
            self.handle = self.loop.call_later(remaining, self._check)
        else:
            self.handle = None
            self.task = asyncio.ensure_future(self.on_idle())

    async def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
        if self.task is not None:
            with contextlib.suppress(Exception):
                await self.task


# --------------------------------------------------------------------------- listen


class _ListenSession:
    """One live-STT WebSocket. All work is synchronous per frame (no task per frame)."""

    def __init__(
        self,
        server: DeepgramStandin,
        ws: web.WebSocketResponse,
        rec: dict[str, Any],
        q: dict[str, str],
        cfg: dict[str, Any],
        transport: asyncio.Transport | None,
    ):
        self.server = server
        self.ws = ws
        self.rec = rec
        self.cfg = cfg
        self.transport = transport
        self.request_id = rec["request_id"]
        model = q.get("model", "base")
        self.model_uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, "deepgram-standin/" + model))
        self.model_info = {"name": f"general-{model}", "version": "2025-01-01.0", "arch": model}
        encoding = q.get("encoding", "mulaw")
        rate = int(q.get("sample_rate", "8000"))
        self.channels = int(q.get("channels", "1"))
        self.encoding = encoding
        self.bps = rate * self.channels * _BYTES_PER_SAMPLE.get(encoding, 1)
        self.frame_bytes = max(1, self.bps // 50)
        self.frame_s = self.frame_bytes / self.bps
        ep = q.get("endpointing")
        if ep is None:
            self.endpoint_s: float | None = 0.010
        elif ep.strip().lower() == "false":
            self.endpoint_s = None
        elif ep.strip().lower() == "true":
            self.endpoint_s = 0.010
        else:
            self.endpoint_s = max(0.0, float(ep)) / 1000.0
        self.interim = _bool(q.get("interim_results"))
        ue = q.get("utterance_end_ms")
        self.ue_s: float | None = float(ue) / 1000.0 if ue else None  # absent or empty: off
        self.vad_events = _bool(q.get("vad_events"))
        self.punctuate = _bool(q.get("smart_format")) or _bool(q.get("punctuate"))
        self.tag = rec.get("tag")
        self.threshold = float(cfg["speech_threshold"])
        self.interim_s = float(cfg["interim_interval_ms"]) / 1000.0
        self.max_seg_s = float(cfg["max_segment_ms"]) / 1000.0
        self.silence_res_s = float(cfg["silence_results_ms"]) / 1000.0
        self.min_script_s = float(cfg["min_script_speech_ms"]) / 1000.0
        self.max_buf = self.bps * 120  # codec text is read from the first 2 minutes of an utterance
        self.sha = hashlib.sha256()
        self.pending = b""
        self.frames = 0
        self.prev_frame = b""
        self.seg_start = 0.0
        self.last_word_end = 0.0
        self.ue_armed = False  # words were sent since the last UtteranceEnd
        self.out: asyncio.Queue = asyncio.Queue()
        self.sender: asyncio.Task | None = None
        self.closed = False
        self._reset_utterance()

    # ---- utterance state
    def _reset_utterance(self) -> None:
        self.utt = False
        self.utt_t0 = 0.0  # time of utt_buf[0]
        self.utt_buf = bytearray()
        self.scan_pos = 0
        self.records: list[tuple[int, bool, str]] = []
        self.source: str | None = None  # "codec" | "script" | "noise"
        self.script_tokens: list[str] = []
        self.final_words = 0
        self.loud_s = 0.0
        self.speech_t0 = 0.0
        self.last_loud_end = 0.0
        self.silence_s = 0.0
        self.next_interim = 0.0

    @property
    def now(self) -> float:
        return self.frames * self.frame_s

    # ---- output
    def emit(self, msg: dict[str, Any], delay_s: float = 0.0) -> None:
        counts = self.rec["events"]
        counts[msg["type"]] = counts.get(msg["type"], 0) + 1
        self.rec["audio_seconds"] = round(self.now, 3)
        self.out.put_nowait((time.monotonic() + delay_s if delay_s else 0.0, json.dumps(msg)))

    async def send_loop(self) -> None:
        while True:
            item = await self.out.get()
            if item is None:
                return
            due, payload = item
            if due:
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            if self.ws.closed:
                continue
            try:
                await self.ws.send_str(payload)
            except Exception:  # connection gone: drain silently
                self.closed = True

    def _results(
        self,
        tokens: list[str],
        times: list[tuple[float, float]],
        *,
        is_final: bool,
        speech_final: bool = False,
        from_finalize: bool = False,
    ) -> dict[str, Any]:
        words = _make_words(tokens, times, self.punctuate)
        if self.punctuate:
            transcript = " ".join(w["punctuated_word"] for w in words)
        else:
            transcript = " ".join(w["word"] for w in words)
        t = self.now
        msg = {
            "type": "Results",
            "channel_index": [0, self.channels],
            "duration": round(max(0.0, t - self.seg_start), 3),
            "start": round(self.seg_start, 3),
            "is_final": is_final,
            "speech_final": speech_final,
            "from_finalize": from_finalize,
            "channel": {
                "alternatives": [
                    {
                        "transcript": transcript,
                        "confidence": 0.99 if words else 0.0,
                        "words": words,
                    }
                ]
            },
            "metadata": {"request_id": self.request_id, "model_info": self.model_info, "model_uuid": self.model_uuid},
        }
        if words:
            self.last_word_end = words[-1]["end"]
            self.ue_armed = self.interim and self.ue_s is not None
        if is_final:
            self.rec["transcripts"].append(
                {
                    "transcript": transcript,
                    "start": msg["start"],
                    "duration": msg["duration"],
                    "speech_final": speech_final,
                    "from_finalize": from_finalize,
                    # CLOCK_MONOTONIC is system-wide: benchmarks compare it with other processes'.
                    "sent_at": time.monotonic(),
                }
            )
        else:
            self.rec["interims"] += 1
        return msg

    # ---- what was heard
    def _decode_codec(self) -> None:
        found, resume = audio.find_text_records(bytes(self.utt_buf[self.scan_pos :]))
        if found:
            base = self.scan_pos
            self.records.extend((base + off, joined, text) for off, joined, text in found)
        self.scan_pos += resume

    def _codec_tokens(self) -> tuple[list[str], list[tuple[float, float]]]:
        tokens: list[str] = []
        starts: list[float] = []
        for off, joined, text in self.records:
            if joined and tokens:
                tokens[-1] += text
            else:
                tokens.append(text)
                starts.append(self.utt_t0 + off / self.bps)
        end = max(self.last_loud_end, starts[-1] + 0.05) if starts else self.last_loud_end
        times = []
        for i, s in enumerate(starts):
            e = starts[i + 1] - 0.02 if i + 1 < len(starts) else end
            times.append((s, max(s + 0.02, e)))
        return tokens, times

    def _available(self, final: bool) -> tuple[list[str], list[tuple[float, float]]]:
        """All words heard so far in this utterance (including ones already final)."""
        if self.source in (None, "codec"):
            self._decode_codec()
            if self.records:
                self.source = "codec"
            elif self.source is None and (final or self.loud_s >= 0.25):
                if self.loud_s < self.min_script_s:
                    self.source = "noise"
                else:
                    self.source = "script"
                    line = self.server._next_line(self.tag)
                    self.rec["script_lines_used"].append(line)
                    self.script_tokens = line.split()
        if self.source == "codec":
            return self._codec_tokens()
        if self.source == "script":
            toks = self.script_tokens
            if not toks:
                return [], []
            expected = max(0.3, len(" ".join(toks)) * audio.MS_PER_CHAR / 1000.0)
            t0 = self.speech_t0
            span = max(self.last_loud_end - t0, 0.05 * len(toks))
            times = [(t0 + span * i / len(toks), t0 + span * (i + 1) / len(toks) - 0.01) for i in range(len(toks))]
            if final:
                return toks, times
            n = min(len(toks), max(1, math.ceil(len(toks) * self.loud_s / expected)))
            return toks[:n], times[:n]
        return [], []

    # ---- events
    def _interim(self) -> None:
        toks, times = self._available(final=False)
        new = toks[self.final_words :]
        if new:
            self.emit(self._results(new, times[self.final_words :], is_final=False))

    def _final(self, *, speech_final: bool, from_finalize: bool = False, end_utt: bool) -> None:
        if self.utt:
            toks, times = self._available(final=end_utt)
        else:
            toks, times = [], []
        new, new_times = toks[self.final_words :], times[self.final_words :]
        self.final_words = len(toks)
        msg = self._results(new, new_times, is_final=True, speech_final=speech_final, from_finalize=from_finalize)
        delay = float(self.server._cfg_get("final_latency_ms")) / 1000.0
        self.emit(msg, delay)
        self.seg_start = self.now
        if end_utt:
            self._reset_utterance()

    def _start_utterance(self, t0: float, frame: bytes) -> None:
        self.utt = True
        pre = self.prev_frame
        self.utt_buf = bytearray(pre)
        self.utt_t0 = t0 - len(pre) / self.bps
        self.speech_t0 = t0
        self.next_interim = t0 + self.interim_s
        if self.vad_events:
            self.emit({"type": "SpeechStarted", "channel": [0, self.channels], "timestamp": round(t0, 3)})

    # ---- audio
    def feed(self, data: bytes) -> None:
        self.rec["bytes_received"] += len(data)
        self.sha.update(data)
        buf = self.pending + data if self.pending else data
        fb = self.frame_bytes
        full = len(buf) - len(buf) % fb
        for i in range(0, full, fb):
            self._frame(buf[i : i + fb])
        self.pending = buf[full:]

    def _energy(self, frame: bytes) -> float:
        if self.encoding == "linear16":
            from array import array

            a = array("h")
            a.frombytes(frame[: len(frame) // 2 * 2])
            return math.sqrt(sum(x * x for x in a) / max(1, len(a)))
        return audio.frame_energy(frame)

    def _frame(self, frame: bytes) -> None:
        t0 = self.frames * self.frame_s
        self.frames += 1
        t1 = t0 + self.frame_s
        if self._energy(frame) >= self.threshold:
            if not self.utt:
                self._start_utterance(t0, frame)
            if len(self.utt_buf) < self.max_buf:  # bound memory on endless loud audio
                self.utt_buf += frame
            self.loud_s += self.frame_s
            self.silence_s = 0.0
            self.last_loud_end = t1
            if self.interim and t1 >= self.next_interim:
                self.next_interim = t1 + self.interim_s
                self._interim()
            if self.max_seg_s and t1 - self.seg_start >= self.max_seg_s:
                self._final(speech_final=False, end_utt=False)
        elif self.utt:
            self.silence_s += self.frame_s
            if self.silence_s <= 1.0 and len(self.utt_buf) < self.max_buf:
                self.utt_buf += frame
            if self.endpoint_s is not None:
                if self.silence_s >= self.endpoint_s:
                    self._final(speech_final=True, end_utt=True)
            elif self.silence_s >= 1.0:
                self._final(speech_final=False, end_utt=True)
        elif self.silence_res_s and t1 - self.seg_start >= self.silence_res_s:
            self._final(speech_final=False, end_utt=False)
        # UtteranceEnd: utterance_end_ms of audio without a new word (noise included)
        if self.ue_armed and t1 >= self.last_word_end + self.ue_s:  # type: ignore[operator]
            self.ue_armed = False
            self.emit({"type": "UtteranceEnd", "channel": [0, self.channels], "last_word_end": self.last_word_end})
            self.rec["utterance_ends"].append(time.monotonic())
        self.prev_frame = frame

    # ---- control
    def finalize(self) -> None:
        self._final(speech_final=False, from_finalize=True, end_utt=True)

    def metadata(self) -> dict[str, Any]:
        return {
            "type": "Metadata",
            "transaction_key": "deprecated",
            "request_id": self.request_id,
            "sha256": self.sha.hexdigest(),
            "created": self.rec["created"],
            "duration": round(self.now, 3),
            "channels": self.channels,
            "models": [self.model_uuid],
            "model_info": {self.model_uuid: self.model_info},
        }

    def abort(self) -> None:
        self.rec["close_reason"] = "dropped (fault injection)"
        if self.transport is not None:
            self.transport.abort()


# --------------------------------------------------------------------------- speak


class _SpeakSession:
    def __init__(
        self,
        server: DeepgramStandin,
        ws: web.WebSocketResponse,
        rec: dict[str, Any],
        model: str,
        encoding: str,
        cfg: dict[str, Any],
        transport: asyncio.Transport | None,
    ):
        self.server = server
        self.ws = ws
        self.rec = rec
        self.model = model
        self.encoding = encoding
        self.cfg = cfg
        self.transport = transport
        self.text = ""
        self.flushes = 0
        self.gen = 0  # bumped by Clear: jobs of an older generation are dropped
        self.jobs: asyncio.Queue = asyncio.Queue()
        self.worker: asyncio.Task | None = None

    def abort(self) -> None:
        self.rec["close_reason"] = "dropped (fault injection)"
        if self.transport is not None:
            self.transport.abort()

    async def work(self) -> None:
        while True:
            job = await self.jobs.get()
            if job is None:
                return
            gen, seq, text = job
            if gen != self.gen:
                continue
            if text.strip():
                ok = await self._synthesize(gen, text)
                if not ok:
                    continue
            if gen == self.gen and not self.ws.closed:
                try:
                    await self.ws.send_str(json.dumps({"type": "Flushed", "sequence_id": seq}))
                except ConnectionResetError:
                    return
                self.rec["events"]["Flushed"] = self.rec["events"].get("Flushed", 0) + 1

    async def _synthesize(self, gen: int, text: str) -> bool:
        cfg = self.server._cfg_snapshot()
        data = audio.encode_text(text, ms_per_char=float(cfg["tts_ms_per_char"]), min_ms=float(cfg["tts_min_ms"]))
        chunk = max(1, int(8000 * float(cfg["tts_chunk_ms"]) / 1000.0))
        factor = float(cfg["tts_realtime_factor"])
        first = float(cfg["tts_first_byte_ms"]) / 1000.0
        if first > 0:
            await asyncio.sleep(first)
        self.rec["synthesized"].append(text)
        for i in range(0, len(data), chunk):
            if gen != self.gen or self.ws.closed:
                return False
            piece = data[i : i + chunk]
            if self.encoding == "linear16":
                piece = _to_linear16(piece)
            try:
                await self.ws.send_bytes(piece)
            except ConnectionResetError:
                return False
            self.rec["bytes_sent"] += len(piece)
            await asyncio.sleep(len(data[i : i + chunk]) / 8000.0 / factor if factor > 0 else 0)
        return gen == self.gen


# --------------------------------------------------------------------------- server


class DeepgramStandin(ThreadedServer):
    """aiohttp app speaking Deepgram's listen/speak protocols (see module docstring)."""

    thread_name = "deepgram-standin"

    def __init__(self, *, api_key: str | None = None, **config: Any) -> None:
        unknown = set(config) - set(CONFIG_DEFAULTS)
        if unknown:
            raise TypeError(f"unknown config keys: {sorted(unknown)}")
        self._defaults = dict(CONFIG_DEFAULTS, api_key=api_key, **config)
        self._lock = threading.Lock()
        self._cfg: dict[str, Any] = dict(self._defaults)
        self._records: list[dict[str, Any]] = []
        self._scripts: dict[str | None, list[str]] = {}
        self._drops: list[tuple[str, float]] = []
        self._refusals: list[tuple[str, int]] = []
        self._active: set[Any] = set()
        self._tasks: set[asyncio.Task[Any]] = set()  # streaming REST handlers
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._seq = 0
        self._loop_thread: int | None = None
        self.base_url: str | None = None

    # ------------------------------------------------------------ lifecycle
    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_get("/v1/listen", self._listen)
        app.router.add_get("/v1/speak", self._speak_ws)
        app.router.add_post("/v1/speak", self._speak_rest)
        app.router.add_get("/_standin/health", self._h_health)
        app.router.add_get("/_standin/requests", self._h_requests)
        app.router.add_get("/_standin/connections", self._h_requests)
        app.router.add_post("/_standin/reset", self._h_reset)
        app.router.add_post("/_standin/script", self._h_script)
        app.router.add_post("/_standin/config", self._h_config)
        app.router.add_post("/_standin/faults/drop", self._h_drop)
        app.router.add_post("/_standin/faults/drop_active", self._h_drop_active)
        app.router.add_post("/_standin/faults/refuse", self._h_refuse)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._runner = web.AppRunner(self.make_app(), handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, backlog=4096, reuse_address=True)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://{host}:{port}"
        return self.base_url

    @property
    def ws_url(self) -> str:
        assert self.base_url, "not started"
        return "ws://" + self.base_url.split("://", 1)[1]

    async def stop(self) -> None:
        """Close open WebSockets with 1001, cancel streaming REST answers, stop serving."""
        if self._runner is not None:
            await self._close_all()
            await self._runner.cleanup()
            self._runner = None

    async def _close_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        sessions = list(self._active)
        if sessions:
            await asyncio.wait(
                [asyncio.ensure_future(s.ws.close(code=1001, message=b"server shutdown")) for s in sessions], timeout=3
            )

    async def _on_shutdown(self, app: web.Application) -> None:
        await self._close_all()

    def requests(self) -> list[dict[str, Any]]:
        """A snapshot (deep copy) of every connection / request received."""

        def snap() -> list[dict[str, Any]]:
            with self._lock:
                return copy.deepcopy(self._records)

        return self._on_loop(snap)

    connections = requests

    def reset(self) -> None:
        with self._lock:
            self._records.clear()
            self._scripts.clear()
            self._drops.clear()
            self._refusals.clear()
            self._cfg = dict(self._defaults)

    def set_script(self, lines: list[str], tag: str | None = None, append: bool = False) -> None:
        """Lines heard, in order, by streams with this ``tag`` (None: streams whose tag
        has no script) when the audio carries no codec text."""
        with self._lock:
            if append:
                self._scripts.setdefault(tag, []).extend(str(x) for x in lines)
            else:
                self._scripts[tag] = [str(x) for x in lines]

    def configure(self, **kw: Any) -> None:
        unknown = set(kw) - set(CONFIG_DEFAULTS)
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        with self._lock:
            self._cfg.update(kw)

    def drop_next(self, after_s: float, count: int = 1, kind: str = "listen") -> None:
        """Cut the next ``count`` WebSockets of ``kind`` after ``after_s`` seconds."""
        with self._lock:
            self._drops.extend([(kind, float(after_s))] * int(count))

    def refuse_next(self, count: int = 1, status: int = 503, kind: str = "listen") -> None:
        """Answer the next ``count`` handshakes/requests of ``kind`` with ``status``."""
        with self._lock:
            self._refusals.extend([(kind, int(status))] * int(count))

    def drop_active(self, kind: str = "listen") -> int:
        """Cut every open WebSocket of ``kind`` (listen|speak|any) now; returns how many."""

        def cut() -> int:
            targets = [s for s in list(self._active) if kind in ("any", s.rec["kind"])]
            for s in targets:
                s.abort()
            return len(targets)

        return self._on_loop(cut)

    # ------------------------------------------------------------ internals
    def _cfg_get(self, key: str) -> Any:
        return self._cfg[key]

    def _cfg_snapshot(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._cfg)

    def _next_line(self, tag: str | None) -> str:
        with self._lock:
            for key in (tag, None):
                lines = self._scripts.get(key)
                if lines:
                    return lines.pop(0)
            return str(self._cfg["default_transcript"])

    def _take(self, items: list[tuple[str, Any]], kind: str) -> Any:
        with self._lock:
            for i, (k, v) in enumerate(items):
                if k in (kind, "any"):
                    del items[i]
                    return v
        return None

    def _new_record(self, kind: str, request: web.Request) -> dict[str, Any]:
        with self._lock:
            self._seq += 1
            tags = request.query.getall("tag", [])
            rec: dict[str, Any] = {
                "id": self._seq,
                "kind": kind,
                "path": request.path,
                "query": {
                    k: (v if len(request.query.getall(k)) == 1 else request.query.getall(k))
                    for k, v in request.query.items()
                },
                "tag": tags[0] if tags else None,
                "request_id": str(uuid.uuid4()),
                "created": _now_iso(),
                "opened_at": time.time(),
                "closed_at": None,
                "status": None,
                "close_reason": None,
                "bytes_received": 0,
                "audio_seconds": 0.0,
                "bytes_sent": 0,
                "control": {},
                "events": {},
                "transcripts": [],
                "utterance_ends": [],
                "interims": 0,
                "script_lines_used": [],
                "speak_texts": [],
                "flushes": 0,
                "clears": 0,
                "synthesized": [],
            }
            self._records.append(rec)
            return rec

    def _auth_error(self, request: web.Request) -> web.Response | None:
        key = None
        auth = request.headers.get("Authorization", "")
        parts = auth.split(None, 1)
        if len(parts) == 2 and parts[0].lower() in ("token", "bearer"):
            key = parts[1].strip()
        if key is None:
            proto = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
            if len(proto) >= 2 and proto[0].lower() in ("token", "bearer"):
                key = proto[1]
        expected = self._cfg["api_key"]
        if not key or (expected is not None and key != expected):
            return _err_response(401, "INVALID_AUTH", "Invalid credentials.")
        return None

    def _gate(self, request: web.Request, rec: dict[str, Any], kind: str) -> web.Response | None:
        status = self._take(self._refusals, kind)
        if status is not None:
            rec["status"] = status
            rec["close_reason"] = "refused (fault injection)"
            rec["closed_at"] = time.time()
            code = "SERVICE_UNAVAILABLE" if status >= 500 else "REQUEST_REFUSED"
            return _err_response(status, code, "The service is temporarily unavailable.")
        err = self._auth_error(request)
        if err is not None:
            rec["status"] = 401
            rec["closed_at"] = time.time()
            return err
        return None

    # ------------------------------------------------------------ /v1/listen
    async def _listen(self, request: web.Request) -> web.StreamResponse:
        rec = self._new_record("listen", request)
        refused = self._gate(request, rec, "listen")
        if refused is not None:
            return refused
        q = request.query
        encoding = q.get("encoding")
        bad = None
        if encoding is not None and encoding not in _BYTES_PER_SAMPLE:
            bad = f"Unsupported encoding for this stand-in: {encoding}"
        elif encoding is not None and "sample_rate" not in q:
            bad = "sample_rate is required when encoding is set"
        else:
            try:
                int(q.get("sample_rate", "8000"))
                int(q.get("channels", "1"))
                ep = q.get("endpointing", "10").lower()
                if ep not in ("true", "false"):
                    float(ep)
                if q.get("utterance_end_ms"):
                    float(q["utterance_end_ms"])
            except ValueError as exc:
                bad = f"Invalid query parameter: {exc}"
        if bad:
            rec["status"] = 400
            rec["closed_at"] = time.time()
            return _err_response(400, "INVALID_QUERY_PARAMETER", bad)
        ws = web.WebSocketResponse(autoping=True, compress=False, max_msg_size=8 * 1024 * 1024, timeout=2.0)
        ws.headers["dg-request-id"] = rec["request_id"]
        await ws.prepare(request)
        rec["status"] = 101
        cfg = self._cfg_snapshot()
        session = _ListenSession(self, ws, rec, dict(q), cfg, request.transport)
        drop_after = self._take(self._drops, "listen")
        handle = asyncio.get_running_loop().call_later(drop_after, session.abort) if drop_after is not None else None
        self._active.add(session)
        session.sender = asyncio.create_task(session.send_loop())

        async def on_idle() -> None:
            rec["close_reason"] = "idle timeout (NET-0001)"
            await ws.close(
                code=1011,
                message=b"Deepgram did not receive audio data or a text "
                b"message within the timeout window. See https://dpgr.am/net0001",
            )

        watch = _IdleWatch(float(cfg["idle_timeout_s"]), on_idle)
        loop_time = watch.loop.time
        try:
            while True:
                msg = await ws.receive()
                watch.last = loop_time()
                if msg.type == WSMsgType.BINARY:
                    session.feed(msg.data)
                elif msg.type == WSMsgType.TEXT:
                    try:
                        mtype = json.loads(msg.data).get("type")
                    except (ValueError, AttributeError):
                        mtype = "<invalid>"
                    ctl = rec["control"]
                    ctl[mtype] = ctl.get(mtype, 0) + 1
                    if mtype == "Finalize":
                        session.finalize()
                    elif mtype == "CloseStream":
                        if session.utt:
                            session._final(speech_final=True, end_utt=True)
                        session.emit(session.metadata())
                        await self._drain(session)
                        rec["close_reason"] = rec["close_reason"] or "CloseStream"
                        await ws.close(code=1000)
                        break
                    # KeepAlive: nothing to do (it only resets the idle timer)
                else:  # CLOSE / CLOSING / CLOSED / ERROR
                    rec["close_reason"] = rec["close_reason"] or f"client {msg.type.name.lower()}"
                    break
        finally:
            if handle is not None:
                handle.cancel()
            await watch.cancel()
            rec["audio_seconds"] = round(session.now, 3)
            self._active.discard(session)
            if session.sender is not None and not session.sender.done():
                session.out.put_nowait(None)
                try:
                    await asyncio.wait_for(session.sender, 5)
                except (TimeoutError, Exception):
                    session.sender.cancel()
            rec["closed_at"] = time.time()
        return ws

    async def _drain(self, session: _ListenSession) -> None:
        if session.sender is not None and not session.sender.done():
            session.out.put_nowait(None)
            await session.sender

    # ------------------------------------------------------------ /v1/speak
    def _speak_params(self, request: web.Request) -> tuple[web.Response | None, str, str, int]:
        q = request.query
        model = q.get("model", DEFAULT_VOICE)
        encoding = q.get("encoding", "linear16")
        try:
            rate = int(q.get("sample_rate", "8000"))
        except ValueError:
            return _err_response(400, "INVALID_QUERY_PARAMETER", "Invalid sample_rate."), model, encoding, 0
        if model not in VOICES:
            return (
                _err_response(400, "INVALID_QUERY_PARAMETER", f"No such model/version/tier combination found: {model}"),
                model,
                encoding,
                rate,
            )
        if encoding not in _BYTES_PER_SAMPLE or encoding == "alaw":
            return (
                _err_response(400, "UNSUPPORTED_AUDIO_FORMAT", f"Unsupported encoding for this stand-in: {encoding}"),
                model,
                encoding,
                rate,
            )
        return None, model, encoding, rate

    async def _speak_ws(self, request: web.Request) -> web.StreamResponse:
        rec = self._new_record("speak", request)
        refused = self._gate(request, rec, "speak")
        if refused is not None:
            return refused
        err, model, encoding, _rate = self._speak_params(request)
        if err is not None:
            rec["status"] = err.status
            rec["closed_at"] = time.time()
            return err
        ws = web.WebSocketResponse(autoping=True, compress=False, max_msg_size=1024 * 1024, timeout=2.0)
        ws.headers["dg-request-id"] = rec["request_id"]
        await ws.prepare(request)
        rec["status"] = 101
        cfg = self._cfg_snapshot()
        session = _SpeakSession(self, ws, rec, model, encoding, cfg, request.transport)
        drop_after = self._take(self._drops, "speak")
        handle = asyncio.get_running_loop().call_later(drop_after, session.abort) if drop_after is not None else None
        self._active.add(session)
        await ws.send_str(
            json.dumps(
                {
                    "type": "Metadata",
                    "request_id": rec["request_id"],
                    "model_name": model,
                    "model_version": "2025-01-01.0",
                    "model_uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, "deepgram-standin/" + model)),
                }
            )
        )
        session.worker = asyncio.create_task(session.work())

        async def on_idle() -> None:
            rec["close_reason"] = "idle timeout"
            session.gen += 1
            await ws.close(code=1011, message=b"idle timeout")

        watch = _IdleWatch(float(cfg["tts_idle_timeout_s"]), on_idle)
        try:
            while True:
                msg = await ws.receive()
                watch.last = watch.loop.time()
                if msg.type == WSMsgType.TEXT:
                    try:
                        data = json.loads(msg.data)
                        mtype = data.get("type")
                    except (ValueError, AttributeError):
                        data, mtype = {}, "<invalid>"
                    ctl = rec["control"]
                    ctl[mtype] = ctl.get(mtype, 0) + 1
                    if mtype == "Speak":
                        text = str(data.get("text", ""))
                        rec["speak_texts"].append(text)
                        session.text += text
                    elif mtype == "Flush":
                        seq = session.flushes
                        session.flushes += 1
                        rec["flushes"] += 1
                        session.jobs.put_nowait((session.gen, seq, session.text))
                        session.text = ""
                    elif mtype == "Clear":
                        session.gen += 1
                        session.text = ""
                        rec["clears"] += 1
                        await ws.send_str(json.dumps({"type": "Cleared", "sequence_id": max(0, session.flushes - 1)}))
                    elif mtype == "Close":
                        rec["close_reason"] = "Close"
                        session.gen += 1
                        await ws.close(code=1000)
                        break
                    else:
                        await ws.send_str(
                            json.dumps(
                                {
                                    "type": "Warning",
                                    "code": "UNKNOWN_MESSAGE_TYPE",
                                    "description": f"Unknown message type: {mtype}",
                                }
                            )
                        )
                elif msg.type == WSMsgType.BINARY:
                    await ws.send_str(
                        json.dumps(
                            {
                                "type": "Warning",
                                "code": "BINARY_NOT_SUPPORTED",
                                "description": "Binary messages are not supported.",
                            }
                        )
                    )
                else:
                    rec["close_reason"] = rec["close_reason"] or f"client {msg.type.name.lower()}"
                    break
        finally:
            if handle is not None:
                handle.cancel()
            await watch.cancel()
            self._active.discard(session)
            session.gen += 1
            session.jobs.put_nowait(None)
            session.worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await session.worker
            rec["closed_at"] = time.time()
        return ws

    async def _speak_rest(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            return await self._speak_rest_inner(request)
        finally:
            self._tasks.discard(task)

    async def _speak_rest_inner(self, request: web.Request) -> web.StreamResponse:
        rec = self._new_record("speak_rest", request)
        refused = self._gate(request, rec, "speak_rest")
        if refused is not None:
            return refused
        err, model, encoding, rate = self._speak_params(request)
        if err is not None:
            rec["status"] = err.status
            rec["closed_at"] = time.time()
            return err
        try:
            body = await request.json()
            text = body["text"]
            if not isinstance(text, str) or not text.strip():
                raise ValueError("empty text")
        except Exception:
            rec["status"] = 400
            rec["closed_at"] = time.time()
            return _err_response(
                400, "INVALID_REQUEST_BODY", 'Invalid JSON body: expected {"text": "..."} with non-empty text.'
            )
        rec["speak_texts"].append(text)
        cfg = self._cfg_snapshot()
        data = audio.encode_text(text, ms_per_char=float(cfg["tts_ms_per_char"]), min_ms=float(cfg["tts_min_ms"]))
        if encoding == "linear16":
            data = _to_linear16(data)
        container = request.query.get("container", "wav")
        if container != "none":
            data = _wav_header(encoding, rate, len(data)) + data
        resp = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": "audio/wav"
                if container != "none"
                else ("audio/mulaw" if encoding == "mulaw" else "audio/l16"),
                "dg-request-id": rec["request_id"],
                "dg-model-name": model,
                "dg-char-count": str(len(text)),
            },
        )
        resp.content_length = len(data)
        first = float(cfg["tts_first_byte_ms"]) / 1000.0
        if first > 0:
            await asyncio.sleep(first)
        await resp.prepare(request)
        rec["status"] = 200
        rec["synthesized"].append(text)
        chunk = max(1, int(8000 * float(cfg["tts_chunk_ms"]) / 1000.0)) * (2 if encoding == "linear16" else 1)
        factor = float(cfg["tts_realtime_factor"])
        try:
            for i in range(0, len(data), chunk):
                await resp.write(data[i : i + chunk])
                rec["bytes_sent"] += len(data[i : i + chunk])
                if factor > 0:
                    await asyncio.sleep(chunk / (8000.0 * (2 if encoding == "linear16" else 1)) / factor)
            await resp.write_eof()
        except ConnectionResetError:
            rec["close_reason"] = "client went away"
        rec["closed_at"] = time.time()
        return resp

    # ------------------------------------------------------------ control handlers
    async def _json(self, request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return {}
        data = await request.json()
        if not isinstance(data, dict):
            raise web.HTTPBadRequest(text="expected a JSON object")
        return data

    async def _h_health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "active": len(self._active)})

    async def _h_requests(self, request: web.Request) -> web.Response:
        return web.json_response({"connections": self.requests()})

    async def _h_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    async def _h_script(self, request: web.Request) -> web.Response:
        data = await self._json(request)
        lines = data.get("lines")
        if not isinstance(lines, list):
            return web.json_response({"error": "lines must be a list"}, status=400)
        self.set_script(lines, tag=data.get("tag"), append=bool(data.get("append", False)))
        return web.json_response({"ok": True})

    async def _h_config(self, request: web.Request) -> web.Response:
        data = await self._json(request)
        try:
            self.configure(**data)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"ok": True, "config": self._cfg_snapshot()})

    async def _h_drop(self, request: web.Request) -> web.Response:
        data = await self._json(request)
        self.drop_next(float(data.get("after_s", 0.0)), int(data.get("count", 1)), str(data.get("kind", "listen")))
        return web.json_response({"ok": True})

    async def _h_drop_active(self, request: web.Request) -> web.Response:
        data = await self._json(request)
        n = self.drop_active(str(data.get("kind", "listen")))
        return web.json_response({"ok": True, "dropped": n})

    async def _h_refuse(self, request: web.Request) -> web.Response:
        data = await self._json(request)
        self.refuse_next(int(data.get("count", 1)), int(data.get("status", 503)), str(data.get("kind", "listen")))
        return web.json_response({"ok": True})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Deepgram stand-in (live STT + TTS)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--api-key", default=None, help="accepted key (default: any non-empty)")
    args = parser.parse_args(argv)

    async def run() -> None:
        server = DeepgramStandin(api_key=args.api_key)
        url = await server.start(args.host, args.port)
        print(f"deepgram stand-in listening on {url}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
