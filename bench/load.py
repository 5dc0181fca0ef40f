"""The load generator: one asyncio process, raw asyncio protocols over keep-alive connections, one per worker.

`python -m bench.load '<json config>'` runs the phases against one target and prints one JSON object.
Requests are pre-built bytes; an answer is read by a minimal HTTP/1.1 reader (status line, headers, a body by
Content-Length or chunked to its last chunk), and a stream is good when its body ends with `data: [DONE]`.
Why not aiohttp: it and the aiohttp fake upstream spent ~0.6 ms CPU per request (these: ~0.15 ms), on the cores the
gateway shares with them under `--workers 2`.
When the config names the gateway's `pid`, CPU seconds (/proc/<pid>/stat) are read around the c=32
phases and VmRSS is sampled idle and while `hold` slow streams are open at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, cast
from urllib.parse import urlsplit

from bench.common import core_busy_seconds, cpu_seconds, family, open_fds, raise_nofile, rss_mb

DONE = b"data: [DONE]\n\n"
TIMEOUT = 60.0  # seconds an answer may take before its connection is dropped (a failure)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Connection(asyncio.Protocol):
    """One keep-alive connection, one request at a time. `send` writes it and returns a future that resolves when
    the whole answer is in (or, when asked, at its first body bytes), or fails with the connection; `status`,
    `first_at` (perf_counter at the first body bytes) and `tail` (the body's last bytes) describe the answer."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.waiter: asyncio.Future[None] | None = None
        self.at_first = False  # the waiter resolves at the first body bytes
        self.sent_at = 0.0
        self.buffer = b""
        self.status = 0
        self.first_at = 0.0
        self.tail = b""
        self.chunked = False
        self.left = 0  # body bytes still to come (chunked: of this chunk, with its CRLF); -1 while in the head
        self.last = False  # reading the CRLF after the last chunk
        self.keep = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionResetError("the server closed the connection"))

    def send(self, request: bytes, at_first: bool = False) -> asyncio.Future[None]:
        """Write `request`; the future of its whole answer (`at_first`: of its first body bytes)."""
        assert self.transport is not None
        self.waiter, self.at_first = self.loop.create_future(), at_first
        self.status, self.first_at, self.tail, self.left, self.buffer = 0, 0.0, b"", -1, b""
        self.sent_at = time.perf_counter()
        self.transport.write(request)
        return self.waiter

    def data_received(self, data: bytes) -> None:
        if self.left < 0:
            data = self.buffer + data if self.buffer else data
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = data
                return
            self.buffer = b""
            self.head(data[:end])
            data = data[end + 4 :]
            if self.left == 0 and not self.chunked:
                return self.finish()
        if self.chunked:
            self.chunks(data)
        elif data:
            self.body(data[: self.left])
            self.left -= len(data)
            if self.left <= 0:
                self.finish()

    def head(self, head: bytes) -> None:
        lines = head.decode("latin-1").lower().split("\r\n")
        self.status = int(lines[0].split(" ", 2)[1])
        headers = dict(line.partition(":")[::2] for line in lines[1:])
        self.chunked = "chunked" in headers.get("transfer-encoding", "")
        self.left = 0 if self.chunked else int(headers.get("content-length", "0"))
        self.keep = "close" not in headers.get("connection", "")
        self.last = False

    def chunks(self, data: bytes) -> None:
        """Chunked framing: sizes, data (to `body`), CRLFs; `finish` after the last chunk."""
        data = self.buffer + data if self.buffer else data
        self.buffer = b""
        pos, size = 0, len(data)
        while pos < size:
            if self.left:
                take = min(self.left, size - pos)
                content = min(take, max(0, self.left - 2))  # the chunk's data, before its CRLF
                if content:
                    self.body(data[pos : pos + content])
                pos += take
                self.left -= take
                if self.left == 0 and self.last:
                    return self.finish()
                continue
            eol = data.find(b"\r\n", pos)
            if eol < 0:
                self.buffer = data[pos:]
                return
            length = int(data[pos:eol].split(b";", 1)[0], 16)
            pos, self.left, self.last = eol + 2, length + 2, length == 0  # the last chunk: its trailing CRLF

    def body(self, data: bytes) -> None:
        if not self.first_at:
            self.first_at = time.perf_counter()
            if self.at_first:
                self.wake()
        self.tail = (self.tail + data)[-16:]

    def finish(self) -> None:
        assert self.transport is not None
        if not self.keep:
            self.transport.close()
        self.wake()

    def wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Client:
    """One worker's keep-alive connection to the target, opened again when the server closed it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.connection: Connection | None = None

    async def exchange(self, request: bytes) -> Connection:
        """Send `request` and return the connection once its whole answer is in."""
        connection = self.connection
        if connection is None or connection.closed:
            loop = asyncio.get_running_loop()
            _, connection = await loop.create_connection(Connection, self.host, self.port)
            self.connection = connection
        await connection.send(request)
        return connection

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()


Request = Callable[[Client], Awaitable[float | None]]


class Target:
    def __init__(self, cfg: dict[str, Any]) -> None:
        url = urlsplit(cfg["url"].rstrip("/") + "/chat/completions")
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        messages = [{"role": "user", "content": "Say hello"}]
        self.plain = self.request(cfg, url.path, {"model": cfg["model"], "messages": messages})
        self.stream = self.request(cfg, url.path, {"model": cfg["model"], "messages": messages, "stream": True})
        slow = cfg.get("slow_model") or cfg["model"]
        self.slow = self.request(cfg, url.path, {"model": slow, "messages": messages, "stream": True})

    def request(self, cfg: dict[str, Any], path: str, payload: dict[str, Any]) -> bytes:
        body = json.dumps(payload).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAuthorization: Bearer {cfg['key']}\r\n"
            f"Content-Type: application/json\r\nAccept: */*\r\nUser-Agent: chat2api-bench\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    def client(self) -> Client:
        return Client(self.host, self.port)

    async def reply(self, client: Client) -> float | None:
        """Seconds to the whole non-stream reply, or None on a failure."""
        start = time.perf_counter()
        connection = await client.exchange(self.plain)
        return time.perf_counter() - start if connection.status == 200 else None

    async def first_chunk(self, client: Client) -> float | None:
        """Seconds to the first body bytes of a stream (read to its end, which must be `[DONE]`), or None on a
        failure."""
        start = time.perf_counter()
        connection = await client.exchange(self.stream)
        if connection.status != 200 or not connection.tail.endswith(DONE):
            return None
        return connection.first_at - start


async def watchdog(clients: list[Client]) -> None:
    """Drop a connection whose answer takes over TIMEOUT seconds: its request fails instead of hanging the run."""
    while True:
        await asyncio.sleep(1)
        now = time.perf_counter()
        for client in clients:
            connection = client.connection
            waiter = connection.waiter if connection else None
            if connection and waiter and not waiter.done() and now - connection.sent_at > TIMEOUT:
                assert connection.transport is not None
                connection.transport.abort()


async def run(
    target: Target,
    request: Request,
    concurrency: int,
    count: int,
    seconds: float,
    warmup: int,
    pid: int | None,
    core: int = 0,
    helpers: tuple[int, ...] = (),
) -> dict[str, Any]:
    """`count` requests (at most `seconds`) from `concurrency` workers, each on its own keep-alive connection."""
    links = [target.client() for _ in range(concurrency)]
    guard = asyncio.create_task(watchdog(links))
    try:
        values: list[float] = []
        errors = 0
        issued = 0

        async def worker(link: Client, total: int, deadline: float, keep: bool) -> None:
            nonlocal errors, issued
            while issued < total and time.perf_counter() < deadline:
                issued += 1
                try:
                    value = await request(link)
                except OSError:  # the connection failed or was dropped (TimeoutError included)
                    value = None
                if value is None:
                    errors += 1
                elif keep:
                    values.append(value)

        await asyncio.gather(*(worker(link, warmup, time.perf_counter() + 20, False) for link in links))
        values, errors, issued = [], 0, 0
        mine = [os.getpid(), *helpers]  # this process and the fake upstream, on the other core
        gateway = family(pid) if pid else []  # the server and its worker processes
        cpu_before = sum(map(cpu_seconds, gateway)) if pid else None
        core_before, other_before = core_busy_seconds(core), core_busy_seconds(1 - core)
        mine_before = sum(cpu_seconds(p) for p in mine)
        start = time.perf_counter()
        await asyncio.gather(*(worker(link, count, start + seconds, True) for link in links))
        elapsed = time.perf_counter() - start
        cpu = sum(map(cpu_seconds, gateway)) - cpu_before if pid else None
        core_busy = core_busy_seconds(core) - core_before
        client = sum(cpu_seconds(p) for p in mine) - mine_before
        other_busy = core_busy_seconds(1 - core) - other_before - client
    finally:
        guard.cancel()
        for link in links:
            link.close()
    done = len(values)
    return {
        "done": done,
        "errors": errors,
        "seconds": round(elapsed, 3),
        "per_s": done / elapsed if elapsed else None,
        "p50_ms": (percentile(values, 0.50) or 0) * 1000 if values else None,
        "p99_ms": (percentile(values, 0.99) or 0) * 1000 if values else None,
        "cpu_ms_each": cpu * 1000 / (done + errors) if cpu is not None and done + errors else None,
        "client_cpu_ms_each": client * 1000 / (done + errors) if done + errors else None,  # load generator + fake
        # Share of the gateway's core taken by anything else (other processes, the hypervisor) meanwhile.
        # (clamped at 0: /proc counts in clock ticks, so a short phase can come out slightly negative)
        "others_pct": max(0.0, (core_busy - cpu) * 100 / elapsed) if cpu is not None and elapsed else None,
        "others_load_core_pct": max(0.0, other_busy * 100 / elapsed) if elapsed else None,
    }


async def hold(target: Target, streams: int, seconds: float, pid: int) -> dict[str, Any]:
    """Open `streams` slow streams at once, sample the gateway's VmRSS while all are open, then hang up."""
    loop = asyncio.get_running_loop()
    opened, failed = 0, 0
    why: Counter[str] = Counter()
    all_open, release = asyncio.Event(), asyncio.Event()

    async def one() -> None:
        nonlocal opened, failed
        connection: Connection | None = None
        try:
            async with asyncio.timeout(seconds + 30):
                _, connection = await loop.create_connection(Connection, target.host, target.port)
                await connection.send(target.slow, at_first=True)
            if connection.status != 200 or not connection.first_at:
                failed += 1
                why[f"HTTP {connection.status}"] += 1
            else:
                opened += 1
                if opened + failed == streams:
                    all_open.set()
                await release.wait()
        except OSError as exc:  # TimeoutError included
            failed += 1
            why[type(exc).__name__] += 1
        finally:
            if connection is not None:
                connection.close()  # hang up mid-stream: the gateway must cancel its upstream request
        if opened + failed == streams:
            all_open.set()

    start = time.perf_counter()
    tasks = []
    for i in range(streams):  # paced a little (50 per 50 ms), not a burst that overflows accept queues
        tasks.append(asyncio.create_task(one()))
        if i % 50 == 49:
            await asyncio.sleep(0.05)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_open.wait(), seconds)
    ramp = time.perf_counter() - start
    peak_rss, peak_fds = 0.0, 0
    for _ in range(10):
        peak_rss, peak_fds = max(peak_rss, rss_mb(pid)), max(peak_fds, open_fds(pid))
        await asyncio.sleep(0.1)
    at_peak = opened
    release.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(2)
    return {
        "open_at_peak": at_peak,
        "failed": failed,
        "why": dict(why),
        "ramp_s": round(ramp, 2),
        "rss_mb": peak_rss,
        "fds": peak_fds,
        "rss_after_mb": rss_mb(pid),
        "fds_after": open_fds(pid),
    }


