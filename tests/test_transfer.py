"""common.transfer against real loopback servers: what goes on the wire, what the reader gets, and that every handle
and slot comes back however a transfer ends. The servers are raw asyncio ones, answering by hand: the tests need
to place TCP writes and to see the connection itself (its client port, its end)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from common import transfer
from common.http import USER_AGENT
from common.transfer import FINISH_GRACE_SECONDS, Transfer, TransferFailed, open_transfer

T = TypeVar("T")
BODY = b'{"model": "m", "stream": true}'
SSE = b"data: {}\n\ndata: [DONE]\n\n"


@dataclass
class Request:
    line: str
    headers: list[tuple[str, str]]
    body: bytes
    port: int  # the client's port: two requests on one connection share it

    def header(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name]


Answer = Callable[[Request, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Server:
    """HTTP/1.1 on a loopback port, connections kept alive; `answer` writes each response itself."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[Request] = []
        self.connections = 0
        self.closed = asyncio.Event()  # a connection ended (the client hung up, or the answer closed it)
        self._open: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Hang up on the connections still open and let their answers end (a cancelled one is an asyncio error)."""
        self._server.close()
        for writer in self._open.values():
            writer.transport.abort()
        await asyncio.gather(*self._open)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._open[task] = writer
        self.connections += 1
        port = writer.get_extra_info("peername")[1]
        try:
            while not writer.is_closing() and (request := await read_request(reader, port)) is not None:
                self.requests.append(request)
                await self.answer(request, reader, writer)
        except ConnectionError:
            pass  # the client hung up mid-answer
        finally:
            writer.close()
            self.closed.set()
            del self._open[task]


async def read_request(reader: asyncio.StreamReader, port: int) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    line, *fields = head[:-4].decode("latin-1").split("\r\n")
    headers = [(name.strip(), value.strip()) for name, _, value in (field.partition(":") for field in fields)]
    request = Request(line, headers, b"", port)
    length = request.header("content-length")
    request.body = await reader.readexactly(int(length[0])) if length else b""
    return request


def response(status: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    """A whole answer with its length, so the connection stays open for the next request."""
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers.items()), f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def replying(status: str, headers: dict[str, str], body: bytes = b"") -> Answer:
    async def answer(request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(response(status, headers, body))
        await writer.drain()

    return answer


async def silent(request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Never answer: wait for the client to hang up."""
    await reader.read()


async def dribble(request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A stream that sends its head and one chunk, then thinks for 5 s unless the client hangs up first."""
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nfirst")
    await writer.drain()
    try:
        hung_up = await asyncio.wait_for(reader.read(1), 5) == b""
    except ConnectionError:
        hung_up = True
    except TimeoutError:
        hung_up = False
    if not hung_up:
        writer.write(b"later")
    writer.close()


async def drop_mid_body(request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
    await writer.drain()
    writer.close()


def run(scenario: Coroutine[Any, Any, T]) -> T:
    """Each test on a loop of its own (so on handles of its own), bounded so a hang fails instead of stalling."""
    return asyncio.run(asyncio.wait_for(scenario, 10))


def post(url: str, headers: dict[str, str] | None = None, proxy: str = "") -> Coroutine[Any, Any, Transfer]:
    return open_transfer("POST", url + "/v1/chat", headers or {}, BODY, proxy)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stopping(body: AsyncIterator[bytes]) -> aclosing[AsyncGenerator[bytes, None]]:
    """A reader that stops early closes the body's generator (typed an iterator by common.transfer)."""
    assert isinstance(body, AsyncGenerator)
    return aclosing(body)


async def until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.01)


