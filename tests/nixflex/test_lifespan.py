"""The server process's lifespan: its start step runs before it takes connections, never
keeps it from starting, and sets the interpreter for live audio."""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from nixflex import lifespan


class Server:
    """Plays uvicorn's side of the lifespan protocol."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: list[str] = []

    async def receive(self) -> dict[str, Any]:
        return await self.incoming.get()

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message["type"])


async def test_the_start_step_runs_before_the_server_takes_connections() -> None:
    steps: list[str] = []
    server = Server()

    async def start() -> None:
        steps.append("start")
        assert server.sent == []  # startup.complete not sent yet

    async def stop() -> None:
        steps.append("stop")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        steps.append(scope["type"])

    application = lifespan.with_lifespan(app, startup=start, shutdown=stop)
    running = asyncio.ensure_future(application({"type": "lifespan"}, server.receive, server.send))
    await server.incoming.put({"type": "lifespan.startup"})
    await asyncio.sleep(0.05)
    assert steps == ["start"] and server.sent == ["lifespan.startup.complete"]

    await application({"type": "http"}, server.receive, server.send)  # everything else goes to the app
    await server.incoming.put({"type": "lifespan.shutdown"})
    await asyncio.wait_for(running, 1)
    assert steps == ["start", "http", "stop"]
    assert server.sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def test_a_failing_start_step_does_not_keep_the_server_from_starting() -> None:
    server = Server()

    async def start() -> None:
        raise RuntimeError("provider down")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        pass

    running = asyncio.ensure_future(
        lifespan.with_lifespan(app, startup=start)({"type": "lifespan"}, server.receive, server.send)
    )
    await server.incoming.put({"type": "lifespan.startup"})
    await asyncio.sleep(0.05)
    assert server.sent == ["lifespan.startup.complete"]
    running.cancel()


@pytest.fixture
def interpreter_settings() -> Iterator[None]:
    thresholds, interval = gc.get_threshold(), sys.getswitchinterval()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    sys.setswitchinterval(interval)


def test_startup_leaves_what_it_loaded_out_of_the_collectors_reach(interpreter_settings: None) -> None:
    assert gc.get_freeze_count() == 0
    lifespan.tune_interpreter()
    # Everything alive now (Django, the SDKs) is frozen: a full collection no longer walks it.
    assert gc.get_freeze_count() > 100_000
    assert len(gc.get_objects(generation=2)) < 1_000
    assert gc.get_threshold() == lifespan.GC_THRESHOLDS
    assert sys.getswitchinterval() == pytest.approx(lifespan.GIL_SWITCH_INTERVAL_SECONDS)
