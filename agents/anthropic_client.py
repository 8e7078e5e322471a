"""The one module that talks to Anthropic (through the `anthropic` SDK): streaming replies
during calls, and one-shot completions (post-call summaries) in workers."""

from __future__ import annotations

import asyncio
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
    """Claude's reply as it streams: text deltas, then any tool calls."""
    first_token_timeout = first_token_timeout or settings.LLM_FIRST_TOKEN_TIMEOUT_SECONDS
    try:
        async with async_client().messages.stream(
            # anthropic 2.x has no sampling parameters (temperature) on Messages any more.
            model=model, system=system, messages=messages, tools=tools or anthropic.NOT_GIVEN,
            max_tokens=max_tokens,
        ) as stream:
            iterator = stream.text_stream.__aiter__()
            first = True
            while True:
                try:
                    if first:
                        text = await asyncio.wait_for(iterator.__anext__(), first_token_timeout)
                    else:
                        text = await iterator.__anext__()
                except StopAsyncIteration:
                    break
                except asyncio.TimeoutError:
                    raise LlmFailure("no first token in time") from None
                first = False
                if text:
                    yield TextDelta(text)
            final = await stream.get_final_message()
    except (anthropic.APIError, anthropic.APIConnectionError) as exc:
        raise LlmFailure(f"{type(exc).__name__}: {getattr(exc, 'message', exc)}") from None
    for block in final.content:
        if block.type == "tool_use":
            yield ToolCall(name=block.name, input=dict(block.input or {}))


def complete_json(*, model: str, system: str, prompt: str, max_tokens: int = 600) -> str:
    """A one-shot, non-streaming completion (worker side). Returns the text."""
    try:
        message = sync_client().messages.create(model=model, system=system, max_tokens=max_tokens,
                                                messages=[{"role": "user", "content": prompt}])
    except (anthropic.APIError, anthropic.APIConnectionError) as exc:
        raise LlmFailure(f"{type(exc).__name__}: {getattr(exc, 'message', exc)}") from None
    return "".join(block.text for block in message.content if block.type == "text")
