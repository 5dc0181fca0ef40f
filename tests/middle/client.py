"""An ASGI client as small as a server's view of the application: one request, its response messages as they are
sent (a one-message buffer, so the application waits for a reader as it would for a slow socket), and a hang-up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote, urlencode

import orjson

from chat2api_site.asgi import application
from tests.spec import sse_data
from tokens.models import Credential
from tokens.pool import pool

AUTH = {"Authorization": "Bearer test-code"}


async def released(cred: Credential) -> bool:
    """Whether the credential's slots all came back (a release runs just after the response closed)."""
    for _ in range(100):
        if await pool.state.in_flight(cred.pk, time.time()) == 0:
            return True
        await asyncio.sleep(0.01)
    return False


async def loaded() -> None:
    """The pool as the database has it now, as a server's watcher would see it within `POOL_RELOAD_SECONDS`."""
    await pool.ready()
    await pool.reload(force=True)


class Exchange:
    """One request to the application, running in this event loop."""

    def __init__(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
    ) -> None:
        """`path` as a client sends it (percent-encoded); the server decodes it for the application."""
        self._body: bytes | None = body
        self._sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1)
        self._gone = asyncio.Event()
        self.status = 0
        self.headers: dict[str, str] = {}
        fields = {"host": "testserver", "content-length": str(len(body)), **{**AUTH, **(headers or {})}}
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": unquote(path),
            "raw_path": path.encode(),
            "query_string": urlencode(query or {}).encode(),
            "root_path": "",
            "headers": [(k.lower().encode(), v.encode()) for k, v in fields.items()],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        self.task = asyncio.ensure_future(application(scope, self._receive, self._send))

    async def _receive(self) -> dict[str, Any]:
        if self._body is not None:
            body, self._body = self._body, None
            return {"type": "http.request", "body": body, "more_body": False}
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: dict[str, Any]) -> None:
        if not self._gone.is_set():  # a server drops what is sent to a client that left
            await self._sent.put(message)

    async def _next(self) -> dict[str, Any]:
        """The next message sent; fails rather than hangs when the application ended without it."""
        getting = asyncio.ensure_future(self._sent.get())
        await asyncio.wait({getting, self.task}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if not getting.done():
            getting.cancel()
            if self.task.done():
                self.task.result()  # the application's own exception, if it raised one
            raise AssertionError("the application sent nothing more")
        return getting.result()

    async def start(self) -> Exchange:
        """Wait for the response's status and headers."""
        message = await self._next()
        assert message["type"] == "http.response.start", message
        self.status = message["status"]
        self.headers = {k.decode().lower(): v.decode() for k, v in message["headers"]}
        return self

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body's pieces as the application sends them, to its end."""
        if not self.status:
            await self.start()
        while True:
            message = await self._next()
            if message.get("body"):
                yield message["body"]
            if not message.get("more_body", False):
                return

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])

    async def leave(self) -> None:
        """Hang up, then wait until the application has finished with the request."""
        self._gone.set()
        while not self._sent.empty():
            self._sent.get_nowait()
        await asyncio.wait_for(self.task, 10)


def post(path: str, body: dict[str, Any] | bytes) -> Exchange:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return Exchange("POST", path, content, {"Content-Type": "application/json"})


async def call(path: str, body: dict[str, Any] | bytes) -> tuple[Exchange, bytes]:
    """A whole POST exchange: the response's status and headers, and its body."""
    exchange = post(path, body)
    return exchange, await exchange.read()


async def get(path: str, query: dict[str, str] | None = None) -> tuple[Exchange, bytes]:
    exchange = Exchange("GET", path, query=query)
    return exchange, await exchange.read()


def streamed_text(raw: bytes) -> str:
    """The answer's text in a chat stream's chunks."""
    chunks = [orjson.loads(data) for data in sse_data(raw.decode()) if data != "[DONE]"]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
