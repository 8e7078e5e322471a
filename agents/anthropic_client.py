"""The one module that talks to Anthropic (through the `anthropic` SDK): streaming replies
during calls, and one-shot completions (post-call summaries) in workers."""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import anthropic
from django.conf import settings

logger = logging.getLogger(__name__)

_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anthropic.AsyncAnthropic]" = weakref.WeakKeyDictionary()


def async_client() -> anthropic.AsyncAnthropic:
    """One SDK client per event loop. No SDK retries mid-call: the engine decides (fast)."""
    loop = asyncio.get_running_loop()
    existing = _clients.get(loop)
    if existing is None:
        existing = anthropic.AsyncAnthropic(api_key=settings.ANTHROPIC_API_KEY, base_url=settings.ANTHROPIC_BASE_URL,
                                            max_retries=0, timeout=settings.LLM_TIMEOUT_SECONDS)
        _clients[loop] = existing
    return existing


def sync_client() -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=settings.ANTHROPIC_API_KEY, base_url=settings.ANTHROPIC_BASE_URL,
                               max_retries=settings.ANTHROPIC_MAX_RETRIES, timeout=60.0)


class LlmFailure(Exception):
    """Claude failed or timed out (HTTP error, mid-stream error event, connection)."""


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ToolCall:
    name: str
    input: dict[str, Any] = field(default_factory=dict)


async def stream_reply(*, model: str, system: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
                       max_tokens: int = 300,
                       first_token_timeout: float | None = None) -> AsyncIterator[TextDelta | ToolCall]:
    """Claude's reply as it streams: text deltas, then any tool calls.

    Raw events (`create(stream=True)`), not the `messages.stream()` helper: the helper
    rebuilds a snapshot of the whole message on every event, which costs the live path
    milliseconds per turn for nothing here.
    """
    first_token_timeout = first_token_timeout or settings.LLM_FIRST_TOKEN_TIMEOUT_SECONDS
    tool_name: str | None = None
    tool_json: list[str] = []
    calls: list[ToolCall] = []
    try:
        # anthropic 2.x has no sampling parameters (temperature) on Messages any more.
        stream = await asyncio.wait_for(async_client().messages.create(
            model=model, system=system, messages=messages, tools=tools or anthropic.NOT_GIVEN,
            max_tokens=max_tokens, stream=True), first_token_timeout)
        async with stream:
            iterator = stream.__aiter__()
            first = True
            while True:
                try:
                    event = await (asyncio.wait_for(iterator.__anext__(), first_token_timeout) if first
                                   else iterator.__anext__())
                except StopAsyncIteration:
                    break
                except asyncio.TimeoutError:
                    raise LlmFailure("no first token in time") from None
                kind = event.type
                if kind == "content_block_delta":
                    first = False
                    delta = event.delta
                    if delta.type == "text_delta":
                        if delta.text:
                            yield TextDelta(delta.text)
                    elif delta.type == "input_json_delta":
                        tool_json.append(delta.partial_json)
                elif kind == "content_block_start" and event.content_block.type == "tool_use":
                    tool_name, tool_json = event.content_block.name, []
                elif kind == "content_block_stop" and tool_name is not None:
                    calls.append(ToolCall(name=tool_name, input=_tool_input("".join(tool_json))))
                    tool_name = None
    except asyncio.TimeoutError:
        raise LlmFailure("Claude did not answer in time") from None
    except (anthropic.APIError, anthropic.APIConnectionError) as exc:
        raise LlmFailure(f"{type(exc).__name__}: {getattr(exc, 'message', exc)}") from None
    for call in calls:
        yield call


def _tool_input(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def complete_json(*, model: str, system: str, prompt: str, max_tokens: int = 600) -> str:
    """A one-shot, non-streaming completion (worker side). Returns the text."""
    try:
        message = sync_client().messages.create(model=model, system=system, max_tokens=max_tokens,
                                                messages=[{"role": "user", "content": prompt}])
    except (anthropic.APIError, anthropic.APIConnectionError) as exc:
        raise LlmFailure(f"{type(exc).__name__}: {getattr(exc, 'message', exc)}") from None
    return "".join(block.text for block in message.content if block.type == "text")