@pytest.mark.parametrize(
    ("given", "sent"),
    [({}, USER_AGENT), ({"User-Agent": "caller/2"}, "caller/2"), ({"user-agent": "caller/3"}, "caller/3")],
)
def test_request_and_head(given: dict[str, str], sent: str) -> None:
    """The request carries the caller's headers and body and exactly one User-Agent; the answer's header names
    come back lower-case, before the body is read."""
    answer = replying("200 OK", {"Content-Type": "text/event-stream", "X-Request-ID": "req-1"}, b"hello")

    async def scenario() -> tuple[Transfer, bytes, Request]:
        async with Server(answer) as server:
            got = await post(server.url, {"Authorization": "Bearer sk-x", "Content-Type": "application/json", **given})
            body = await got.acontent()
            await got.aclose(finished=True)
            return got, body, server.requests[0]

    got, body, request = run(scenario())
    assert (got.status_code, body) == (200, b"hello")
    assert got.headers["x-request-id"] == "req-1"
    assert got.headers["content-type"] == "text/event-stream"
    assert all(name == name.lower() for name in got.headers)
    assert request.line == "POST /v1/chat HTTP/1.1"
    assert request.header("authorization") == ["Bearer sk-x"]
    assert request.header("content-type") == ["application/json"]
    assert request.header("user-agent") == [sent]
    assert request.body == BODY


def test_error_answer_with_retry_after() -> None:
    error = b'{"error": {"message": "Rate limit reached", "type": "rate_limit"}}'
    answer = replying("429 Too Many Requests", {"Retry-After": "7", "Content-Type": "application/json"}, error)

    async def scenario() -> tuple[Transfer, bytes]:
        async with Server(answer) as server:
            got = await post(server.url)
            body = await got.acontent()
            await got.aclose(finished=True)
            return got, body

    got, body = run(scenario())
    assert (got.status_code, got.headers["retry-after"], body) == (429, "7", error)


