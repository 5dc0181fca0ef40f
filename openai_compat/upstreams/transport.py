"""HTTP plumbing shared by the adapters: one POST that streams (`common.transfer`), SSE data lines, error text."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from curl_cffi.requests import Response
from curl_cffi.requests.exceptions import RequestException, Timeout

from common.http import proxy_for
from common.masking import redact
from common.transfer import Transfer, TransferFailed, open_transfer
from openai_compat.upstreams.base import UpstreamCredential, UpstreamError

MAX_REASON = 300


async def open_stream(url: str, cred: UpstreamCredential, headers: dict[str, str], body: dict[str, Any]) -> Transfer:
    """POST `body` and return the answer with its body unread (the caller closes it: `Transfer.aclose`); transport
    failures become `UpstreamError`."""
    try:
        return await open_transfer("POST", url, headers, payload(body), proxy_for(cred.id))
    except TransferFailed as exc:
        raise broken(exc) from None


def payload(body: dict[str, Any]) -> bytes:
    """`body` as JSON in a bytes object of its own size: curl holds it for the whole answer, and orjson's output
    keeps the 4 KB of its first buffer behind even a short body (4 MB per 1,000 open streams)."""
    return memoryview(orjson.dumps(body)).tobytes()


async def sse_data(response: Transfer) -> AsyncIterator[bytes]:
    """The payloads of the `data:` lines of an SSE body; a broken connection becomes `UpstreamError`."""
    try:
        async for line in response.aiter_lines():
            if line.startswith(b"data:"):
                yield line[5:].strip()
    except TransferFailed as exc:
        raise broken(exc) from None


def broken(exc: TransferFailed) -> UpstreamError:
    return UpstreamError(transport_reason(exc), status=504 if exc.timed_out else 502)


async def close_stream(response: Response, finished: bool = False) -> None:
    """End a streamed response; unless the caller read it to its end (`finished`), abort the transfer now.

    curl_cffi's `Response.aclose()` only waits for the transfer to finish: for an answer whose client went
    away that is the whole rest of it. Setting `quit_now` (as its sync `close()` does) aborts only when the
    next chunk arrives, which from a model that is thinking can be many seconds away. Cancelling the
    transfer's task removes the handle from curl's multi handle: the connection is closed at once. A body
    read to its end is left to finish, so that its connection goes back to the pool.
    """
    # curl_cffi declares these a bare Awaitable and None; a streamed response holds the transfer's Task and an Event.
    task: asyncio.Task[None] | None = response.astream_task  # type: ignore[assignment]
    if not finished and task is not None and not task.done():
        response.quit_now.set()  # type: ignore[attr-defined]
        task.cancel()
        await asyncio.wait({task})
        return
    await response.aclose()


def transport_reason(exc: RequestException | TransferFailed) -> str:
    if isinstance(exc, TransferFailed):
        return "The upstream did not answer in time." if exc.timed_out else f"The upstream connection failed ({exc})."
    if isinstance(exc, Timeout):
        return "The upstream did not answer in time."
    return f"The upstream connection failed ({type(exc).__name__})."


def error_text(raw: bytes, cred: UpstreamCredential) -> str:
    """The upstream's own reason from an error body (JSON `error.message` / `detail`, or text), secrets masked."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        doc = None
    text = raw.decode(errors="replace").strip()
    if isinstance(doc, dict):
        found = doc.get("error") or doc.get("detail") or doc.get("message") or doc
        if isinstance(found, dict):
            found = found.get("message") or found.get("code") or found
        text = found if isinstance(found, str) else orjson.dumps(found).decode()
    return scrub(text[:MAX_REASON] or "no reason given", cred)


def scrub(text: str, cred: UpstreamCredential) -> str:
    return redact(text, cred.api_key, cred.access_token, cred.refresh_token)


def retry_after(headers: Any, default: float) -> float:
    try:
        return max(1.0, float(headers.get("retry-after") or default))
    except ValueError:
        return default
