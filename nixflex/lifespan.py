"""The server process's start and stop (ASGI `lifespan`; Channels' router has no such
protocol, so it wraps the application in nixflex/asgi.py).

At start, before the server takes its first connection, the provider clients of the live
path are created on the server's event loop and warmed (SDK imports and first-use paths,
connection set-up): without it the first caller turn after a deploy pays for them, on the
event loop every call's audio shares. Then the interpreter is set for a process that
carries live audio (`tune_interpreter`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

logger = logging.getLogger(__name__)

WARM_UP_TIMEOUT_SECONDS = 10.0
# Collect the youngest generation every 10,000 net allocations instead of 700: the live
# path allocates per frame, and most of it dies young (halves the collector's CPU at
# 100 calls). The older generations keep their default ratios.
GC_THRESHOLDS = (10_000, 10, 10)
# How long a thread may hold the GIL while another waits for it (Python's default: 5 ms).
# The event loop gives the GIL up at every socket call, thousands of times a second; while
# a thread runs Django code (a call starting or ending, a webhook) the loop would wait up
# to the whole interval each time, and gets half as much done (a GIL convoy).
GIL_SWITCH_INTERVAL_SECONDS = 0.001

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


async def warm_provider_clients() -> None:
    """Claude's and Deepgram's clients, created and warmed side by side. A provider that
    does not answer only delays the start (bounded) and is logged: calls still work."""
    from agents import anthropic_client, deepgram_client

    results = await asyncio.gather(
        asyncio.wait_for(anthropic_client.warm(), WARM_UP_TIMEOUT_SECONDS),
        asyncio.wait_for(deepgram_client.warm(), WARM_UP_TIMEOUT_SECONDS),
        return_exceptions=True,
    )
    for name, result in zip(("anthropic", "deepgram"), results, strict=True):
        if isinstance(result, BaseException):
            logger.warning("%s client warm-up failed: %r", name, result)


def tune_interpreter() -> None:
    """Run once, at start. Everything loaded by now (Django, the SDKs: ~250,000 objects)
    lives as long as the process: frozen out of the garbage collector's reach, or a full
    collection walks it all, a stall of a few hundred ms for every call's audio at once.
    The collector's and the GIL's timings: see GC_THRESHOLDS, GIL_SWITCH_INTERVAL_SECONDS."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_SECONDS)


async def start_server_process() -> None:
    await warm_provider_clients()
    tune_interpreter()


async def close_provider_clients() -> None:
    from agents import anthropic_client

    await anthropic_client.close()


def with_lifespan(
    app: App,
    startup: Callable[[], Awaitable[None]] = start_server_process,
    shutdown: Callable[[], Awaitable[None]] = close_provider_clients,
) -> App:
    """`app` with the lifespan protocol handled: `startup` runs before the server accepts
    connections, `shutdown` after it stops. Neither can keep the server from starting or
    stopping: a failure is logged."""

    async def application(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await _run("startup", startup)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await _run("shutdown", shutdown)
                await send({"type": "lifespan.shutdown.complete"})
                return

    return application


async def _run(stage: str, step: Callable[[], Awaitable[None]]) -> None:
    try:
        await step()
    except Exception:
        logger.exception("server %s step failed", stage)
