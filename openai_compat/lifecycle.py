"""Who owns a streamed answer's credential slot, from the moment it is picked until it is given back.

A client may leave at any moment: while credentials are being picked, between the view's return and the
first byte of the body (Django then never iterates the body, so no `finally` inside it would run), during
the keep-alive comments, or mid-answer. Each moment used to need its own patch; instead there is one chain
of owners, each of whose `close` is certain to run: the response closes its `StreamBody` (Django calls the
closers of every response it got, however the request ended), the body closes its `Starting`, which
cancels the start (so no further credential is picked and nothing more is opened upstream) or closes the
`Answer` it produced (which releases the slot). Closing twice is harmless at every step.

`Starting` also owns the wait for the start, for every stream (chat, Responses): up to `KEEPALIVE_SECONDS` before
the response commits to a status (`opened`), then `: keep-alive` comments every `KEEPALIVE_SECONDS` until the answer
starts (`frames`). Comments commit to nothing, so failover stays possible, and idle proxies keep the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

from django.conf import settings

from common.logs import current_request_id
from openai_compat import sse
from openai_compat.errors import APIError, fault
from openai_compat.services import Answer
from tokens.leases import background


class _Owned:
    """`close()` may be called from any thread, any number of times; the closing itself runs once, on the
    event loop, to its end (a background task: the request that asked for it may be cancelled meanwhile)."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._closing: asyncio.Task | None = None

    def close(self) -> None:
        try:
            here = asyncio.get_running_loop() is self._loop
        except RuntimeError:  # a worker thread (Django's own ASGI handler closes responses in one)
            here = False
        if not here:
            self._loop.call_soon_threadsafe(self.close)
        elif self._closing is None:
            self._closing = background(self._release())

    async def aclose(self) -> None:
        self.close()
        assert self._closing is not None, "close() in this loop started the release"
        await asyncio.shield(self._closing)

    async def _release(self) -> None:
        raise NotImplementedError


class Starting(_Owned):
    """The task that picks a credential and opens its answer (`start_answer`), then the answer it made."""

    def __init__(self, start: Coroutine[Any, Any, Answer]) -> None:
        super().__init__()
        self._task = asyncio.ensure_future(start)
        self._task.add_done_callback(_retrieve)

    async def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the answer to start (or fail); True when it did."""
        await asyncio.wait({self._task}, timeout=timeout)
        return self._task.done()

    def result(self) -> Answer:
        """The started answer; raises the start's `APIError` when no credential could answer."""
        return self._task.result()

    async def opened(self) -> Answer | None:
        """Wait up to `KEEPALIVE_SECONDS` for the start: its answer, or None while it is still being prepared (the
        response then commits to a kept-alive stream). A start that failed by then raises its error, still an HTTP
        status; nothing stays held."""
        try:
            return self.result() if await self.wait(settings.KEEPALIVE_SECONDS) else None
        except BaseException:  # the client left, or the start failed
            self.close()
            raise

    async def frames(
        self, answered: Callable[[Answer], AsyncIterator[bytes]], failed: Callable[[APIError], bytes]
    ) -> AsyncGenerator[bytes, None]:
        """A stream's whole body: `: keep-alive` comments every `KEEPALIVE_SECONDS` until the answer starts, then
        the frames `answered` renders of it; a start that failed is the one frame `failed` renders of its error.
        This is closed by its owner (`StreamBody`), whenever the client leaves."""
        try:
            while not await self.wait(settings.KEEPALIVE_SECONDS):
                yield sse.KEEPALIVE
            answer = self.result()
        except APIError as err:
            yield failed(err)
            return
        except Exception as exc:
            yield failed(fault(exc, current_request_id(), "a stream's start"))
            return
        async for frame in answered(answer):
            yield frame

    async def _release(self) -> None:
        self._task.cancel()  # does nothing once the answer has started
        await asyncio.wait({self._task})
        if not self._task.cancelled() and self._task.exception() is None:
            await self._task.result().close()


class StreamBody(_Owned):
    """A `StreamingHttpResponse` body that owns what its frames read (`release` closes it, e.g. a `Starting`'s
    `aclose`): Django registers the body's `close` as one of the response's closers."""

    def __init__(self, frames: AsyncGenerator[bytes, None], release: Callable[[], Awaitable[None]]) -> None:
        super().__init__()
        self._frames, self._release_held = frames, release

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._frames

    async def _release(self) -> None:
        with contextlib.suppress(RuntimeError):  # still running: its own `finally` closes what it opened
            await self._frames.aclose()
        await self._release_held()


def _retrieve(task: asyncio.Task) -> None:
    """Mark the start's failure as seen: it reaches the client through `result()`, or the client is gone."""
    if not task.cancelled():
        task.exception()
