"""The engine's own safety net: a task of the call that dies (here the player, because
the media socket it writes to is broken) is logged and ends the call through the
platform's `abort` hook, once, instead of leaving the caller in silence. Deepgram is the
stand-in, reached through the real SDK."""

from __future__ import annotations

import asyncio
from typing import Any

from agents.engine.conversation import CallHooks, CallSetup, Conversation, EndReason
from agents.voices import DEFAULT_VOICE_ID


class BrokenSocket:
    """The media stream as the consumer gives it to the engine, after the socket broke."""

    async def send_media(self, frame: bytes) -> None:
        raise RuntimeError("the media socket is gone")

    async def send_mark(self, name: str) -> None:
        pass

    async def send_clear(self) -> None:
        pass


async def _twilio_is_not_reached(*args: Any) -> None:
    raise AssertionError("no Twilio action is expected")


async def test_an_engine_task_that_dies_ends_the_call_once(providers, caplog) -> None:
    aborts: list[tuple[EndReason, BaseException | None]] = []
    aborted = asyncio.Event()

    def abort(reason: EndReason, error: BaseException | None) -> None:
        aborts.append((reason, error))
        aborted.set()

    setup = CallSetup(
        call_id="call_enginefailure",
        schema_name="public",
        system_prompt="You answer calls.",
        tools=[],
        first_message="Thanks for calling!",
        model="claude-sonnet-4-6",
        voice_id=DEFAULT_VOICE_ID,
        language="en",
        endpointing_ms=300,
        utterance_end_ms=1000,
        silence_timeout_seconds=30,
        max_call_seconds=60,
    )
    hooks = CallHooks(
        hang_up=_twilio_is_not_reached,
        transfer=_twilio_is_not_reached,
        say_and_hang_up=_twilio_is_not_reached,
        abort=abort,
    )
    conversation = Conversation(setup, sink=BrokenSocket(), hooks=hooks)
    await conversation.start()
    await asyncio.wait_for(aborted.wait(), 10)  # the greeting's first frame breaks the player

    outcome = await conversation.finish(aborts[0][0])
    assert [(reason, type(error)) for reason, error in aborts] == [(EndReason.STREAM_ERROR, RuntimeError)]
    assert outcome.end_reason == "stream_error"
    assert outcome.transcript[0]["text"] == "Thanks for calling!"
    assert any("player-call_enginefailure failed" in r.getMessage() for r in caplog.records)
    assert await conversation.finish(EndReason.STREAM_CLOSED) is outcome  # once