def test_informational_block_is_not_the_head() -> None:
    """A 1xx block before the answer: status and headers are the final block's only."""

    async def answer(request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n" + response("200 OK", {"X-A": "1"}))
        await writer.drain()

    async def scenario() -> Transfer:
        async with Server(answer) as server:
            got = await post(server.url)
            await got.aclose()
            return got

    got = run(scenario())
    assert got.status_code == 200
    assert got.headers == {"x-a": "1", "content-length": "0"}


def test_lines_across_awkward_writes() -> None:
    """Lines split mid-line, several in one write, and a last line without its end: exactly the lines, in order."""
    writes = [b"data: one\n", b"data: tw", b"o\r\n\r\ndata: three\n\ndata: four\r\n", b"\r\n", b"data: fi", b"ve"]
    expected = [b"data: one", b"data: two", b"", b"data: three", b"", b"data: four", b"", b"data: five"]
    assert run(sse_lines(writes)) == expected


def test_a_crlf_split_between_writes_is_one_line_end() -> None:
    """A CR at the end of one write and its LF at the start of the next end one line, not two."""
    writes = [b"data: one\r", b"\ndata: two\r\n\r", b"\n", b"data: three\r"]
    assert run(sse_lines(writes)) == [b"data: one", b"data: two", b"", b"data: three"]


async def sse_lines(writes: list[bytes]) -> list[bytes]:
    """The lines `aiter_lines` gives for a body sent as these TCP writes, 20 ms apart (so they arrive apart)."""

    async def answer(request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
        for piece in writes:
            await asyncio.sleep(0.02)
            writer.write(piece)
            await writer.drain()
        writer.close()

    async with Server(answer) as server:
        got = await post(server.url)
        lines = [line async for line in got.aiter_lines()]
        await got.aclose(finished=True)
        return lines


def test_abort_closes_the_connection_at_once() -> None:
    """`aclose()` mid-body hangs up now, not at the stream's next chunk (5 s away); the next request gets a new
    connection."""

    async def scenario() -> tuple[float, list[Request]]:
        async with Server(dribble) as server:
            got = await post(server.url)
            async with stopping(got.aiter_content()) as chunks:
                assert await anext(chunks) == b"first"
            started = time.monotonic()
            await got.aclose()
            await asyncio.wait_for(server.closed.wait(), 2)
            waited = time.monotonic() - started
            again = await post(server.url)
            await again.aclose()
            return waited, server.requests

    waited, requests = run(scenario())
    assert waited < 0.5
    assert len(requests) == 2
    assert requests[0].port != requests[1].port


async def done_then_end(request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A chunked SSE stream whose last event comes 50 ms before the body's end, as OpenAI's do."""
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n" % (len(SSE), SSE))
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.write(b"0\r\n\r\n")
    await writer.drain()


async def read_to_done(got: Transfer) -> None:
    """Read up to the last event, as an adapter does, leaving whatever of the body comes after it."""
    async with stopping(got.aiter_lines()) as lines:
        async for line in lines:
            if line == b"data: [DONE]":
                return


def test_finished_transfer_keeps_its_connection() -> None:
    """A reader that stops at the last event, before the body's end, and closes `finished` waits for that end and
    leaves the connection for the next request (one client port); so does one that read the whole body."""

    async def scenario() -> Server:
        async with Server(done_then_end) as server:
            first = await post(server.url)
            await read_to_done(first)
            await first.aclose(finished=True)
            second = await post(server.url)
            assert await second.acontent() == SSE
            await second.aclose(finished=True)
            return server

    server = run(scenario())
    assert server.connections == 1
    assert [request.port for request in server.requests] == [server.requests[0].port] * 2


async def done_then_idle(request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The last event, then a body that never ends: it waits for the client to hang up."""
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n" % (len(SSE), SSE))
    await writer.drain()
    await asyncio.wait_for(reader.read(), 30)


def test_an_upstream_that_idles_after_its_last_event_holds_nothing(settings: Any) -> None:
    """Closing `finished` waits at most `FINISH_GRACE_SECONDS` for the body's end, then hangs up: an answer's slot is
    not held for the read timeout by an upstream that never ends its body."""

    async def scenario() -> float:
        async with Server(done_then_idle) as server:
            got = await post(server.url)
            await read_to_done(got)
            started = time.monotonic()
            await got.aclose(finished=True)
            await asyncio.wait_for(server.closed.wait(), 2)
            return time.monotonic() - started

    waited = run(scenario())
    assert FINISH_GRACE_SECONDS <= waited < FINISH_GRACE_SECONDS + 1


def test_refused_connection() -> None:
    with pytest.raises(TransferFailed) as failed:
        run(post(f"http://127.0.0.1:{closed_port()}"))
    assert not failed.value.timed_out
    assert "COULDNT_CONNECT" in str(failed.value)


def test_hang_up_before_answering() -> None:
    async def hang_up(request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async def scenario() -> None:
        async with Server(hang_up) as server:
            await post(server.url)

    with pytest.raises(TransferFailed) as failed:
        run(scenario())
    assert not failed.value.timed_out
    assert str(failed.value) == "GOT_NOTHING"


def test_connection_dropped_mid_body() -> None:
    async def scenario() -> list[bytes]:
        chunks: list[bytes] = []
        async with Server(drop_mid_body) as server:
            got = await post(server.url)
            try:
                async for chunk in got.aiter_content():
                    chunks.append(chunk)
            finally:
                await got.aclose()
        return chunks

    with pytest.raises(TransferFailed) as failed:
        run(scenario())
    assert not failed.value.timed_out
    assert str(failed.value) == "PARTIAL_FILE"


def test_read_timeout(settings: Any) -> None:
    """No answer for longer than the read timeout: `timed_out`. It is libcurl's LOW_SPEED_TIME = ceil(0.2 + 0.5) = 1 s
    below 1 byte/s, but libcurl's speed is an average over the last ~5 s, which the request's own bytes keep above
    1 byte/s: measured, it ends after 7.2 s (and after 10.2 s with LOW_SPEED_TIME 4)."""
    settings.UPSTREAM_CONNECT_TIMEOUT, settings.UPSTREAM_READ_TIMEOUT = 0.2, 0.5

    async def scenario() -> None:
        async with Server(silent) as mute:
            await post(mute.url)

    started = time.monotonic()
    with pytest.raises(TransferFailed) as failed:
        run(scenario())
    assert 1 <= time.monotonic() - started < 9.5
    assert failed.value.timed_out
    assert str(failed.value) == "OPERATION_TIMEDOUT"


def test_every_handle_and_slot_comes_back(settings: Any) -> None:
    """Transfers ending every way (finished, aborted, broken, refused, rejected before the start, cancelled while
    waiting for the head), six at a time, four rounds: the slots are all free again, each handle idles once,
    no more handles than ran at once, none left on the multi handle, and the reused handles keep working."""
    settings.UPSTREAM_MAX_CLIENTS = 8

    async def scenario() -> None:
        async with (
            Server(replying("200 OK", {}, b"whole")) as ok,
            Server(dribble) as slow,
            Server(drop_mid_body) as broken,
            Server(silent) as mute,
        ):

            async def finished() -> None:
                got = await post(ok.url)
                assert await got.acontent() == b"whole"
                await got.aclose(finished=True)
                await got.aclose(finished=True)  # a second close gives nothing back twice

            async def aborted() -> None:
                got = await post(slow.url)
                async with stopping(got.aiter_content()) as chunks:
                    await anext(chunks)
                await got.aclose()

            async def broke() -> None:
                got = await post(broken.url)
                with pytest.raises(TransferFailed):
                    await got.acontent()
                await got.aclose()

            async def refused() -> None:
                with pytest.raises(TransferFailed):
                    await post(f"http://127.0.0.1:{closed_port()}")

            async def rejected() -> None:
                with pytest.raises(ValueError):
                    await open_transfer("PUT", ok.url, {}, b"")

            async def cancelled() -> None:
                seen = len(mute.requests)
                waiting = asyncio.create_task(post(mute.url))
                await until(lambda: len(mute.requests) > seen)
                waiting.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await waiting

            ways = [finished, aborted, broke, refused, rejected, cancelled]
            for _ in range(4):
                await asyncio.gather(*(way() for way in ways))
            handles = transfer._for_loop()
            idle = handles.idle[""]  # the handles made for no proxy
            assert 1 <= len(idle) <= len(ways)
            assert len({id(curl) for curl in idle}) == len(idle)
            assert not handles.multi._curl2future
            free = 0
            while not handles.slots.locked():
                await handles.slots.acquire()  # never waits: a slot is free
                free += 1
            assert free == settings.UPSTREAM_MAX_CLIENTS

    run(scenario())


def test_through_a_proxy() -> None:
    """With a proxy the request goes to it, in absolute form, and never straight to the upstream; a request without
    one goes straight there."""

    async def scenario() -> tuple[Transfer, bytes, bytes, Server, Server]:
        async with (
            Server(replying("200 OK", {}, b"direct")) as upstream,
            Server(replying("200 OK", {"Via": "1.1 test-proxy"}, b"via proxy")) as proxy,
        ):
            got = await post(upstream.url, {"Authorization": "Bearer sk-x"}, proxy=proxy.url)
            body = await got.acontent()
            await got.aclose(finished=True)
            direct = await post(upstream.url)  # without a proxy: never on a handle made for one
            straight = await direct.acontent()
            await direct.aclose(finished=True)
            return got, body, straight, upstream, proxy

    got, body, straight, upstream, proxy = run(scenario())
    assert (got.status_code, got.headers["via"], body) == (200, "1.1 test-proxy", b"via proxy")
    assert straight == b"direct" and upstream.connections == 1 and len(upstream.requests) == 1
    [request] = proxy.requests
    assert request.line == f"POST {upstream.url}/v1/chat HTTP/1.1"
    assert request.header("authorization") == ["Bearer sk-x"]
    assert request.body == BODY
