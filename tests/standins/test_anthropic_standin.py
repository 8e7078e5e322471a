"""The Anthropic Messages stand-in, driven through the real anthropic SDK (2.x)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import aiohttp
import anthropic
import pytest
import pytest_asyncio
from anthropic.types import ContentBlockParam, Message, MessageParam, TextBlock, ToolParam

from standins.anthropic_api import AnthropicStandin

KEY = "test-anthropic-key"
MODEL = "claude-sonnet-4-6"  # the SDK warns (DeprecationWarning) for claude-sonnet-4-5
TOOLS: list[ToolParam] = [
    {
        "name": "end_call",
        "description": "Hang up once the caller is done.",
        "input_schema": {"type": "object", "properties": {"reason": {"type": "string"}}, "required": ["reason"]},
    }
]


class StartedStandin(AnthropicStandin):
    """The fixture's stand-in: started (so `base_url` is set), with an SDK client pointed at it."""

    base_url: str
    client: anthropic.AsyncAnthropic


@pytest_asyncio.fixture
async def ant() -> AsyncIterator[StartedStandin]:
    server = StartedStandin(api_key=KEY)
    url = await server.start()
    server.client = anthropic.AsyncAnthropic(api_key=KEY, base_url=url, max_retries=0)
    try:
        yield server
    finally:
        await server.client.close()
        await server.stop()


def user(text: str) -> list[MessageParam]:
    return [{"role": "user", "content": text}]


def first_text(message: Message) -> str:
    """The text of a reply's first block (a text block in every reply checked here)."""
    block = message.content[0]
    assert isinstance(block, TextBlock), block
    return block.text


@pytest.mark.asyncio
async def test_streaming_text_default_reply(ant: StartedStandin) -> None:
    async with ant.client.messages.stream(
        model=MODEL, max_tokens=300, system="You are Nixflex.", messages=user("I'd like to book a cleaning.")
    ) as stream:
        pieces = [t async for t in stream.text_stream]
        final = await stream.get_final_message()
    expected = "Thanks! You said: I'd like to book a cleaning. Is there anything else?"
    assert "".join(pieces) == expected and len(pieces) == len(expected.split())
    assert first_text(final) == expected
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == len(pieces)
    assert final.usage.input_tokens > 0 and final.id.startswith("msg_")


@pytest.mark.asyncio
async def test_raw_event_order(ant: StartedStandin) -> None:
    stream = await ant.client.messages.create(model=MODEL, max_tokens=50, stream=True, messages=user("hi"))
    types = [e.type async for e in stream]
    assert types[0] == "message_start" and types[1] == "content_block_start"
    assert set(types[2:-3]) == {"content_block_delta"}
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]

    # the wire itself: every event has an event: line and a data: line, ping included
    async with aiohttp.ClientSession() as http:
        r = await http.post(
            ant.base_url + "/v1/messages",
            headers={"x-api-key": KEY, "anthropic-version": "2023-06-01", "content-type": "application/json"},
            json={"model": MODEL, "max_tokens": 50, "stream": True, "messages": user("hi")},
        )
        assert r.headers["Content-Type"].startswith("text/event-stream")
        body = (await r.read()).decode()
    events = [blk.split("\n") for blk in body.strip().split("\n\n")]
    names = [e[0].removeprefix("event: ") for e in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    for e in events:
        assert e[0].startswith("event: ") and e[1].startswith("data: ")
        assert json.loads(e[1][6:])["type"] == e[0][7:]


@pytest.mark.asyncio
async def test_tool_use_streaming_and_tool_result(ant: StartedStandin) -> None:
    ant.set_script(
        [
            {
                "match": "BYE",
                "text": "Goodbye, have a nice day!",
                "tool": {"name": "end_call", "input": {"reason": "caller said goodbye"}},
            }
        ]
    )
    msgs = user("ok thanks, bye")
    async with ant.client.messages.stream(model=MODEL, max_tokens=300, tools=TOOLS, messages=msgs) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text == "Goodbye, have a nice day!"
    assert final.stop_reason == "tool_use"
    tool = final.content[1]
    assert tool.type == "tool_use" and tool.name == "end_call" and tool.input == {"reason": "caller said goodbye"}

    # answering the tool: a short text, the tool rule does not fire again
    # The reply goes back as the assistant turn: its blocks dumped to the wire dicts the params describe.
    echoed = cast(
        "list[ContentBlockParam]",
        [b.model_dump(exclude_none=True, include={"type", "text", "id", "name", "input"}) for b in final.content],
    )
    follow: list[MessageParam] = msgs + [
        {"role": "assistant", "content": echoed},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool.id, "content": "ended"}]},
    ]
    reply = await ant.client.messages.create(model=MODEL, max_tokens=100, tools=TOOLS, messages=follow)
    assert first_text(reply) == "Okay, that's done." and reply.stop_reason == "end_turn"

    # a tool the request does not declare is never called
    async with ant.client.messages.stream(model=MODEL, max_tokens=300, messages=user("bye")) as stream:
        final = await stream.get_final_message()
    assert [b.type for b in final.content] == ["text"] and final.stop_reason == "end_turn"
    assert ant.requests()[-1]["tool_skipped"] == "end_call"


