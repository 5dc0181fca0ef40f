"""Streamed upstream requests on curl_cffi's own handles, without its `requests` layer.

Every answer opens one streamed request upstream. curl_cffi's `AsyncSession.request` builds each through a
general-purpose option setter (cookies, impersonation, redirects, a parsed `Headers`, an `asyncio.Queue`, two
events and a task per stream): measured at about 0.2 ms of CPU per request, a fifth of what the gateway spends on
one. Here a pooled `Curl` handle gets only the options an API call needs, the body's chunks land in a list, and
one future wakes the reader. It is still curl_cffi as a plain HTTP client: libcurl's own TLS with certifi's CAs,
no impersonation, the honest User-Agent of `common.http`. Redirects are not followed: an API answers where it
was asked, and a credential's headers must not ride to another host.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator

from curl_cffi import Curl, CurlError, CurlOpt
from curl_cffi.aio import AsyncCurl
from curl_cffi.const import CurlECode
from django.conf import settings

from common.http import USER_AGENT

# How long a transfer whose reader has what it needs (`[DONE]`) may take to end, so its connection can be reused.
FINISH_GRACE_SECONDS = 1.0


class TransferFailed(Exception):
    """The connection failed or timed out (`timed_out`); its text is libcurl's name for what happened."""

    def __init__(self, code: int) -> None:
        try:
            reason = CurlECode(code).name
        except ValueError:
            reason = f"curl error {code}"
        super().__init__(reason)
        self.timed_out = code == CurlECode.OPERATION_TIMEDOUT


class _Handles:
    """One event loop's curl multi handle, its idle easy handles (by proxy), and the cap on transfers at once."""

    def __init__(self) -> None:
        self.multi = AsyncCurl()
        self.idle: dict[str, list[Curl]] = {}
        self.slots = asyncio.Semaphore(settings.UPSTREAM_MAX_CLIENTS)

    def take(self, proxy: str) -> Curl:
        idle = self.idle.get(proxy)
        return idle.pop() if idle else _new_handle(proxy)

    def give_back(self, curl: Curl, proxy: str) -> None:
        curl.clean_handles_and_buffers()  # the transfer's header list, body and callbacks; the options stay
        self.idle.setdefault(proxy, []).append(curl)


def _new_handle(proxy: str) -> Curl:
    """A handle with the options every transfer through `proxy` shares, set once: a transfer sets only its own."""
    curl = Curl()
    setopt = curl.setopt
    setopt(CurlOpt.POST, 1)
    setopt(CurlOpt.ACCEPT_ENCODING, b"")  # every encoding libcurl decodes
    # A stream may idle for minutes while a model thinks: the read timeout is a floor of 1 byte/s over it (libcurl
    # averages the speed over its last few seconds, so a stall is seen up to ~6 s past the timeout).
    setopt(CurlOpt.CONNECTTIMEOUT_MS, int(settings.UPSTREAM_CONNECT_TIMEOUT * 1000))
    setopt(CurlOpt.LOW_SPEED_LIMIT, 1)
    setopt(CurlOpt.LOW_SPEED_TIME, math.ceil(settings.UPSTREAM_CONNECT_TIMEOUT + settings.UPSTREAM_READ_TIMEOUT))
    # libcurl keeps a 64 KB upload buffer per transfer for as long as the answer streams; 16 KB is its minimum.
    setopt(CurlOpt.UPLOAD_BUFFERSIZE, 16384)
    if proxy:
        setopt(CurlOpt.PROXY, proxy)
        setopt(CurlOpt.PROXY_CREDENTIAL_NO_REUSE, 1)  # a new proxy user, a new connection
    return curl


# By loop id: each entry's multi handle holds its loop, so no later loop can take over a dead one's id.
_handles: dict[int, _Handles] = {}


def _for_loop() -> _Handles:
    key = id(asyncio.get_running_loop())
    handles = _handles.get(key)
    if handles is None:
        handles = _handles[key] = _Handles()
    return handles


async def open_transfer(method: str, url: str, headers: dict[str, str], body: bytes, proxy: str = "") -> Transfer:
    """Send the request and return once the answer's status and headers are in, its body unread."""
    handles = _for_loop()
    await handles.slots.acquire()
    transfer = Transfer(handles, handles.take(proxy), proxy)
    try:
        transfer.start(method, url, headers, body)
        await transfer.head
    except BaseException:
        await transfer.aclose()
        raise
    if not transfer.status_code:  # ended before any answer: the connection failed
        failure = transfer.failure()
        await transfer.aclose()
        raise failure if failure is not None else TransferFailed(CurlECode.GOT_NOTHING)
    return transfer


