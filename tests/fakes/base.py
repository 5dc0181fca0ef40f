"""Run an aiohttp application on a loopback port in a background thread, for the whole test session."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any, Self

from aiohttp import web


class FakeServer:
    """A real HTTP server on 127.0.0.1; `calls` counts requests per scenario key."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.calls: Counter[str] = Counter()
        self.requests: list[dict] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def launch(cls, make_app: Callable[..., web.Application], *args: Any) -> Self:
        """Build the app with a reference to its own server (for counters), then start it."""
        ref: list[FakeServer] = []
        server = cls(make_app(ref, *args))
        ref.append(server)
        return server.start()

    def start(self) -> Self:
        threading.Thread(target=self._run, daemon=True).start()
        self._started.wait(10)
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._runner = web.AppRunner(self.app, handle_signals=False)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._started.set()
        self._loop.run_forever()

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)

    def reset(self) -> None:
        self.calls.clear()
        self.requests.clear()
