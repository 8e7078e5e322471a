"""A server process creates and warms its Claude and Deepgram clients when it starts,
before it takes a connection: the first caller turn after a deploy must not pay for SDK
imports, first-use paths and connection set-up on the event loop every call shares."""

from __future__ import annotations

import time
import urllib.request
from typing import Any

from tests.conftest import _free_port, start_uvicorn


def test_the_provider_clients_are_warmed_before_the_server_takes_a_connection(providers: Any) -> None:
    anthropic, deepgram = providers["anthropic"], providers["deepgram"]
    counted_before = len(anthropic.token_counts())
    sockets_before = {c["id"] for c in deepgram.requests()}

    with start_uvicorn():
        # The server answered its first request: by then (no call made) Claude's client
        # has taken the request path once and a Deepgram TTS socket has been opened.
        warm_ups = anthropic.token_counts()[counted_before:]
        assert [r["status"] for r in warm_ups] == [200]
        speak = [c for c in deepgram.requests() if c["id"] not in sockets_before and c["kind"] == "speak"]
        assert len(speak) == 1
        assert speak[0]["flushes"] == 1 and speak[0]["closed_at"] is not None


def test_providers_that_cannot_be_reached_do_not_keep_the_server_from_starting() -> None:
    closed = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    started = time.monotonic()
    with start_uvicorn({"ANTHROPIC_BASE_URL": closed, "DEEPGRAM_BASE_URL": closed}) as (_, url):
        with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
            assert response.status == 200
        assert time.monotonic() - started < 25
