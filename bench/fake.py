"""The fake OpenAI upstream for the benchmark: a fast port and a slow one, in one process, on raw asyncio protocols.

`python -m bench.fake --port A --slow-port B --delay S` answers `POST /v1/chat/completions` as
`tests.fakes.openai_server` answers a plain chat request, built by its own builders: a stream's chunks
(`stream_options.include_usage` honoured, then `data: [DONE]`) in chunked transfer encoding, one HTTP chunk per
event as aiohttp frames them there, or the JSON completion; `GET /v1/models` gets its model list. Port A answers
at once; port B sends a stream's chunks S seconds apart (to hold streams open), as the test fake's `delay` does.
A key starting `sk-late-` waits 1 s before any byte, as there; its other scenarios (refusals, tools, drops) are
not served: no benchmark sends them.
Why not the test fake itself: on aiohttp, it and the load generator spent ~0.6 ms CPU per request (this one and
the raw load generator: ~0.15 ms), on the cores the gateway shares with them under `--workers 2`. Here a request
is parsed by hand, and its answer is a template (built once per shape and second: `created` and `Date` are the
second's) with a fresh id stamped in.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Coroutine
from email.utils import formatdate
from functools import partial
from typing import Any, cast

import orjson

from bench.common import raise_nofile
from tests.fakes.openai_server import MODELS, WORDS, _chunk, _completion, _stream_end

ID = b'"chatcmpl-fake"'  # the test fake's id, in every chunk and completion
STAMP = b'"chatcmpl-fake-0000000000"'  # its place in a template: fixed width, so lengths and chunk sizes hold
LATE = 1.0  # seconds a `sk-late-` key waits before any byte, as in the test fake
JSON = "application/json; charset=utf-8"


class Page(list[bytes]):
    """What a test-fake writer writes: it awaits `write`, which never suspends here."""

    async def write(self, data: bytes) -> None:
        self.append(data)


def run_through(coro: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine that never suspends (a writer onto a `Page`) to its end."""
    with contextlib.suppress(StopIteration):
        coro.send(None)
        raise RuntimeError("a test-fake writer suspended")


def head(status: str, kind: str, framing: str) -> bytes:
    """Status line and headers; `framing` is the `Content-Length` or `Transfer-Encoding` line."""
    return f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\n{framing}\r\nDate: {formatdate(usegmt=True)}\r\n\r\n".encode()


def sized(kind: str, body: bytes, status: str = "200 OK") -> bytes:
    return head(status, kind, f"Content-Length: {len(body)}") + body


def chunked(events: list[bytes]) -> bytes:
    """One HTTP chunk per event, each with the id's stamp."""
    return b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in (event.replace(ID, STAMP) for event in events))


def stream(model: str, usage: bool) -> list[bytes]:
    """A streamed answer, in the parts the slow port sends `delay` apart: the head with the role chunk, then a
    word each, the last word with the finish, usage and `[DONE]` chunks and the last HTTP chunk."""
    end = Page()
    body = {"stream_options": {"include_usage": usage}}
    run_through(_stream_end(cast(Any, end), model, body, "stop", len(WORDS)))  # a Page stands in for the response
    parts = [[_chunk(model, {"role": "assistant", "content": ""})], *([_chunk(model, {"content": w})] for w in WORDS)]
    parts[-1] += end
    framed = [chunked(part) for part in parts]
    framed[0] = head("200 OK", "text/event-stream", "Transfer-Encoding: chunked") + framed[0]
    framed[-1] += b"0\r\n\r\n"
    return framed


