"""Claude's streamed replies, read raw from the event stream: the same text deltas, tool
calls and failures as the SDK's own event objects gave, for a fraction of the CPU."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agents import anthropic_client
from agents.anthropic_client import LlmFailure, TextDelta, ToolCall

TOOLS = [
    {
        "name": "end_call",
        "description": "End the call.",
        "input_schema": {"type": "object", "properties": {"goodbye": {"type": "string"}}},
    }
]


def _stream(events: list[tuple[str, dict[str, Any]]], newline: str = "\n") -> bytes:
    return "".join(
        f"event: {name}{newline}data: {json.dumps(data)}{newline}{newline}" for name, data in events
    ).encode()


EVENTS: list[tuple[str, dict[str, Any]]] = [
    ("message_start", {"type": "message_start", "message": {"id": "msg_1", "type": "message"}}),
    ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    ("ping", {"type": "ping"}),
    (
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": 'Caf\u00e9 "open"\nat 9.'}},
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ("message_stop", {"type": "message_stop"}),
]


async def _chunks(body: bytes, cut: int) -> AsyncIterator[bytes]:
    yield body[:cut]
    yield body[cut:]


async def _events(body: bytes, cut: int) -> list[tuple[str, Any]]:
    return [(name, json.loads(data)) async for name, data in anthropic_client._server_sent_events(_chunks(body, cut))]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
async def test_events_are_parsed_wherever_the_network_cuts_the_stream(newline: str) -> None:
    body = _stream(EVENTS, newline)
    for cut in range(len(body) + 1):
        assert await _events(body, cut) == EVENTS, cut


@pytest.fixture
async def claude(providers: Any) -> AsyncIterator[Any]:
    standin = providers["anthropic"]
    standin.reset()
    yield standin
    standin.reset()
    await anthropic_client.close()


async def _reply(**kwargs: Any) -> list[Any]:
    events: list[Any] = []
    try:
        async for event in anthropic_client.stream_reply(
            model="claude-haiku-4-5",
            system="You are a receptionist.",
            tools=TOOLS,
            messages=[{"role": "user", "content": "Thanks, goodbye"}],
            **kwargs,
        ):
            events.append(event)
    except LlmFailure as exc:
        events.append(exc)
    return events


async def test_a_reply_streams_as_text_deltas_then_its_tool_calls(claude: Any) -> None:
    claude.add_rule(
        "Goodbye, and thanks for calling!", match="goodbye", tool={"name": "end_call", "input": {"goodbye": "Bye!"}}
    )
    events = await _reply()
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Goodbye, and thanks for calling!"
    assert len([e for e in events if isinstance(e, TextDelta)]) > 1  # streamed, not in one piece
    assert events[-1] == ToolCall(name="end_call", input={"goodbye": "Bye!"})
    assert claude.requests()[-1]["stream"] is True


async def test_failures_become_llm_failures(claude: Any) -> None:
    claude.error_mid_stream(after_tokens=1)
    events = await _reply()
    assert isinstance(events[0], TextDelta) and isinstance(events[-1], LlmFailure)
    assert "overloaded" in str(events[-1])

    claude.fail_next(status=529)
    [failure] = await _reply()
    assert isinstance(failure, LlmFailure) and "529" in str(failure)


async def test_no_first_token_in_time_is_a_failure_at_the_deadline(claude: Any) -> None:
    claude.hang_next(seconds=5)  # no bytes at all
    started = time.monotonic()
    [failure] = await _reply(first_token_timeout=0.3)
    assert isinstance(failure, LlmFailure) and time.monotonic() - started < 2

    claude.configure(ttft_ms=1500)  # headers at once, the first token late
    started = time.monotonic()
    [failure] = await _reply(first_token_timeout=0.3)
    assert isinstance(failure, LlmFailure) and "first token" in str(failure)
    assert time.monotonic() - started < 1.2


async def test_a_slow_reply_after_its_first_token_is_not_cut_off(claude: Any) -> None:
    claude.configure(tokens_per_s=10)  # ~1 s for the whole reply, well past the first-token deadline
    text = "One two three four five six seven eight nine ten."
    claude.add_rule(text, match="goodbye")
    events = await _reply(first_token_timeout=0.3)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == text
