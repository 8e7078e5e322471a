"""Running a stand-in's aiohttp server on its own event loop in a daemon thread, for
synchronous test fixtures and benchmarks; and calling into that loop from other threads."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any


class ThreadedServer:
    """Mixin: the class provides `async start(host, port) -> url`, `async stop()`, and sets
    `self._loop` / `self._loop_thread` (the loop's thread ident) when it starts."""

    thread_name = "standin"
    _loop: asyncio.AbstractEventLoop | None
    _loop_thread: int | None
    _thread: threading.Thread | None

    def start_in_thread(self, host: str = "127.0.0.1", port: int = 0) -> str:
        ready: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                url = loop.run_until_complete(self.start(host, port))  # type: ignore[attr-defined]
            except BaseException as exc:  # report to the caller
                ready.set_exception(exc)
                loop.close()
                return
            ready.set_result(url)
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name=self.thread_name, daemon=True)
        self._thread.start()
        return ready.result(timeout=30)

    def stop_thread(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self.stop(), loop).result(timeout=30)  # type: ignore[attr-defined]
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._thread = None

    def _on_loop(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on the server's loop thread (records are mutated there) and wait."""
        loop = self._loop
        if loop is None or not loop.is_running() or threading.get_ident() == self._loop_thread:
            return fn()
        fut: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            try:
                fut.set_result(fn())
            except BaseException as exc:  # hand it to the caller
                fut.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return fut.result(timeout=30)
