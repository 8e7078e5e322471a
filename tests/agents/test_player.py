"""Outbound pacing: 20 ms frames with a small lead, marks after their audio, clear."""

from __future__ import annotations

import asyncio
import time

from agents.engine.player import FRAME_BYTES, AudioPlayer


class Sink:
    def __init__(self) -> None:
        self.events: list[tuple[float, str, object]] = []

    async def media(self, frame: bytes) -> None:
        self.events.append((time.monotonic(), "media", len(frame)))

    async def mark(self, name: str) -> None:
        self.events.append((time.monotonic(), "mark", name))


async def _play(audio_frames: int, lead: int = 5, mark: str | None = "m1") -> tuple[Sink, AudioPlayer]:
    sink = Sink()
    player = AudioPlayer(sink.media, sink.mark, lead_frames=lead)
    task = asyncio.create_task(player.run())
    player.enqueue(b"\x00" * (FRAME_BYTES * audio_frames + 37))  # a partial last frame
    if mark:
        player.mark(mark)
    await asyncio.sleep(audio_frames * 0.02 + 0.15)
    player.close()
    await task
    return sink, player


async def test_frames_are_paced_in_real_time_after_the_lead() -> None:
    sink, player = await _play(50, lead=5)
    media = [t for t, kind, _ in sink.events if kind == "media"]
    assert len(media) == 51  # the partial frame was padded, not dropped
    assert all(size == FRAME_BYTES for _, kind, size in sink.events if kind == "media")
    start = media[0]
    # Frame k goes out about (k - lead) * 20 ms after the first: never much later.
    lateness = [t - (start + max(0, k - 5) * 0.02) for k, t in enumerate(media)]
    assert max(lateness) < 0.015
    assert media[-1] - start > 0.8  # not dumped at once


async def test_mark_follows_its_audio_and_is_acknowledged() -> None:
    sink, player = await _play(10)
    kinds = [kind for _, kind, _ in sink.events]
    assert kinds[-1] == "mark" and kinds.count("media") == 11
    assert player.speaking  # sent, not yet echoed by Twilio
    assert player.acknowledge("m1") is True and not player.speaking
    assert player.acknowledge("m1") is False


async def test_clear_drops_unsent_audio_and_marks() -> None:
    sink = Sink()
    player = AudioPlayer(sink.media, sink.mark, lead_frames=2)
    task = asyncio.create_task(player.run())
    player.enqueue(b"\x00" * FRAME_BYTES * 100)
    player.mark("late")
    await asyncio.sleep(0.1)
    dropped = player.clear()
    await asyncio.sleep(0.1)
    player.close()
    await task
    assert dropped == ["late"]
    assert [kind for _, kind, _ in sink.events].count("media") < 15
    assert "mark" not in [kind for _, kind, _ in sink.events]
    assert not player.speaking
