"""The Deepgram stand-in, driven through the real deepgram-sdk (7.x) clients."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
import warnings
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import httpx
import pytest
import pytest_asyncio

# deepgram's listen/speak modules import websockets.legacy and a deprecated websockets
# exception at import time: import them once here with the DeprecationWarnings muted,
# so a `-W error` run does not fail at collection.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import deepgram.core.websocket_compat
    import deepgram.listen.v1.client
    import deepgram.speak.v1.client  # noqa: F401
    from deepgram import AsyncDeepgramClient, DeepgramClient
    from deepgram.core.api_error import ApiError
    from deepgram.environment import DeepgramClientEnvironment
    from deepgram.listen.v1.types import (
        ListenV1Metadata,
        ListenV1Results,
        ListenV1SpeechStarted,
        ListenV1UtteranceEnd,
    )
    from deepgram.speak.v1.types import SpeakV1Flushed, SpeakV1Metadata, SpeakV1Text
    from websockets.exceptions import ConnectionClosed

from standins import audio
from standins.deepgram_api import DeepgramStandin

KEY = "dg-test-key"
TELEPHONY = {
    "model": "nova-3",
    "encoding": "mulaw",
    "sample_rate": 8000,
    "channels": 1,
    "interim_results": "true",
    "endpointing": 300,
    "utterance_end_ms": 1000,
    "vad_events": "true",
    "smart_format": "true",
}
TEXT = "Hello there, I'd like to book a cleaning for Tuesday."


def env_for(base_url: str) -> DeepgramClientEnvironment:
    ws = "ws://" + base_url.split("://", 1)[1]
    return DeepgramClientEnvironment(base=base_url, production=ws, agent=ws, agent_rest=base_url)


_http_clients: list[httpx.AsyncClient] = []


def async_client(base_url: str, key: str = KEY) -> AsyncDeepgramClient:
    # our own httpx client, closed by the fixture (the SDK never closes its default one)
    http = httpx.AsyncClient(timeout=10)
    _http_clients.append(http)
    return AsyncDeepgramClient(api_key=key, environment=env_for(base_url), httpx_client=http)


class StartedStandin(DeepgramStandin):
    """The fixture's stand-in: started (so `base_url` is set), with an SDK client pointed at it."""

    base_url: str
    client: AsyncDeepgramClient


@pytest_asyncio.fixture
async def dg() -> AsyncIterator[StartedStandin]:
    server = StartedStandin(api_key=KEY)
    url = await server.start()
    server.client = async_client(url)
    try:
        yield server
    finally:
        while _http_clients:
            await _http_clients.pop().aclose()
        await server.stop()


async def collect(conn: Any, until: Callable[[Any], bool], timeout: float = 5.0) -> list[Any]:
    out: list[Any] = []

    async def run() -> None:
        while True:
            msg = await conn.recv()
            out.append(msg)
            if until(msg):
                return

    await asyncio.wait_for(run(), timeout)
    return out


def is_type(name: str) -> Callable[[Any], bool]:
    return lambda m: getattr(m, "type", None) == name


def strict(msg: Any) -> None:
    """The SDK parses leniently: re-validate against its pydantic model so a missing
    required field fails the test."""
    type(msg).model_validate(msg.model_dump(exclude_unset=True))


# --------------------------------------------------------------------------- audio codec


