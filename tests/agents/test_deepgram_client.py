"""What the Deepgram client does per socket and per frame, kept off the event loop's
budget: no package metadata read per socket opened, no system call per frame's mask."""

from __future__ import annotations

import asyncio
import importlib.metadata
from typing import Any

import pytest
import websockets.frames
from websockets.frames import Frame, Opcode

from agents import deepgram_client


async def test_opening_a_socket_reads_no_package_metadata(providers: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    deepgram_client.client()  # the SDK client of this loop: its headers are built here, once

    def no_metadata(name: str) -> str:
        raise AssertionError(f"package metadata read for {name} while opening a socket")

    monkeypatch.setattr(importlib.metadata, "version", no_metadata)
    tts = deepgram_client.TextToSpeech(
        "aura-asteria-en", on_audio=lambda audio: None, on_flushed=lambda: None, max_reconnects=0
    )
    reader = asyncio.create_task(tts.run())
    try:
        assert await tts.wait_connected(5)
    finally:
        await tts.close()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)


def test_frames_sent_to_deepgram_are_masked_with_keys_that_change() -> None:
    audio = bytes(range(160))
    frames = [Frame(Opcode.BINARY, audio).serialize(mask=True, extensions=[]) for _ in range(50)]
    keys = {frame[4:8] for frame in frames}  # 2-byte header, 2-byte length, then the key
    assert len(keys) > 45
    for frame in frames:
        key = frame[4:8]
        assert bytes(b ^ key[i % 4] for i, b in enumerate(frame[8:])) == audio
    # Drawn from a generator seeded once, not from os.urandom per frame (a system call).
    assert isinstance(websockets.frames.secrets, deepgram_client._MaskingKeys)