@pytest.mark.asyncio
async def test_non_streaming_and_json_default(ant: StartedStandin) -> None:
    msg = await ant.client.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=user("Hello?"))
    assert first_text(msg) == "Thanks! You said: Hello. Is there anything else?"
    summary = await ant.client.messages.create(
        model="claude-haiku-4-5",
        max_tokens=400,
        system="Summarize this call. Reply with JSON only.",
        messages=user("Caller: hi, this is Bob, I need a filling.\nAgent: sure."),
    )
    data = json.loads(first_text(summary))
    assert set(data) == {"summary", "caller_name", "intent", "follow_up"} and "filling" in data["summary"]
    # max_tokens truncates
    short = await ant.client.messages.create(model=MODEL, max_tokens=3, messages=user("tell me everything"))
    assert short.stop_reason == "max_tokens" and first_text(short) == "Thanks! You said:"


@pytest.mark.asyncio
async def test_validation_and_auth_errors(ant: StartedStandin) -> None:
    bad = anthropic.AsyncAnthropic(api_key="wrong", base_url=ant.base_url, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as err:
        await bad.messages.create(model=MODEL, max_tokens=10, messages=user("x"))
    assert err.value.type == "authentication_error"
    await bad.close()
    cases: list[dict[str, Any]] = [
        {"messages": []},
        {"messages": [{"role": "assistant", "content": "hi"}]},
        {"messages": [{"role": "user", "content": ""}]},
        {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "ok "}]},
        {
            "messages": [
                {"role": "user", "content": "x"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "toolu_1", "name": "end_call", "input": {}}],
                },
                {"role": "user", "content": "and?"},
            ]
        },
        {
            "messages": [
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "x"}]}
            ]
        },
        {"messages": user("x"), "tools": [{"name": "bad name!", "input_schema": {"type": "object"}}]},
    ]
    for kw in cases:
        with pytest.raises(anthropic.BadRequestError) as rejected:
            await ant.client.messages.create(model=MODEL, max_tokens=10, **kw)
        assert rejected.value.type == "invalid_request_error", kw
    with pytest.raises(anthropic.NotFoundError):
        await ant.client.messages.create(model="gpt-4o", max_tokens=10, messages=user("x"))
    # consecutive user turns are merged by the API, so they are accepted
    ok = await ant.client.messages.create(model=MODEL, max_tokens=50, messages=user("a") + user("b"))
    assert first_text(ok).startswith("Thanks! You said: b")

    async with aiohttp.ClientSession() as http:
        r = await http.post(
            ant.base_url + "/v1/messages",
            headers={"x-api-key": KEY},
            json={"model": MODEL, "max_tokens": 5, "messages": user("x")},
        )
        assert r.status == 400
        assert (await r.json())["error"]["message"] == "anthropic-version: header is required"
        r = await http.post(
            ant.base_url + "/v1/messages",
            headers={"anthropic-version": "2023-06-01"},
            json={"model": MODEL, "max_tokens": 5, "messages": user("x")},
        )
        body = await r.json()
        assert r.status == 401 and body["type"] == "error" and body["error"]["type"] == "authentication_error"
        assert body["request_id"].startswith("req_")


@pytest.mark.asyncio
async def test_injected_http_errors(ant: StartedStandin) -> None:
    ant.fail_next(status=529)
    ant.fail_next(status=429)
    ant.fail_next(status=500)
    for exc, etype in [
        (anthropic.OverloadedError, "overloaded_error"),
        (anthropic.RateLimitError, "rate_limit_error"),
        (anthropic.InternalServerError, "api_error"),
    ]:
        with pytest.raises(exc) as err:
            async with ant.client.messages.stream(model=MODEL, max_tokens=50, messages=user("x")) as s:
                await s.get_final_message()
        assert err.value.type == etype
    msg = await ant.client.messages.create(model=MODEL, max_tokens=50, messages=user("x"))
    assert msg.stop_reason == "end_turn"
    assert [r["status"] for r in ant.requests()] == [529, 429, 500, 200]


@pytest.mark.asyncio
async def test_error_event_mid_stream(ant: StartedStandin) -> None:
    ant.error_mid_stream(after_tokens=2)
    got = []
    with pytest.raises(anthropic.APIStatusError) as err:
        async with ant.client.messages.stream(model=MODEL, max_tokens=50, messages=user("hello there")) as s:
            async for t in s.text_stream:
                got.append(t)
    # HTTP status was 200: the SDK raises a plain APIStatusError carrying the error type
    assert err.value.type == "overloaded_error" and err.value.status_code == 200
    assert got == ["Thanks!", " You"]
    assert ant.requests()[0]["error"]["type"] == "overloaded_error"


