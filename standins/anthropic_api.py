"""Local stand-in for the Anthropic Messages API (``POST /v1/messages``), real wire format.

Point the real SDK at it with ``AsyncAnthropic(api_key=..., base_url="http://H:P",
max_retries=0)``.

Provider endpoint
-----------------
``POST /v1/messages``: needs ``x-api-key`` (or ``Authorization: Bearer``; 401
authentication_error) and an ``anthropic-version`` header of any value (400). The body
is validated like the API does (400 invalid_request_error): ``model`` (a ``claude``
name, else 404 not_found_error), ``max_tokens`` >= 1, non-empty ``messages`` with
roles user/assistant, the first one ``user``, non-empty text, known block types,
every assistant ``tool_use`` answered by a ``tool_result`` in the next user message
and every ``tool_result`` pointing at one, no trailing whitespace in a final
assistant prefill, ``tools`` with valid names and an object ``input_schema``.
Consecutive messages with the same role are accepted (the API merges them).
``stream: true`` answers ``text/event-stream``: message_start, content_block_start,
ping, content_block_delta (text_delta; for tools input_json_delta) ...,
content_block_stop, message_delta (stop_reason, usage), message_stop. Otherwise the
full Message JSON. ``max_tokens`` truncates (stop_reason max_tokens);
``stop_sequences`` are honoured. A "token" is a word with its leading whitespace.
``POST /v1/messages/count_tokens``: same auth and body validation (``max_tokens`` not
needed) -> ``{"input_tokens": n}``; recorded apart (``token_counts()``).

What it answers
---------------
Scripted rules, first match wins: ``{"match": "substring of the last user text
(case-insensitive)" | null, "system_contains": "..." (optional), "text": "reply",
"tool": {"name": "end_call", "input": {...}} (optional), "times": n (optional; the
rule is removed once used n times), "tool_result": false}``. Rules with
``tool_result: true`` match only turns whose last user message carries a
``tool_result`` block, other rules only turns that do not. A rule's tool is emitted
(as a ``tool_use`` block after the text, stop_reason ``tool_use``) only when the
request declares a tool of that name.
Defaults when no rule matches:
* last user message is a tool_result -> "Okay, that's done."
* non-streaming request that has ``tools`` or whose system prompt mentions "json"
  or "summar" -> a JSON object as text: ``{"summary": "Caller said: ...",
  "caller_name": null, "intent": null, "follow_up": false}``
* otherwise "Thanks! You said: <last user text>. Is there anything else?"
  ("Hello! How can I help you today?" when there is no user text).

Control API (JSON; each has a thread-safe Python method)
-------------------------------------------------------
``GET  /_standin/health``                  {"ok": true}
``GET  /_standin/requests``                {"requests": [{id, received_at, status,
        stream, model, max_tokens, system, system_text, messages, last_user_text,
        tools, body, anthropic_version, reply_text, tool_use, stop_reason, fault,
        error}], "token_counts": [{received_at, status, model, input_tokens}]}
                                           -> ``requests()``, ``token_counts()``
``POST /_standin/reset``                   rules, records, faults, config -> ``reset()``
``POST /_standin/script`` {"rules": [...], "append": false}
                                           -> ``set_script(rules, append=False)``
``POST /_standin/config`` {"ttft_ms": 0, "tokens_per_s": 0, "api_key": null}
                                           -> ``configure(**kw)``
``POST /_standin/faults`` one of (each with optional "count", default 1):
        {"kind": "http_error", "status": 529, "error_type": "overloaded_error",
         "message": "Overloaded"}           -> ``fail_next(count, status, error_type, message)``
        {"kind": "stream_error", "after_tokens": 3, "error_type": "overloaded_error",
         "message": "Overloaded"}           -> ``error_mid_stream(after_tokens, count, ...)``
           (HTTP 200, then an ``error`` event after K text deltas, then the end)
        {"kind": "hang", "seconds": 30}      -> ``hang_next(count, seconds)``
           (no bytes at all for ``seconds``, then a normal answer; null = until the
           client goes away)
Faults are consumed in order by the next requests that pass auth and validation.

Run alone: ``python -m standins.anthropic_api --port 8766 [--api-key KEY]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import re
import secrets
import threading
import time
from typing import Any

from aiohttp import web

from standins.threaded import ThreadedServer

CONFIG_DEFAULTS: dict[str, Any] = {
    "api_key": None,  # None: any non-empty key
    "ttft_ms": 0.0,  # delay before the first content delta
    "tokens_per_s": 0.0,  # 0: as fast as possible
}

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
ERROR_MESSAGES = {
    "overloaded_error": "Overloaded",
    "api_error": "Internal server error",
    "rate_limit_error": "Number of request tokens has exceeded your per-minute rate limit",
    "authentication_error": "invalid x-api-key",
    "permission_error": "Permission denied",
    "not_found_error": "Not found",
    "invalid_request_error": "Invalid request",
    "timeout_error": "Request timed out",
    "request_too_large": "Request exceeds the maximum allowed number of bytes.",
    "billing_error": "Your credit balance is too low.",
}

_BLOCK_TYPES = {
    "text",
    "image",
    "document",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
    "search_result",
    "server_tool_use",
    "web_search_tool_result",
}
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")


def _rid(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")[:24]


class _Invalid(Exception):
    def __init__(self, message: str, status: int = 400, etype: str = "invalid_request_error"):
        super().__init__(message)
        self.status = status
        self.etype = etype


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = []
    if isinstance(content, list):
        for b in content:
            if isinstance(b, dict) and b.get("type") == "text":
                parts.append(str(b.get("text", "")))
    return "\n".join(parts)


def _tool_result_text(content: Any) -> str:
    parts = []
    for b in content if isinstance(content, list) else []:
        if isinstance(b, dict) and b.get("type") == "tool_result":
            parts.append(_text_of(b.get("content", "")))
    return "\n".join(parts)


def _validate(body: Any) -> None:
    if not isinstance(body, dict):
        raise _Invalid("Request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _Invalid("model: Field required")
    mt = body.get("max_tokens")
    if isinstance(mt, bool) or not isinstance(mt, int):
        raise _Invalid("max_tokens: Field required" if mt is None else "max_tokens: Input should be a valid integer")
    if mt < 1:
        raise _Invalid("max_tokens: Input should be greater than or equal to 1")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise _Invalid("stream: Input should be a valid boolean")
    temp = body.get("temperature")
    if temp is not None and (not isinstance(temp, (int, float)) or not 0 <= temp <= 1):
        raise _Invalid("temperature: Input should be less than or equal to 1")
    system = body.get("system")
    if system is not None:
        if isinstance(system, list):
            for i, b in enumerate(system):
                if not isinstance(b, dict) or b.get("type") != "text" or not isinstance(b.get("text"), str):
                    raise _Invalid(f"system.{i}: Input should be a valid text block")
        elif not isinstance(system, str):
            raise _Invalid("system: Input should be a valid string or list of text blocks")
    tools = body.get("tools")
    tool_names = set()
    if tools is not None:
        if not isinstance(tools, list):
            raise _Invalid("tools: Input should be a valid list")
        for i, t in enumerate(tools):
            if not isinstance(t, dict):
                raise _Invalid(f"tools.{i}: Input should be a valid dictionary")
            name = t.get("name")
            if t.get("type") not in (None, "custom"):  # server tools: accept as declared
                tool_names.add(name)
                continue
            if not isinstance(name, str) or not _TOOL_NAME.match(name):
                raise _Invalid(f"tools.{i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
            schema = t.get("input_schema")
            if not isinstance(schema, dict) or schema.get("type") != "object":
                raise _Invalid(f"tools.{i}.custom.input_schema: Input should be a JSON schema of type 'object'")
            if name in tool_names:
                raise _Invalid(f"tools: Tool names must be unique. Duplicate: {name}")
            tool_names.add(name)
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise _Invalid("messages: Field required" if messages is None else "messages: Input should be a valid list")
    if not messages:
        raise _Invalid("messages: at least one message is required")
    pending_tool_ids: list[str] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise _Invalid(f"messages.{i}: Input should be a valid dictionary")
        role = m.get("role")
        if role not in ("user", "assistant"):
            raise _Invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if i == 0 and role != "user":
            raise _Invalid('messages: first message must use the "user" role')
        content = m.get("content")
        last = i == len(messages) - 1
        if isinstance(content, str):
            if not content and not (last and role == "assistant"):
                raise _Invalid(
                    f"messages.{i}: all messages must have non-empty content except for the "
                    "optional final assistant message"
                )
            blocks: list[dict[str, Any]] = [{"type": "text", "text": content}] if content else []
        elif isinstance(content, list):
            if not content and not (last and role == "assistant"):
                raise _Invalid(
                    f"messages.{i}: all messages must have non-empty content except for the "
                    "optional final assistant message"
                )
            blocks = content
        else:
            raise _Invalid(f"messages.{i}.content: Input should be a valid string or list")
        result_ids = []
        for j, b in enumerate(blocks):
            if not isinstance(b, dict) or b.get("type") not in _BLOCK_TYPES:
                btype = b.get("type") if isinstance(b, dict) else None
                raise _Invalid(
                    f"messages.{i}.content.{j}: Input tag '{btype}' found using 'type' does not "
                    "match any of the expected tags"
                )
            bt = b["type"]
            if bt == "text":
                if not isinstance(b.get("text"), str):
                    raise _Invalid(f"messages.{i}.content.{j}.text.text: Field required")
                if not b["text"]:
                    raise _Invalid(f"messages.{i}.content.{j}.text: text content blocks must be non-empty")
            elif bt == "tool_use":
                if role != "assistant":
                    raise _Invalid(f"messages.{i}.content.{j}: tool_use blocks can only be in assistant messages")
                if (
                    not isinstance(b.get("id"), str)
                    or not isinstance(b.get("name"), str)
                    or not isinstance(b.get("input"), dict)
                ):
                    raise _Invalid(f"messages.{i}.content.{j}.tool_use: id, name and input (object) are required")
            elif bt == "tool_result":
                if role != "user":
                    raise _Invalid(f"messages.{i}.content.{j}: tool_result blocks can only be in user messages")
                if not isinstance(b.get("tool_use_id"), str):
                    raise _Invalid(f"messages.{i}.content.{j}.tool_result.tool_use_id: Field required")
                result_ids.append(b["tool_use_id"])
        if role == "user":
            for rid in result_ids:
                if rid not in pending_tool_ids:
                    raise _Invalid(
                        f"messages.{i}.content: unexpected `tool_use_id` found in `tool_result` "
                        f"blocks: {rid}. Each `tool_result` block must have a corresponding "
                        "`tool_use` block in the previous message."
                    )
            missing = [t for t in pending_tool_ids if t not in result_ids]
            if missing:
                raise _Invalid(
                    f"messages.{i}: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                    "corresponding `tool_result` block in the next message."
                )
            pending_tool_ids = []
        else:
            pending_tool_ids = [b["id"] for b in blocks if b.get("type") == "tool_use"]
            if last and blocks:
                tail = blocks[-1]
                if tail.get("type") == "text" and tail["text"] != tail["text"].rstrip():
                    raise _Invalid("messages: final assistant content cannot end with trailing whitespace")
    if not str(model).startswith("claude"):
        raise _Invalid(f"model: {model}", status=404, etype="not_found_error")


def _tokens(text: str) -> list[str]:
    toks = re.findall(r"\s*\S+", text)
    if toks:
        tail = text[len("".join(toks)) :]
        toks[-1] += tail
    elif text:
        toks = [text]
    return toks


def _json_pieces(s: str, n: int = 12) -> list[str]:
    return [s[i : i + n] for i in range(0, len(s), n)] or [""]


class AnthropicStandin(ThreadedServer):
    """aiohttp app speaking the Messages API (see module docstring)."""

    thread_name = "anthropic-standin"

    def __init__(self, *, api_key: str | None = None, **config: Any) -> None:
        unknown = set(config) - set(CONFIG_DEFAULTS)
        if unknown:
            raise TypeError(f"unknown config keys: {sorted(unknown)}")
        self._defaults = dict(CONFIG_DEFAULTS, api_key=api_key, **config)
        self._lock = threading.Lock()
        self._cfg: dict[str, Any] = dict(self._defaults)
        self._rules: list[dict[str, Any]] = []
        self._faults: list[dict[str, Any]] = []
        self._records: list[dict[str, Any]] = []
        self._token_counts: list[dict[str, Any]] = []
        self._seq = 0
        self._tasks: set[asyncio.Task[Any]] = set()  # in-flight /v1/messages handlers
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._loop_thread: int | None = None
        self.base_url: str | None = None

    # ------------------------------------------------------------ lifecycle
    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        app.router.add_get("/_standin/health", self._h_health)
        app.router.add_get("/_standin/requests", self._h_requests)
        app.router.add_post("/_standin/reset", self._h_reset)
        app.router.add_post("/_standin/script", self._h_script)
        app.router.add_post("/_standin/config", self._h_config)
        app.router.add_post("/_standin/faults", self._h_faults)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._runner = web.AppRunner(self.make_app(), handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, backlog=4096, reuse_address=True)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://{host}:{port}"
        return self.base_url

    async def stop(self) -> None:
        """Cancel in-flight answers (hung or streaming), then stop serving."""
        if self._runner is not None:
            for task in list(self._tasks):
                task.cancel()
            await self._runner.cleanup()
            self._runner = None

    def requests(self) -> list[dict[str, Any]]:
        """A snapshot (deep copy) of every request received, oldest first."""

        def snap() -> list[dict[str, Any]]:
            with self._lock:
                return copy.deepcopy(self._records)

        return self._on_loop(snap)

    def token_counts(self) -> list[dict[str, Any]]:
        """The ``count_tokens`` requests received, oldest first."""
        with self._lock:
            return copy.deepcopy(self._token_counts)

    def reset(self) -> None:
        with self._lock:
            self._rules.clear()
            self._faults.clear()
            self._records.clear()
            self._token_counts.clear()
            self._cfg = dict(self._defaults)

    def set_script(self, rules: list[dict[str, Any]], append: bool = False) -> None:
        checked = []
        for r in rules:
            if not isinstance(r, dict):
                raise ValueError("each rule must be an object")
            unknown = set(r) - {"match", "system_contains", "text", "tool", "times", "tool_result"}
            if unknown:
                raise ValueError(f"unknown rule keys: {sorted(unknown)}")
            if r.get("tool") is not None and not isinstance(r["tool"].get("name"), str):
                raise ValueError("rule.tool needs a name")
            checked.append(dict(r))
        with self._lock:
            if not append:
                self._rules.clear()
            self._rules.extend(checked)

    def add_rule(
        self,
        text: str = "",
        match: str | None = None,
        *,
        tool: dict[str, Any] | None = None,
        system_contains: str | None = None,
        times: int | None = None,
        tool_result: bool = False,
    ) -> None:
        self.set_script(
            [
                {
                    "match": match,
                    "text": text,
                    "tool": tool,
                    "system_contains": system_contains,
                    "times": times,
                    "tool_result": tool_result,
                }
            ],
            append=True,
        )

    def configure(self, **kw: Any) -> None:
        unknown = set(kw) - set(CONFIG_DEFAULTS)
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        with self._lock:
            self._cfg.update(kw)

    def fail_next(
        self, count: int = 1, status: int = 529, error_type: str | None = None, message: str | None = None
    ) -> None:
        etype = error_type or ERROR_TYPES.get(status, "api_error")
        fault = {
            "kind": "http_error",
            "status": int(status),
            "error_type": etype,
            "message": message or ERROR_MESSAGES.get(etype, "Error"),
        }
        with self._lock:
            self._faults.extend(dict(fault) for _ in range(int(count)))

    def error_mid_stream(
        self, after_tokens: int = 3, count: int = 1, error_type: str = "overloaded_error", message: str | None = None
    ) -> None:
        fault = {
            "kind": "stream_error",
            "after_tokens": int(after_tokens),
            "error_type": error_type,
            "message": message or ERROR_MESSAGES.get(error_type, "Error"),
        }
        with self._lock:
            self._faults.extend(dict(fault) for _ in range(int(count)))

    def hang_next(self, count: int = 1, seconds: float | None = None) -> None:
        with self._lock:
            self._faults.extend({"kind": "hang", "seconds": seconds} for _ in range(int(count)))

    # ------------------------------------------------------------ internals
    def _error(self, status: int, etype: str, message: str, rec: dict[str, Any] | None) -> web.Response:
        rid = _rid("req_")
        if rec is not None:
            rec["status"] = status
            rec["error"] = {"type": etype, "message": message}
        return web.json_response(
            {"type": "error", "error": {"type": etype, "message": message}, "request_id": rid},
            status=status,
            headers={"request-id": rid},
        )

    def _choose(self, body: dict[str, Any], stream: bool) -> tuple[str, dict[str, Any] | None]:
        messages = body["messages"]
        last_user = next((m for m in reversed(messages) if m.get("role") == "user"), None)
        content = last_user.get("content") if last_user else ""
        is_tool_result = isinstance(content, list) and any(
            isinstance(b, dict) and b.get("type") == "tool_result" for b in content
        )
        user_text = _text_of(content)
        system = body.get("system")
        system_text = system if isinstance(system, str) else _text_of(system or [])
        with self._lock:
            for i, rule in enumerate(self._rules):
                if bool(rule.get("tool_result")) != is_tool_result:
                    continue
                m = rule.get("match")
                if m and str(m).lower() not in user_text.lower():
                    continue
                sc = rule.get("system_contains")
                if sc and str(sc).lower() not in system_text.lower():
                    continue
                times = rule.get("times")
                if times is not None:
                    rule["times"] = int(times) - 1
                    if rule["times"] <= 0:
                        del self._rules[i]
                return str(rule.get("text") or ""), rule.get("tool")
        if is_tool_result:
            return "Okay, that's done.", None
        sys_l = system_text.lower()
        if not stream and (body.get("tools") or "json" in sys_l or "summar" in sys_l):
            said = " ".join(_text_of(m.get("content")) for m in messages if m.get("role") == "user").strip()
            said = re.sub(r"\s+", " ", said)
            return json.dumps(
                {
                    "summary": f"Caller said: {said[:300]}" if said else "No conversation.",
                    "caller_name": None,
                    "intent": None,
                    "follow_up": False,
                }
            ), None
        said = user_text.strip().rstrip(".!?")
        if not said:
            return "Hello! How can I help you today?", None
        return f"Thanks! You said: {said}. Is there anything else?", None

    def _plan(
        self, body: dict[str, Any], text: str, tool: dict[str, Any] | None, rec: dict[str, Any]
    ) -> tuple[list[str], dict[str, Any] | None, str, str | None]:
        """Tokens to send, the tool_use block (or None), stop_reason, stop_sequence."""
        stop_reason, stop_seq = "end_turn", None
        for seq in body.get("stop_sequences") or []:
            if isinstance(seq, str) and seq and seq in text:
                text = text[: text.index(seq)]
                stop_reason, stop_seq, tool = "stop_sequence", seq, None
                break
        toks = _tokens(text)
        max_tokens = int(body["max_tokens"])
        if len(toks) > max_tokens:
            toks = toks[:max_tokens]
            stop_reason, stop_seq, tool = "max_tokens", None, None
        tool_block = None
        if tool is not None:
            declared = {t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)}
            if tool.get("name") in declared:
                tool_block = {
                    "type": "tool_use",
                    "id": _rid("toolu_"),
                    "name": tool["name"],
                    "input": dict(tool.get("input") or {}),
                }
                stop_reason = "tool_use"
            else:
                rec["tool_skipped"] = tool.get("name")
        return toks, tool_block, stop_reason, stop_seq

    def _take_fault(self) -> dict[str, Any] | None:
        with self._lock:
            return self._faults.pop(0) if self._faults else None

    @staticmethod
    def _input_tokens(body: dict[str, Any]) -> int:
        size = len(json.dumps([body.get("system"), body.get("messages"), body.get("tools")], default=str))
        return max(1, size // 4)

    # ------------------------------------------------------------ /v1/messages
    async def _messages(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            return await self._messages_inner(request)
        finally:
            self._tasks.discard(task)

    async def _messages_inner(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            self._seq += 1
            rec: dict[str, Any] = {
                "id": self._seq,
                "received_at": time.time(),
                "status": None,
                "anthropic_version": request.headers.get("anthropic-version"),
                "anthropic_beta": request.headers.get("anthropic-beta"),
                "body": None,
                "stream": False,
                "model": None,
                "max_tokens": None,
                "system": None,
                "system_text": "",
                "messages": None,
                "last_user_text": "",
                "tools": None,
                "reply_text": None,
                "tool_use": None,
                "stop_reason": None,
                "fault": None,
                "error": None,
            }
            self._records.append(rec)
        key = request.headers.get("x-api-key")
        if not key:
            auth = request.headers.get("Authorization", "")
            if auth.lower().startswith("bearer "):
                key = auth[7:].strip()
        expected = self._cfg["api_key"]
        if not key:
            return self._error(401, "authentication_error", "x-api-key header is required", rec)
        if expected is not None and key != expected:
            return self._error(401, "authentication_error", "invalid x-api-key", rec)
        if not request.headers.get("anthropic-version"):
            return self._error(400, "invalid_request_error", "anthropic-version: header is required", rec)
        try:
            body = json.loads(await request.read())
        except ValueError:
            return self._error(
                400, "invalid_request_error", "There was an issue with your request body: invalid JSON", rec
            )
        rec["body"] = body
        if isinstance(body, dict):
            system = body.get("system")
            msgs = body.get("messages")
            rec.update(
                stream=bool(body.get("stream")),
                model=body.get("model"),
                max_tokens=body.get("max_tokens"),
                system=system,
                messages=msgs,
                tools=body.get("tools"),
                system_text=system if isinstance(system, str) else _text_of(system or []),
            )
            if isinstance(msgs, list):
                lu = next((m for m in reversed(msgs) if isinstance(m, dict) and m.get("role") == "user"), None)
                if lu is not None:
                    rec["last_user_text"] = _text_of(lu.get("content")) or _tool_result_text(lu.get("content"))
        try:
            _validate(body)
        except _Invalid as exc:
            return self._error(exc.status, exc.etype, str(exc), rec)

        fault = self._take_fault()
        rec["fault"] = fault
        if fault and fault["kind"] == "hang":
            gone = await self._hang(request, fault.get("seconds"))
            if gone:
                rec["status"] = 0
                rec["error"] = {"type": "client_disconnected", "message": "client went away during hang"}
                return web.Response(status=499)
        if fault and fault["kind"] == "http_error":
            return self._error(fault["status"], fault["error_type"], fault["message"], rec)

        stream = bool(body.get("stream"))
        text, tool = self._choose(body, stream)
        toks, tool_block, stop_reason, stop_seq = self._plan(body, text, tool, rec)
        rec.update(reply_text="".join(toks), tool_use=tool_block, stop_reason=stop_reason)
        msg_id = _rid("msg_")
        req_id = _rid("req_")
        in_tokens = self._input_tokens(body)
        out_tokens = len(toks) + (len(json.dumps(tool_block["input"])) // 4 + 5 if tool_block else 0)
        cfg = dict(self._cfg)
        ttft = float(cfg["ttft_ms"]) / 1000.0
        rate = float(cfg["tokens_per_s"])
        if not stream:
            await asyncio.sleep(ttft + (len(toks) / rate if rate > 0 else 0.0))
            content: list[dict[str, Any]] = []
            if toks:
                content.append({"type": "text", "text": "".join(toks)})
            if tool_block:
                content.append(tool_block)
            rec["status"] = 200
            return web.json_response(
                {
                    "id": msg_id,
                    "type": "message",
                    "role": "assistant",
                    "model": body["model"],
                    "content": content,
                    "stop_reason": stop_reason,
                    "stop_sequence": stop_seq,
                    "usage": {
                        "input_tokens": in_tokens,
                        "output_tokens": out_tokens,
                        "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0,
                    },
                },
                headers={"request-id": req_id},
            )

        resp = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "request-id": req_id,
            },
        )
        await resp.prepare(request)
        rec["status"] = 200
        stream_error = fault if fault and fault["kind"] == "stream_error" else None

        async def ev(name: str, data: dict[str, Any]) -> None:
            await resp.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())

        async def error_event() -> web.StreamResponse:
            assert stream_error is not None
            rec["error"] = {"type": stream_error["error_type"], "message": stream_error["message"]}
            await ev(
                "error",
                {"type": "error", "error": {"type": stream_error["error_type"], "message": stream_error["message"]}},
            )
            await resp.write_eof()
            return resp

        try:
            await ev(
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": msg_id,
                        "type": "message",
                        "role": "assistant",
                        "model": body["model"],
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": {
                            "input_tokens": in_tokens,
                            "output_tokens": 1,
                            "cache_creation_input_tokens": 0,
                            "cache_read_input_tokens": 0,
                        },
                    },
                },
            )
            index = 0
            sent = 0
            if toks or not tool_block:
                await ev(
                    "content_block_start",
                    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                )
                await ev("ping", {"type": "ping"})
                if ttft > 0:
                    await asyncio.sleep(ttft)
                for tok in toks:
                    if stream_error is not None and sent >= stream_error["after_tokens"]:
                        return await error_event()
                    await ev(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": tok}},
                    )
                    sent += 1
                    if rate > 0:
                        await asyncio.sleep(1.0 / rate)
                if stream_error is not None:
                    return await error_event()
                await ev("content_block_stop", {"type": "content_block_stop", "index": 0})
                index = 1
            else:
                await ev("ping", {"type": "ping"})
                if ttft > 0:
                    await asyncio.sleep(ttft)
                if stream_error is not None:
                    return await error_event()
            if tool_block:
                await ev(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": {**tool_block, "input": {}}},
                )
                for piece in [""] + _json_pieces(json.dumps(tool_block["input"])):
                    await ev(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": piece},
                        },
                    )
                    if rate > 0 and piece:
                        await asyncio.sleep(1.0 / rate)
                await ev("content_block_stop", {"type": "content_block_stop", "index": index})
            await ev(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": stop_seq},
                    "usage": {"output_tokens": out_tokens},
                },
            )
            await ev("message_stop", {"type": "message_stop"})
            await resp.write_eof()
        except ConnectionResetError:  # the client went away (e.g. a barge-in cancelled it)
            rec["error"] = rec["error"] or {"type": "client_disconnected", "message": "client went away"}
        except asyncio.CancelledError:
            rec["error"] = rec["error"] or {"type": "client_disconnected", "message": "cancelled"}
            raise
        return resp

    async def _count_tokens(self, request: web.Request) -> web.Response:
        rec: dict[str, Any] = {"received_at": time.time(), "status": None, "model": None, "input_tokens": None}
        with self._lock:
            self._token_counts.append(rec)
        key = request.headers.get("x-api-key")
        auth = request.headers.get("Authorization", "")
        if not key and auth.lower().startswith("bearer "):
            key = auth[7:].strip()
        expected = self._cfg["api_key"]
        if not key or (expected is not None and key != expected):
            return self._error(401, "authentication_error", "invalid x-api-key", rec)
        if not request.headers.get("anthropic-version"):
            return self._error(400, "invalid_request_error", "anthropic-version: header is required", rec)
        try:
            body = json.loads(await request.read())
            _validate({**body, "max_tokens": 1} if isinstance(body, dict) else body)
        except ValueError:
            return self._error(400, "invalid_request_error", "There was an issue with your request body", rec)
        except _Invalid as exc:
            return self._error(exc.status, exc.etype, str(exc), rec)
        rec.update(status=200, model=body["model"], input_tokens=self._input_tokens(body))
        return web.json_response({"input_tokens": rec["input_tokens"]}, headers={"request-id": _rid("req_")})

    async def _hang(self, request: web.Request, seconds: float | None) -> bool:
        """Send nothing for ``seconds`` (None: forever). True if the client went away."""
        deadline = None if seconds is None else time.monotonic() + float(seconds)
        while deadline is None or time.monotonic() < deadline:
            transport = request.transport
            if transport is None or transport.is_closing():
                return True
            step = 0.05 if deadline is None else min(0.05, max(0.0, deadline - time.monotonic()))
            await asyncio.sleep(step)
        return False

    # ------------------------------------------------------------ control handlers
    async def _json(self, request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return {}
        data = await request.json()
        if not isinstance(data, dict):
            raise web.HTTPBadRequest(text="expected a JSON object")
        return data

    async def _h_health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def _h_requests(self, request: web.Request) -> web.Response:
        return web.json_response({"requests": self.requests(), "token_counts": self.token_counts()})

    async def _h_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    async def _h_script(self, request: web.Request) -> web.Response:
        data = await self._json(request)
        rules = data.get("rules")
        if not isinstance(rules, list):
            return web.json_response({"error": "rules must be a list"}, status=400)
        try:
            self.set_script(rules, append=bool(data.get("append", False)))
        except (ValueError, AttributeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"ok": True})

    async def _h_config(self, request: web.Request) -> web.Response:
        data = await self._json(request)
        try:
            self.configure(**data)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        with self._lock:
            cfg = dict(self._cfg)
        return web.json_response({"ok": True, "config": cfg})

    async def _h_faults(self, request: web.Request) -> web.Response:
        data = await self._json(request)
        kind = data.get("kind")
        count = int(data.get("count", 1))
        if kind == "http_error":
            self.fail_next(count, int(data.get("status", 529)), data.get("error_type"), data.get("message"))
        elif kind == "stream_error":
            self.error_mid_stream(
                int(data.get("after_tokens", 3)), count, data.get("error_type", "overloaded_error"), data.get("message")
            )
        elif kind == "hang":
            self.hang_next(count, data.get("seconds"))
        else:
            return web.json_response({"error": "kind must be http_error, stream_error or hang"}, status=400)
        return web.json_response({"ok": True})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Anthropic Messages API stand-in")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--api-key", default=None, help="accepted key (default: any non-empty)")
    args = parser.parse_args(argv)

    async def run() -> None:
        server = AnthropicStandin(api_key=args.api_key)
        url = await server.start(args.host, args.port)
        print(f"anthropic stand-in listening on {url}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