class Transfer:
    """One request on a pooled handle: `status_code` and `headers` (lower-case names) once it is open, then its body
    as chunks or lines. Closed exactly once (`aclose`), which gives the handle back."""

    def __init__(self, handles: _Handles, curl: Curl, proxy: str) -> None:
        loop = asyncio.get_running_loop()
        self.status_code = 0
        self.headers: dict[str, str] = {}
        self.head: asyncio.Future[None] = loop.create_future()
        self._handles: _Handles | None = handles
        self._curl, self._proxy = curl, proxy
        self._chunks: list[bytes] = []
        self._wake: asyncio.Future[None] | None = None
        self._done: asyncio.Future[None] | None = None

    def start(self, method: str, url: str, headers: dict[str, str], body: bytes) -> None:
        if method != "POST":  # every handle is made for one (`_new_handle`)
            raise ValueError(f"unsupported method {method}")
        curl, setopt = self._curl, self._curl.setopt
        setopt(CurlOpt.URL, url.encode())
        setopt(CurlOpt.POSTFIELDS, body)
        setopt(CurlOpt.POSTFIELDSIZE, len(body))
        lines = [f"{name}: {value}".encode() for name, value in headers.items()]
        if not any(name.lower() == "user-agent" for name in headers):
            lines.append(f"User-Agent: {USER_AGENT}".encode())
        setopt(CurlOpt.HTTPHEADER, [*lines, b"Expect:"])
        setopt(CurlOpt.HEADERFUNCTION, self._on_header)
        setopt(CurlOpt.WRITEFUNCTION, self._on_body)
        if proxy := self._proxy:  # an https upstream is reached through a tunnel (a socks proxy is one already)
            setopt(CurlOpt.HTTPPROXYTUNNEL, int(url.startswith("https:") and not proxy.startswith("socks")))
        assert self._handles is not None
        self._done = self._handles.multi.add_handle(curl)
        self._done.add_done_callback(self._ended)

    def _on_header(self, line: bytes) -> int:
        if line.startswith(b"HTTP/"):  # a new block (after a 1xx): its own status and headers
            self.status_code, self.headers = int(line.split(None, 2)[1]), {}
        elif line.strip():
            name, _, value = line.partition(b":")
            self.headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
        elif self.status_code >= 200 and not self.head.done():
            self.head.set_result(None)
        return len(line)

    def _on_body(self, chunk: bytes) -> int:
        self._chunks.append(chunk)
        self._wake_reader()
        return len(chunk)

    def _wake_reader(self) -> None:
        wake, self._wake = self._wake, None
        if wake is not None and not wake.done():
            wake.set_result(None)

    def _ended(self, done: asyncio.Future[None]) -> None:
        if not done.cancelled():
            done.exception()  # retrieved here: a failure nobody reads (an aborted answer) is not an asyncio warning
        if not self.head.done():
            self.head.set_result(None)
        self._wake_reader()

    def failure(self) -> TransferFailed | None:
        """How the transfer ended, when it did not end well."""
        done = self._done
        if done is None or not done.done() or done.cancelled() or done.exception() is None:
            return None
        exc = done.exception()
        return TransferFailed(exc.code if isinstance(exc, CurlError) else CurlECode.WRITE_ERROR)

    async def aiter_content(self) -> AsyncIterator[bytes]:
        """The body as it arrives; a transfer that breaks off raises `TransferFailed`."""
        while True:
            if self._chunks:
                chunks, self._chunks = self._chunks, []
                for chunk in chunks:
                    yield chunk
                continue
            done = self._done
            if done is None or done.done():
                failure = self.failure()
                if failure is not None:
                    raise failure
                return
            self._wake = asyncio.get_running_loop().create_future()
            await self._wake

    async def aiter_lines(self) -> AsyncIterator[bytes]:
        """The body's lines without their ends (CR, LF or CRLF, as in SSE)."""
        pending = b""
        async for chunk in self.aiter_content():
            data = pending + chunk
            lines = data.splitlines()
            # Held back: an unfinished last line, with its CR when that may be the first half of a CRLF.
            pending = b"" if data.endswith(b"\n") else lines.pop() + (b"\r" if data.endswith(b"\r") else b"")
            for line in lines:
                yield line
        for line in pending.splitlines():
            yield line

    async def acontent(self) -> bytes:
        return b"".join([chunk async for chunk in self.aiter_content()])

    async def aclose(self, finished: bool = False) -> None:
        """Give the handle back. A transfer still running is aborted (its connection closed at once) unless the
        caller read it to its end (`finished`)."""
        handles, self._handles = self._handles, None
        if handles is None:
            return
        done = self._done
        try:
            if done is not None and not done.done():
                if finished:  # the last bytes are in: let the transfer end, so its connection is kept for reuse
                    await asyncio.wait_for(asyncio.shield(done), FINISH_GRACE_SECONDS)
                else:
                    handles.multi.remove_handle(self._curl)
        except asyncio.CancelledError:
            handles.multi.remove_handle(self._curl)
            raise
        except TimeoutError:  # an upstream that idles after its last event: its connection is not worth a slot
            handles.multi.remove_handle(self._curl)
        except CurlError:
            pass  # broke off after the caller's last byte: the answer it read is whole
        finally:
            handles.give_back(self._curl, self._proxy)
            handles.slots.release()