@pytest.mark.asyncio
async def test_hang_then_timeout(ant: StartedStandin) -> None:
    ant.hang_next(seconds=None)
    client = anthropic.AsyncAnthropic(api_key=KEY, base_url=ant.base_url, max_retries=0, timeout=0.3)
    with pytest.raises(anthropic.APITimeoutError):
        await client.messages.create(model=MODEL, max_tokens=10, messages=user("x"))
    await client.close()
    ant.hang_next(seconds=0.2)
    t0 = time.monotonic()
    msg = await ant.client.messages.create(model=MODEL, max_tokens=10, messages=user("x"))
    assert time.monotonic() - t0 >= 0.19 and first_text(msg)


@pytest.mark.asyncio
async def test_rule_matching_and_recorded_requests(ant: StartedStandin) -> None:
    ant.set_script(
        [
            {"match": "price", "system_contains": "Bright Smile", "text": "A cleaning is $120.", "times": 1},
            {"match": "price", "text": "I can check our prices."},
            {"match": None, "system_contains": "Bright Smile", "text": "Welcome to Bright Smile!"},
        ]
    )
    system = "You answer calls for Bright Smile Dental (Austin). Past calls: booked a cleaning in May."
    ask: list[MessageParam] = [
        {"role": "user", "content": [{"type": "text", "text": "What's the PRICE of a cleaning?"}]}
    ]
    first = await ant.client.messages.create(model=MODEL, max_tokens=50, system=system, messages=ask)
    second = await ant.client.messages.create(model=MODEL, max_tokens=50, system=system, messages=ask)
    other = await ant.client.messages.create(
        model=MODEL, max_tokens=50, system=[{"type": "text", "text": system}], messages=user("hello")
    )
    plain = await ant.client.messages.create(model=MODEL, max_tokens=50, system="Other clinic", messages=user("hello"))
    assert [first_text(m) for m in (first, second, other)] == [
        "A cleaning is $120.",
        "I can check our prices.",
        "Welcome to Bright Smile!",
    ]
    assert first_text(plain).startswith("Thanks! You said: hello")

    recs = ant.requests()
    assert len(recs) == 4
    assert recs[0]["system_text"] == system and "Past calls: booked a cleaning" in recs[2]["system_text"]
    assert recs[0]["messages"] == ask and recs[0]["model"] == MODEL and recs[0]["max_tokens"] == 50
    assert recs[0]["last_user_text"] == "What's the PRICE of a cleaning?"
    assert recs[0]["anthropic_version"] and recs[0]["reply_text"] == "A cleaning is $120."
    async with aiohttp.ClientSession() as http:
        data = await (await http.get(ant.base_url + "/_standin/requests")).json()
        assert [r["id"] for r in data["requests"]] == [r["id"] for r in recs]
        await http.post(ant.base_url + "/_standin/reset")
        assert (await (await http.get(ant.base_url + "/_standin/requests")).json())["requests"] == []


@pytest.mark.asyncio
async def test_time_to_first_token_and_rate(ant: StartedStandin) -> None:
    ant.configure(ttft_ms=250, tokens_per_s=200)
    t0 = time.monotonic()
    async with ant.client.messages.stream(model=MODEL, max_tokens=100, messages=user("one two three")) as s:
        first_at = None
        async for _ in s.text_stream:
            first_at = first_at or time.monotonic() - t0
    total = time.monotonic() - t0
    assert first_at is not None and 0.24 <= first_at < 0.5
    assert total >= 0.25 + 9 / 200  # 10 tokens at 200/s


@pytest.mark.asyncio
async def test_many_concurrent_streams(ant: StartedStandin) -> None:
    ant.configure(tokens_per_s=500)

    async def one(i: int) -> str:
        async with ant.client.messages.stream(model=MODEL, max_tokens=100, messages=user(f"caller {i}")) as s:
            return "".join([t async for t in s.text_stream])

    got = await asyncio.gather(*(one(i) for i in range(120)))
    assert got == [f"Thanks! You said: caller {i}. Is there anything else?" for i in range(120)]


def test_thread_mode_sync_sdk_and_http_control_api() -> None:
    server = AnthropicStandin()
    url = server.start_in_thread()
    try:

        async def control() -> None:
            async with aiohttp.ClientSession() as http:
                r = await http.post(
                    url + "/_standin/script",
                    json={"rules": [{"match": "hours", "text": "We open at nine.", "tool": None}]},
                )
                assert r.status == 200
                r = await http.post(url + "/_standin/faults", json={"kind": "http_error", "status": 529})
                assert r.status == 200
                r = await http.post(url + "/_standin/config", json={"ttft_ms": 10})
                assert r.status == 200

        asyncio.run(control())
        client = anthropic.Anthropic(api_key="any", base_url=url, max_retries=0)
        with pytest.raises(anthropic.OverloadedError):
            client.messages.create(model=MODEL, max_tokens=20, messages=user("hours?"))
        with client.messages.stream(model=MODEL, max_tokens=20, messages=user("What are your hours?")) as s:
            assert s.get_final_text() == "We open at nine."
        assert [r["status"] for r in server.requests()] == [529, 200]
    finally:
        server.stop_thread()