def test_codec_roundtrip_energy_and_duration() -> None:
    frames = audio.encode_text_frames(TEXT)
    assert all(len(f) == 160 for f in frames)
    assert len(frames) * 20 >= len(TEXT) * 65 - 20
    assert min(audio.frame_energy(f) for f in frames) > 5000
    assert all(audio.is_speech(f, 500) for f in frames)
    assert audio.decode_text_frames(frames) == TEXT
    # a cut stream decodes to the words actually played; alignment does not matter
    half = audio.decode_text_frames(frames[: len(frames) // 2])
    assert half and TEXT.startswith(half) and half != TEXT
    assert audio.decode_text(b"\xff" * 37 + b"".join(frames)[:]) == TEXT
    # minimum duration, non-ASCII, long tokens
    assert len(audio.encode_text_frames("Hi")) * 20 >= 300
    odd = "Ünïcödé 日本語のテキスト " + "x" * 400
    assert audio.decode_text_frames(audio.encode_text_frames(odd)) == odd.strip()


def test_codec_absent_in_plain_audio() -> None:
    assert audio.frame_energy(audio.SILENCE) == 0.0
    assert not audio.is_speech(audio.SILENCE, 1.0)
    assert audio.decode_text_frames(audio.tone_frames(500)) is None
    assert all(audio.is_speech(f) for f in audio.tone_frames(200))
    sine = audio.ulaw_encode(int(6000 * math.sin(2 * math.pi * 300 * i / 8000)) for i in range(8000))
    assert audio.decode_text(sine) is None
    e = audio.frame_energy(sine[:160])
    assert 3000 < e < 5000  # RMS of a 6000-peak sine ~ 4243
    assert list(audio.ulaw_decode(b"\xff\x00\x80")) == [0, -32124, 32124]


# --------------------------------------------------------------------------- live STT


@pytest.mark.asyncio
async def test_listen_turn_from_codec_audio(dg: StartedStandin) -> None:
    stream = b"".join(audio.silence_frames(200) + audio.encode_text_frames(TEXT) + audio.silence_frames(1400))
    async with dg.client.listen.v1.connect(**TELEPHONY, tag="call-1") as conn:
        # odd-sized binary messages: the stand-in re-splits them into 20 ms frames
        for i in range(0, len(stream), 400):
            await conn.send_media(stream[i : i + 400])
        msgs = await collect(conn, is_type("UtteranceEnd"))
        await conn.send_close_stream()
        tail = await collect(conn, is_type("Metadata"))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(conn.recv(), 2)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000

    for m in msgs + tail:
        strict(m)
    started = [m for m in msgs if isinstance(m, ListenV1SpeechStarted)]
    assert len(started) == 1 and abs(started[0].timestamp - 0.2) < 0.03
    results = [m for m in msgs if isinstance(m, ListenV1Results)]
    interims = [r for r in results if not r.is_final]
    finals = [r for r in results if r.is_final]
    assert interims, "interim results expected"
    for r in interims:
        t = r.channel.alternatives[0].transcript
        assert TEXT.startswith(t) and r.speech_final is False
    assert len(interims) >= 3
    assert len(finals) == 1
    final = finals[0]
    alt = final.channel.alternatives[0]
    assert alt.transcript == TEXT and final.speech_final is True and final.from_finalize is False
    assert [w.punctuated_word for w in alt.words] == TEXT.split()
    assert alt.words[0].word == "hello" and alt.words[2].word == "i'd"
    assert 0.15 < alt.words[0].start < alt.words[-1].end <= 0.2 + len(TEXT) * 0.065 + 0.05
    assert final.channel_index == [0, 1] and final.metadata.model_info.arch == "nova-3"
    assert final.start == 0.0 and final.duration > 3.5
    ue = [m for m in msgs if isinstance(m, ListenV1UtteranceEnd)][0]
    assert ue.last_word_end == alt.words[-1].end
    meta = [m for m in tail if isinstance(m, ListenV1Metadata)][0]
    assert meta.channels == 1 and abs(meta.duration - len(stream) / 8000) < 0.03

    rec = dg.requests()[0]
    assert rec["kind"] == "listen" and rec["tag"] == "call-1"
    assert rec["query"]["encoding"] == "mulaw" and rec["query"]["endpointing"] == "300"
    assert rec["bytes_received"] == len(stream)
    assert [t["transcript"] for t in rec["transcripts"]] == [TEXT]
    assert rec["control"] == {"CloseStream": 1} and rec["close_reason"] == "CloseStream"


@pytest.mark.asyncio
async def test_listen_script_default_noise_and_plain_words(dg: StartedStandin) -> None:
    dg.set_script(["I need to reschedule my appointment."], tag="clinic-a")
    params = dict(TELEPHONY)
    del params["smart_format"]  # no formatting: lowercase words, no punctuation
    utterance = audio.tone_frames(1200) + audio.silence_frames(400)
    blip = audio.tone_frames(100) + audio.silence_frames(400)
    stream = b"".join(utterance + utterance + blip)
    async with dg.client.listen.v1.connect(**params, tag="clinic-a") as conn:
        await conn.send_media(stream)
        await conn.send_close_stream()
        msgs = await collect(conn, is_type("Metadata"))
    finals = [m for m in msgs if isinstance(m, ListenV1Results) and m.is_final]
    for m in finals:
        strict(m)
    texts = [f.channel.alternatives[0].transcript for f in finals]
    assert texts == ["i need to reschedule my appointment", "i'd like to book an appointment", ""]
    assert all(f.speech_final for f in finals)
    assert finals[0].channel.alternatives[0].words[0].punctuated_word is None
    assert len([m for m in msgs if isinstance(m, ListenV1SpeechStarted)]) == 3
    assert dg.requests()[0]["script_lines_used"] == [
        "I need to reschedule my appointment.",
        "I'd like to book an appointment.",
    ]


@pytest.mark.asyncio
async def test_listen_finalize_long_speech_and_silence_results(dg: StartedStandin) -> None:
    dg.configure(max_segment_ms=4000, silence_results_ms=1000)
    long_text = " ".join([f"word{i}" for i in range(60)])  # ~25 s of speech at 65 ms/char
    async with dg.client.listen.v1.connect(**TELEPHONY) as conn:
        await conn.send_media(b"".join(audio.silence_frames(2100)))
        await conn.send_media(b"".join(audio.encode_text_frames(long_text)))
        await conn.send_finalize()
        msgs = await collect(conn, lambda m: getattr(m, "from_finalize", False))
    finals = [m for m in msgs if isinstance(m, ListenV1Results) and m.is_final]
    empties = [f for f in finals if not f.channel.alternatives[0].transcript]
    assert len(empties) == 2  # silence-only windows come back as empty finals
    speech = [f for f in finals if f.channel.alternatives[0].transcript]
    assert len(speech) >= 3 and not any(f.speech_final for f in speech)
    assert speech[-1].from_finalize is True
    assert " ".join(f.channel.alternatives[0].transcript for f in speech) == long_text
    # non-overlapping windows: each final starts where the previous one ended
    for a, b in itertools.pairwise(finals):
        assert abs(a.start + a.duration - b.start) < 1e-6
    assert dg.requests()[0]["control"] == {"Finalize": 1}


@pytest.mark.asyncio
async def test_listen_auth_refusal_and_latency(dg: StartedStandin) -> None:
    bad = async_client(dg.base_url, "wrong")
    with pytest.raises(ApiError) as err:
        async with bad.listen.v1.connect(**TELEPHONY):
            pass
    assert err.value.status_code == 401

    dg.refuse_next(count=1, status=503)
    with pytest.raises(ApiError) as err:
        async with dg.client.listen.v1.connect(**TELEPHONY):
            pass
    assert err.value.status_code == 503

    dg.configure(final_latency_ms=300)
    async with dg.client.listen.v1.connect(**TELEPHONY) as conn:
        await conn.send_media(b"".join(audio.encode_text_frames("Yes please.") + audio.silence_frames(400)))
        t0 = time.monotonic()
        msgs = await collect(conn, lambda m: getattr(m, "is_final", False))
        assert time.monotonic() - t0 >= 0.28
    assert msgs[-1].channel.alternatives[0].transcript == "Yes please."
    statuses = [r["status"] for r in dg.requests()]
    assert statuses == [401, 503, 101]


@pytest.mark.asyncio
async def test_listen_drop_and_idle_timeout(dg: StartedStandin) -> None:
    dg.drop_next(after_s=0.2)
    t0 = time.monotonic()
    async with dg.client.listen.v1.connect(**TELEPHONY) as conn:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(conn.recv(), 3)
    assert 0.15 < time.monotonic() - t0 < 2.0
    assert closed.value.rcvd is None  # abrupt: no close frame (1006)

    dg.configure(idle_timeout_s=0.3)
    async with dg.client.listen.v1.connect(**TELEPHONY) as conn:
        await conn.send_keep_alive()
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(conn.recv(), 3)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    recs = dg.requests()
    assert recs[0]["close_reason"].startswith("dropped")
    assert recs[1]["close_reason"].startswith("idle timeout") and recs[1]["control"] == {"KeepAlive": 1}

    # drop_active cuts a live stream
    async with dg.client.listen.v1.connect(**TELEPHONY) as conn:
        await conn.send_media(audio.SILENCE)
        await asyncio.sleep(0.05)
        assert dg.drop_active("listen") == 1
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(conn.recv(), 3)


@pytest.mark.asyncio
async def test_many_concurrent_streams(dg: StartedStandin) -> None:
    async def one(i: int) -> str:
        text = f"Caller number {i} wants a cleaning."
        async with dg.client.listen.v1.connect(**TELEPHONY) as conn:
            frames = audio.encode_text_frames(text) + audio.silence_frames(400)
            for k in range(0, len(frames), 10):
                await conn.send_media(b"".join(frames[k : k + 10]))
            msgs = await collect(conn, lambda m: getattr(m, "speech_final", False), timeout=20)
            return msgs[-1].channel.alternatives[0].transcript

    got = await asyncio.gather(*(one(i) for i in range(120)))
    assert got == [f"Caller number {i} wants a cleaning." for i in range(120)]


# --------------------------------------------------------------------------- TTS


@pytest.mark.asyncio
async def test_speak_websocket_flush_clear_close(dg: StartedStandin) -> None:
    async with dg.client.speak.v1.connect(model="aura-2-thalia-en", encoding="mulaw", sample_rate=8000) as sp:
        meta = await sp.recv()
        assert isinstance(meta, SpeakV1Metadata) and meta.model_name == "aura-2-thalia-en"
        strict(meta)
        await sp.send_text(SpeakV1Text(text="Sure, Tuesday at ten "))
        await sp.send_text(SpeakV1Text(text="works for us."))
        await sp.send_flush()
        audio_bytes = b""
        msgs = await collect(sp, lambda m: isinstance(m, SpeakV1Flushed))
        audio_bytes = b"".join(m for m in msgs if isinstance(m, bytes))
        assert msgs[-1].type == "Flushed" and msgs[-1].sequence_id == 0
        assert audio.decode_text(audio_bytes) == "Sure, Tuesday at ten works for us."
        assert len(audio_bytes) >= len("Sure, Tuesday at ten works for us.") * 65 * 8 - 160
        assert all(len(m) <= 480 for m in msgs if isinstance(m, bytes))

        # barge-in: real-time pacing so that Clear lands mid-utterance
        dg.configure(tts_realtime_factor=4.0)
        long = "This is a much longer answer that will take several seconds to say out loud."
        await sp.send_text(SpeakV1Text(text=long))
        await sp.send_flush()
        first = await asyncio.wait_for(sp.recv(), 2)
        assert isinstance(first, bytes)
        await asyncio.sleep(0.2)
        await sp.send_clear()
        msgs = await collect(sp, lambda m: getattr(m, "type", None) == "Cleared")
        # SDK quirk: `Cleared` is parsed as SpeakV1Flushed (same shape); check .type
        assert msgs[-1].type == "Cleared" and msgs[-1].sequence_id == 1
        heard = audio.decode_text(first + b"".join(m for m in msgs if isinstance(m, bytes)))
        assert heard and long.startswith(heard) and heard != long
        await sp.send_close()
        with pytest.raises(ConnectionClosed):
            while True:  # nothing else (no Flushed for the cleared flush) before the close
                m = await asyncio.wait_for(sp.recv(), 2)
                assert isinstance(m, bytes)
    rec = dg.requests()[-1]
    assert rec["speak_texts"] == ["Sure, Tuesday at ten ", "works for us.", long]
    assert rec["flushes"] == 2 and rec["clears"] == 1 and rec["events"] == {"Flushed": 1}


@pytest.mark.asyncio
async def test_speak_websocket_errors_and_first_byte_latency(dg: StartedStandin) -> None:
    with pytest.raises(ApiError) as err:
        async with dg.client.speak.v1.connect(model="aura-2-nobody-en", encoding="mulaw", sample_rate=8000):
            pass
    assert err.value.status_code == 400
    bad = async_client(dg.base_url, "nope")
    with pytest.raises(ApiError) as err:
        async with bad.speak.v1.connect(model="aura-2-thalia-en", encoding="mulaw", sample_rate=8000):
            pass
    assert err.value.status_code == 401

    dg.configure(tts_first_byte_ms=250)
    async with dg.client.speak.v1.connect(model="aura-2-thalia-en", encoding="mulaw", sample_rate=8000) as sp:
        await sp.recv()  # Metadata
        await sp.send_text(SpeakV1Text(text="One moment."))
        t0 = time.monotonic()
        await sp.send_flush()
        first = await asyncio.wait_for(sp.recv(), 2)
        assert isinstance(first, bytes) and time.monotonic() - t0 >= 0.24


@pytest.mark.asyncio
async def test_speak_rest(dg: StartedStandin) -> None:
    text = "Your appointment is confirmed."
    chunks = [
        c
        async for c in dg.client.speak.v1.audio.generate(
            text=text, model="aura-2-thalia-en", encoding="mulaw", sample_rate=8000, container="none"
        )
    ]
    raw = b"".join(chunks)
    assert audio.decode_text(raw) == text and len(raw) % 160 == 0
    wav = b"".join(
        [
            c
            async for c in dg.client.speak.v1.audio.generate(
                text=text, model="aura-2-thalia-en", encoding="mulaw", sample_rate=8000
            )
        ]
    )
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE" and wav.endswith(raw)

    bad = async_client(dg.base_url, "nope")
    with pytest.raises(ApiError) as err:
        async for _ in bad.speak.v1.audio.generate(
            text=text, model="aura-2-thalia-en", encoding="mulaw", sample_rate=8000, container="none"
        ):
            pass
    assert err.value.status_code == 401
    assert err.value.body["err_code"] == "INVALID_AUTH"
    assert err.value.body["err_msg"] == "Invalid credentials."
    assert [r["kind"] for r in dg.requests()] == ["speak_rest"] * 3


# --------------------------------------------------------------------------- threads + control API


def test_thread_mode_sync_sdk_and_http_control_api() -> None:
    server = DeepgramStandin()  # any non-empty key
    url = server.start_in_thread()
    try:

        async def control() -> None:
            async with aiohttp.ClientSession() as http:
                r = await http.post(url + "/_standin/script", json={"tag": "t9", "lines": ["Cancel it please."]})
                assert r.status == 200
                r = await http.post(url + "/_standin/config", json={"max_segment_ms": 0})
                assert r.status == 200
                r = await http.post(url + "/_standin/config", json={"nope": 1})
                assert r.status == 400

        asyncio.run(control())
        client = DeepgramClient(api_key="anything", environment=env_for(url))
        with client.listen.v1.connect(**TELEPHONY, tag="t9") as conn:
            conn.send_media(b"".join(audio.tone_frames(800) + audio.silence_frames(400)))
            conn.send_close_stream()
            finals = [m for m in conn if isinstance(m, ListenV1Results) and m.is_final]
        assert [f.channel.alternatives[0].transcript for f in finals] == ["Cancel it please."]

        async def check() -> None:
            async with aiohttp.ClientSession() as http:
                data = await (await http.get(url + "/_standin/requests")).json()
                (conn_rec,) = data["connections"]
                assert conn_rec["tag"] == "t9" and conn_rec["transcripts"][0]["transcript"] == "Cancel it please."
                await http.post(url + "/_standin/reset")
                data = await (await http.get(url + "/_standin/connections")).json()
                assert data["connections"] == []

        asyncio.run(check())
    finally:
        server.stop_thread()