class Templates:
    """Answers by shape, rebuilt when the second changes."""

    def __init__(self) -> None:
        self.second = 0
        self.streams: dict[tuple[str, bool], list[bytes]] = {}
        self.completions: dict[str, bytes] = {}
        self.models = sized(JSON, json.dumps({"object": "list", "data": MODELS}).encode())
        self.missing = sized("text/plain; charset=utf-8", b"404: Not Found", "404 Not Found")
        self.ids = itertools.count(1)

    def answer(self, request: dict[str, Any]) -> list[bytes]:
        """The parts of the answer to a chat request, with a fresh id."""
        now = int(time.time())
        if now != self.second:
            self.second = now
            self.streams.clear()
            self.completions.clear()
        model = request.get("model", "fake-model")
        fresh = b'"chatcmpl-fake-%010d"' % next(self.ids)
        if request.get("stream"):
            usage = bool((request.get("stream_options") or {}).get("include_usage"))
            parts = self.streams.get((model, usage))
            if parts is None:
                parts = self.streams[model, usage] = stream(model, usage)
            return [part.replace(STAMP, fresh) for part in parts]
        whole = self.completions.get(model)
        if whole is None:
            body = json.dumps(_completion(model, WORDS, None)).encode().replace(ID, STAMP)
            whole = self.completions[model] = sized(JSON, body)
        return [whole.replace(STAMP, fresh)]


class Upstream(asyncio.Protocol):
    """One client connection: HTTP/1.1 requests answered in order, kept alive; a slow or late answer holds back
    the next request until its last part is sent."""

    def __init__(self, templates: Templates, delay: float) -> None:
        self.templates, self.delay = templates, delay
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.timer: asyncio.TimerHandle | None = None  # the next part of a slow or late answer
        self.close_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:  # the client hung up mid-answer
            self.timer.cancel()
            self.timer = None

    def data_received(self, data: bytes) -> None:
        self.buffer = self.buffer + data if self.buffer else data
        if self.timer is None:
            self.serve()

    def serve(self) -> None:
        assert self.transport is not None
        while self.timer is None and not self.transport.is_closing():
            request = self.take()
            if request is None:
                return
            self.answer(*request)

    def take(self) -> tuple[str, str, dict[str, str], bytes] | None:
        """The next whole request in the buffer (method, target, lower-case headers, body), or None."""
        buffer = self.buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        lines = buffer[:end].decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        start = end + 4
        stop = start + int(headers.get("content-length") or 0)
        if len(buffer) < stop:
            return None
        self.buffer = buffer[stop:]
        method, target, _ = lines[0].split(" ", 2)
        return method, target, headers, buffer[start:stop]

    def answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> None:
        assert self.transport is not None
        self.close_after = headers.get("connection", "").lower() == "close"
        if method == "POST" and target.endswith("/chat/completions"):
            parts = self.templates.answer(orjson.loads(body))
        elif method == "GET" and target.endswith("/models"):
            parts = [self.templates.models]
        else:
            parts = [self.templates.missing]
        late = headers.get("authorization", "").startswith("Bearer sk-late-")
        if late or (self.delay and len(parts) > 1):
            self.timer = self.loop.call_later(LATE if late else 0.0, self.send, parts)
            return
        for part in parts:  # one write per event, as a real upstream (and aiohttp's fake) sends them
            self.transport.write(part)
        if self.close_after:
            self.transport.close()

    def send(self, parts: list[bytes]) -> None:
        """Write the next part of a slow or late answer; after the last, serve the next request."""
        assert self.transport is not None
        self.transport.write(parts[0])
        if len(parts) > 1:
            self.timer = self.loop.call_later(self.delay, self.send, parts[1:])
            return
        self.timer = None
        if self.close_after:
            self.transport.close()
        else:
            self.serve()


async def serve(port: int, slow_port: int, delay: float) -> None:
    loop, templates = asyncio.get_running_loop(), Templates()
    for listen, pause in ((port, 0.0), (slow_port, delay)):
        await loop.create_server(partial(Upstream, templates, pause), "127.0.0.1", listen, backlog=4096)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--slow-port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=3.0)
    args = parser.parse_args()
    raise_nofile()
    try:
        import uvloop

        run = uvloop.run
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        run = asyncio.run
    run(serve(args.port, args.slow_port, args.delay))


if __name__ == "__main__":
    main()
