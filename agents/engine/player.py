"""Outbound audio to Twilio, paced near real time.

One timer per call: 160-byte mu-law frames (20 ms) go out on a monotonic schedule with
a small lead (so Twilio's buffer never runs dry), never a sleep per frame on a busy loop.
Marks go after chunks (a sentence's audio), not frames: Twilio echoes a mark once the
audio before it has played, which is how the engine knows what the caller heard.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

FRAME_BYTES = 160
FRAME_SECONDS = 0.02
SILENCE_BYTE = 0xFF
EARLY_FRAMES = 0.1  # 2 ms


class AudioPlayer:
    def __init__(
        self,
        send_media: Callable[[bytes], Awaitable[None]],
        send_mark: Callable[[str], Awaitable[None]],
        lead_frames: int = 10,
    ) -> None:
        self._send_media = send_media
        self._send_mark = send_mark
        self._lead = lead_frames
        self._buffer = bytearray()
        self._sent = 0  # frames sent in this talk spurt (for pacing)
        self._position = 0  # frames sent since the call started (marks are placed on this)
        self._marks: deque[tuple[int, str]] = deque()  # (after frame n, name), not yet sent
        self._outstanding: list[str] = []  # marks sent, not yet echoed by Twilio
        self._wakeup = asyncio.Event()
        self._t0 = 0.0
        self._closed = False
        self.frames_sent_total = 0
        self.on_first_frame: Callable[[], None] | None = None

    # --- producer side -----------------------------------------------------------------
    def enqueue(self, audio: bytes) -> None:
        self._buffer += audio
        self._wakeup.set()

    def mark(self, name: str) -> None:
        """A mark after everything enqueued so far (a partial last frame is padded)."""
        remainder = len(self._buffer) % FRAME_BYTES
        if remainder:
            self._buffer += bytes([SILENCE_BYTE]) * (FRAME_BYTES - remainder)
        self._marks.append((self._position + len(self._buffer) // FRAME_BYTES, name))
        self._wakeup.set()

    def clear(self) -> list[str]:
        """Drop everything not yet sent (barge-in). Returns marks that will now never play."""
        dropped = [name for _, name in self._marks] + self._outstanding
        self._buffer.clear()
        self._marks.clear()
        self._outstanding = []
        self._sent = 0
        return dropped

    def acknowledge(self, name: str) -> bool:
        """Twilio echoed a mark: that audio has played. False for an unknown/cleared mark."""
        if name in self._outstanding:
            self._outstanding.remove(name)
            return True
        return False

    @property
    def speaking(self) -> bool:
        return bool(self._buffer) or bool(self._marks) or bool(self._outstanding)

    @property
    def pending_seconds(self) -> float:
        return len(self._buffer) / FRAME_BYTES * FRAME_SECONDS

    def close(self) -> None:
        self._closed = True
        self._wakeup.set()

    # --- the timer ---------------------------------------------------------------------
    async def run(self) -> None:
        # 50 frames a second per call: the loop does only what each frame needs (no
        # coroutine call per frame besides the send, marks checked only when due).
        loop = asyncio.get_running_loop()
        buffer = self._buffer  # cleared in place, never replaced
        marks = self._marks
        send_media = self._send_media
        in_spurt = False
        while not self._closed:
            if len(buffer) < FRAME_BYTES:
                await self._send_due_marks()  # marks after the last audio
                in_spurt = False
                self._wakeup.clear()
                if len(buffer) < FRAME_BYTES and not self._closed:
                    await self._wakeup.wait()
                continue
            if not in_spurt:  # a talk spurt starts: its clock starts now
                in_spurt = True
                self._t0 = loop.time()
                self._sent = 0
            # A frame may go up to EARLY_FRAMES early: the event loop's timers have 1 ms
            # resolution, and waiting for the exact instant would spin (we keep a lead anyway).
            due = int((loop.time() - self._t0) / FRAME_SECONDS + EARLY_FRAMES) + 1 + self._lead
            while self._sent < due and len(buffer) >= FRAME_BYTES:
                frame = bytes(buffer[:FRAME_BYTES])
                del buffer[:FRAME_BYTES]
                self._sent += 1
                self._position += 1
                self.frames_sent_total += 1
                if self.on_first_frame is not None:
                    callback, self.on_first_frame = self.on_first_frame, None
                    callback()
                await send_media(frame)
                if marks and marks[0][0] <= self._position:
                    await self._send_due_marks()
            if len(buffer) >= FRAME_BYTES:
                await asyncio.sleep(max(self._t0 + (self._sent - self._lead) * FRAME_SECONDS - loop.time(), 0.001))

    async def _send_due_marks(self) -> None:
        while self._marks and self._marks[0][0] <= self._position:
            _, name = self._marks.popleft()
            self._outstanding.append(name)
            await self._send_mark(name)
