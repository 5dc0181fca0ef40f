"""Refuse an oversized request body under daphne before it is read.

Daphne (Twisted) buffers a request's whole body before the application sees the request, so the ASGI
handler's limit (asgi.py) comes too late there: a declared length over `MAX_REQUEST_BYTES` would be
waited for, and a chunked body stored whole. This request class applies the limit inside Twisted: a
declared `Content-Length` is refused as soon as the headers are in, a chunked body as soon as it passes
the limit; either way with the API's 413 error and then the connection is closed (the rest of the body is
never read). `install()` makes daphne's protocol use it; daphne looks the class up when it builds each
connection.
"""

from __future__ import annotations

from daphne import http_protocol
from django.conf import settings

from chat2api_site.limits import too_large_response


class LimitedRequest(http_protocol.WebRequest):
    received = 0
    refused = False

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > settings.MAX_REQUEST_BYTES:
            self.refuse()
        super().gotLength(0 if self.refused else length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.refused:
            return
        self.received += len(data)
        if self.received > settings.MAX_REQUEST_BYTES:
            self.refuse()
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if not self.refused:
            super().requestReceived(command, path, version)

    def refuse(self) -> None:
        self.refused = True
        status, headers, body = too_large_response()
        head = b"".join(b"%s: %s\r\n" % pair for pair in headers)
        self.channel.transport.write(b"HTTP/1.1 %d Request Entity Too Large\r\n%s\r\n%s" % (status, head, body))
        self.channel.loseConnection()


def install() -> None:
    http_protocol.WebRequest = LimitedRequest