async def main(cfg: dict[str, Any]) -> dict[str, Any]:
    target = Target(cfg)
    pid = cfg.get("pid")
    seconds = cfg.get("phase_seconds", 40)
    out: dict[str, Any] = {}

    def step(name: str) -> None:
        print(f"bench:   {cfg['name']}: {name}", file=sys.stderr, flush=True)

    step("non-stream, c=1")
    out["json_c1"] = await run(target, target.reply, 1, cfg["c1_requests"], seconds, 30, pid)
    if pid:
        out["rss_idle_mb"] = rss_mb(pid)
    step("non-stream, c=32")
    helpers = tuple(cfg.get("helpers", ()))
    out["json_c32"] = await run(target, target.reply, 32, cfg["c32_requests"], seconds, 320, pid, helpers=helpers)
    step("stream, c=1")
    out["stream_c1"] = await run(target, target.first_chunk, 1, cfg["c1_streams"], seconds, 30, pid)
    step("stream, c=32")
    out["stream_c32"] = await run(target, target.first_chunk, 32, cfg["c32_streams"], seconds, 320, pid)
    if pid and cfg.get("hold"):
        step(f"{cfg['hold']} slow streams open at once")
        out["hold"] = await hold(target, cfg["hold"], cfg.get("hold_seconds", 30), pid)
    return out


if __name__ == "__main__":
    raise_nofile()
    config = json.loads(sys.argv[1])
    try:
        import uvloop

        result = uvloop.run(main(config))
    except ImportError:  # pragma: no cover
        result = asyncio.run(main(config))
    print(json.dumps(result))
