"""The request body limit (`MAX_REQUEST_BYTES`) applied before a body is read, for every ASGI server.

An over-limit declared `Content-Length` is answered 413 at once, without reading the body; a chunked
body is counted as it arrives and refused as soon as it passes the limit. A body with a declared length
needs no counting: the server never delivers more than the length declared.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from django.conf import settings

from openai_compat.schema import too_large

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
DISCONNECT = {"type": "http.disconnect"}


def too_large_response() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers and body of the 413; the connection closes after it (the body is left unread)."""
    body = orjson.dumps(too_large(settings.MAX_REQUEST_BYTES).body())
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    return 413, [*headers, (b"connection", b"close")], body


async def refuse(send: Send) -> None:
    status, headers, body = too_large_response()
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def declared_length(scope: dict[str, Any]) -> int | None:
    """The request's `Content-Length`, or None for a chunked body (or none at all)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def limited(receive: Receive, send: Send) -> Receive:
    """`receive` for a chunked body: past the limit it answers 413 and tells the reader the client left."""
    seen = 0

    async def receive_limited() -> dict[str, Any]:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > settings.MAX_REQUEST_BYTES:
                await refuse(send)
                return DISCONNECT
        return message

    return receive_limited
