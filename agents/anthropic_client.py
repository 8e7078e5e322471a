"""The one module that talks to Anthropic (through the `anthropic` SDK): streaming replies
during calls, and one-shot completions (post-call summaries) in workers.

The live path pays for every turn on the event loop that carries all the calls' audio, so
a turn costs as little as the SDK allows: one client per process (created and warmed when
the server starts, see `warm`), aiohttp as its HTTP transport (the SDK's own option, with
a C HTTP parser), and the reply's server-sent events read raw, decoding only the JSON of
the events the engine uses.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import anthropic
from anthropic.types import MessageParam, ToolUnionParam
from django.conf import settings

logger = logging.getLogger(__name__)

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anthropic.AsyncAnthropic] = weakref.WeakKeyDictionary()


def async_client() -> anthropic.AsyncAnthropic:
    """One SDK client per event loop (its connection pool is bound to the loop). No SDK
    retries mid-call: the engine decides (fast)."""
    loop = asyncio.get_running_loop()
    existing = _clients.get(loop)
    if existing is None:
        existing = anthropic.AsyncAnthropic(
            api_key=settings.ANTHROPIC_API_KEY,
            base_url=settings.ANTHROPIC_BASE_URL,
            max_retries=0,
            timeout=settings.LLM_TIMEOUT_SECONDS,
            http_client=anthropic.DefaultAioHttpClient(),
        )
        _clients[loop] = existing
    return existing


async def close() -> None:
    """Close this loop's client (its connection pool), at server stop."""
    client = _clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.close()


def sync_client() -> anthropic.Anthropic:
    return anthropic.Anthropic(
        api_key=settings.ANTHROPIC_API_KEY,
        base_url=settings.ANTHROPIC_BASE_URL,
        max_retries=settings.ANTHROPIC_MAX_RETRIES,
        timeout=60.0,
    )


async def warm() -> None:
    """Create this loop's client and take every step of a turn once, so the first caller
    turn after a start costs what the others do: the SDK's first request (its request
    building, the aiohttp session, the SSL context) through a free request (token
    counting) with the shape of a turn's, and the parsing of a reply's events. (Pooled
    connections expire after a few idle seconds: the first call may still open one.)
    A failure here only costs the warm-up."""
    client = async_client()
    try:
        await client.messages.count_tokens(
            model=settings.DEFAULT_CLAUDE_MODEL,
            system="Warm-up.",
            messages=[{"role": "user", "content": "Hello"}],
            tools=[
                {
                    "name": "end_call",
                    "description": "End the call.",
                    "input_schema": {"type": "object", "properties": {}},
                }
            ],
            timeout=5.0,
        )
    except (anthropic.APIError, anthropic.APIConnectionError) as exc:
        logger.warning("anthropic warm-up request failed: %s", type(exc).__name__)
    async for _ in _reply_events(_warmup_reply(), deadline=None):
        pass


class LlmFailure(Exception):
    """Claude failed or timed out (HTTP error, mid-stream error event, connection)."""


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ToolCall:
    name: str
    input: dict[str, Any] = field(default_factory=dict)


async def stream_reply(
    *,
    model: str,
    system: str,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]],
    max_tokens: int = 300,
    first_token_timeout: float | None = None,
) -> AsyncIterator[TextDelta | ToolCall]:
    """Claude's reply as it streams: text deltas, then any tool calls."""
    deadline = asyncio.get_running_loop().time() + (first_token_timeout or settings.LLM_FIRST_TOKEN_TIMEOUT_SECONDS)
    request = async_client().messages.with_streaming_response.create(
        model=model,
        system=system,
        # The engine builds plain dicts of the API's shape (the SDK's TypedDicts at run time).
        messages=cast("list[MessageParam]", messages),
        tools=cast("list[ToolUnionParam]", tools) if tools else anthropic.omit,
        max_tokens=max_tokens,
        stream=True,
    )
    try:
        async with asyncio.timeout_at(deadline):
            response = await request.__aenter__()
    except TimeoutError:
        raise LlmFailure("Claude did not answer in time") from None
    except (anthropic.APIError, anthropic.APIConnectionError) as exc:
        raise LlmFailure(f"{type(exc).__name__}: {getattr(exc, 'message', exc)}") from None
    try:
        async for event in _reply_events(response.http_response.aiter_bytes(), deadline):
            yield event
    except (anthropic.APIError, anthropic.APIConnectionError) as exc:
        raise LlmFailure(f"{type(exc).__name__}: {getattr(exc, 'message', exc)}") from None
    finally:
        await request.__aexit__(None, None, None)


async def _reply_events(chunks: AsyncIterator[bytes], deadline: float | None) -> AsyncIterator[TextDelta | ToolCall]:
    """Text deltas from the raw event stream, then the tool calls. `deadline` (loop time)
    is for the first content; it is lifted as content starts, before anything is yielded:
    a deadline must never fire while the consumer of this generator runs."""
    tool_name: str | None = None
    tool_json: list[str] = []
    calls: list[ToolCall] = []
    waiting = True
    try:
        async with asyncio.timeout_at(deadline) as first_token:
            async for name, data in _server_sent_events(chunks):
                if name == "content_block_delta":
                    if waiting:
                        waiting = False
                        first_token.reschedule(None)
                    delta = json.loads(data)["delta"]
                    if delta["type"] == "text_delta":
                        if delta["text"]:
                            yield TextDelta(delta["text"])
                    elif delta["type"] == "input_json_delta":
                        tool_json.append(delta["partial_json"])
                elif name == "content_block_start":
                    block = json.loads(data)["content_block"]
                    if block["type"] == "tool_use":
                        tool_name, tool_json = block["name"], []
                elif name == "content_block_stop" and tool_name is not None:
                    calls.append(ToolCall(name=tool_name, input=_tool_input("".join(tool_json))))
                    tool_name = None
                elif name == "error":
                    error = json.loads(data).get("error") or {}
                    raise LlmFailure(f"{error.get('type', 'error')}: {error.get('message', '')}")
    except TimeoutError:
        raise LlmFailure("no first token in time") from None
    for call in calls:
        yield call


async def _server_sent_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[str, bytes]]:
    """(event name, data) of each event of a text/event-stream body."""
    pending = b""
    name = ""
    data: list[bytes] = []
    async for chunk in chunks:
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if data:
                    yield name or "message", b"\n".join(data)
                name, data = "", []
            elif line.startswith(b"data:"):
                data.append(line[6:] if line.startswith(b"data: ") else line[5:])
            elif line.startswith(b"event:"):
                name = line[6:].strip().decode()


async def _warmup_reply() -> AsyncIterator[bytes]:
    """A reply with text and a tool call, as the API streams it."""
    for name, payload in (
        ("message_start", {"type": "message_start", "message": {"id": "msg_warm", "type": "message"}}),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello."}},
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "id": "toolu_warm", "name": "end_call", "input": {}},
            },
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{}"}},
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        ("message_stop", {"type": "message_stop"}),
    ):
        yield f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode()


def _tool_input(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def complete_json(*, model: str, system: str, prompt: str, max_tokens: int = 600) -> str:
    """A one-shot, non-streaming completion (worker side). Returns the text."""
    try:
        message = sync_client().messages.create(
            model=model, system=system, max_tokens=max_tokens, messages=[{"role": "user", "content": prompt}]
        )
    except (anthropic.APIError, anthropic.APIConnectionError) as exc:
        raise LlmFailure(f"{type(exc).__name__}: {getattr(exc, 'message', exc)}") from None
    return "".join(block.text for block in message.content if block.type == "text")
