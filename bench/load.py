"""The load generator: one asyncio process, aiohttp with a connection pool sized to the concurrency.

`python -m bench.load '<json config>'` runs the phases against one target and prints one JSON object.
Parsing is kept minimal: a reply is read whole, a stream is read until it ends with `data: [DONE]`.
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
from typing import Any

import aiohttp

from bench.common import core_busy_seconds, cpu_seconds, family, open_fds, raise_nofile, rss_mb

DONE = b"data: [DONE]\n\n"
Request = Callable[[aiohttp.ClientSession], Awaitable[float | None]]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Target:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.url = cfg["url"].rstrip("/") + "/chat/completions"
        self.headers = {"Authorization": f"Bearer {cfg['key']}", "Content-Type": "application/json"}
        messages = [{"role": "user", "content": "Say hello"}]
        self.plain = json.dumps({"model": cfg["model"], "messages": messages}).encode()
        self.stream = json.dumps({"model": cfg["model"], "messages": messages, "stream": True}).encode()
        slow = cfg.get("slow_model") or cfg["model"]
        self.slow = json.dumps({"model": slow, "messages": messages, "stream": True}).encode()

    async def reply(self, session: aiohttp.ClientSession) -> float | None:
        """Seconds to the whole non-stream reply, or None on a failure."""
        start = time.perf_counter()
        async with session.post(self.url, data=self.plain, headers=self.headers) as resp:
            await resp.read()
            if resp.status != 200:
                return None
        return time.perf_counter() - start

    async def first_chunk(self, session: aiohttp.ClientSession) -> float | None:
        """Seconds to the first body bytes of a stream (read to `[DONE]` afterwards), or None on a failure."""
        start = time.perf_counter()
        async with session.post(self.url, data=self.stream, headers=self.headers) as resp:
            if resp.status != 200:
                await resp.read()
                return None
            tail = await resp.content.readany()
            first = time.perf_counter() - start
            while not tail.endswith(DONE):
                more = await resp.content.readany()
                if not more:
                    return None
                tail = tail[-16:] + more
        return first


async def run(
    request: Request,
    concurrency: int,
    count: int,
    seconds: float,
    warmup: int,
    pid: int | None,
    core: int = 0,
    helpers: tuple[int, ...] = (),
) -> dict[str, Any]:
    """`count` requests (at most `seconds`) from `concurrency` workers sharing one pooled session."""
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        values: list[float] = []
        errors = 0
        issued = 0

        async def worker(total: int, deadline: float, keep: bool) -> None:
            nonlocal errors, issued
            while issued < total and time.perf_counter() < deadline:
                issued += 1
                try:
                    value = await request(session)
                except (aiohttp.ClientError, TimeoutError):
                    value = None
                if value is None:
                    errors += 1
                elif keep:
                    values.append(value)

        await asyncio.gather(*(worker(warmup, time.perf_counter() + 20, False) for _ in range(concurrency)))
        values, errors, issued = [], 0, 0
        mine = [os.getpid(), *helpers]  # this process and the fake upstream, on the other core
        gateway = family(pid) if pid else []  # the server and its worker processes
        cpu_before = sum(map(cpu_seconds, gateway)) if pid else None
        core_before, other_before = core_busy_seconds(core), core_busy_seconds(1 - core)
        mine_before = sum(cpu_seconds(p) for p in mine)
        start = time.perf_counter()
        await asyncio.gather(*(worker(count, start + seconds, True) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        cpu = sum(map(cpu_seconds, gateway)) - cpu_before if pid else None
        core_busy = core_busy_seconds(core) - core_before
        client = sum(cpu_seconds(p) for p in mine) - mine_before
        other_busy = core_busy_seconds(1 - core) - other_before - client
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
    connector = aiohttp.TCPConnector(limit=streams, limit_per_host=streams)
    timeout = aiohttp.ClientTimeout(total=seconds + 30)
    opened, failed = 0, 0
    why: Counter[str] = Counter()
    all_open, release = asyncio.Event(), asyncio.Event()

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal opened, failed
        try:
            async with session.post(target.url, data=target.slow, headers=target.headers) as resp:
                if resp.status != 200 or not await resp.content.readany():
                    failed += 1
                    why[f"HTTP {resp.status}"] += 1
                    return
                opened += 1
                if opened + failed == streams:
                    all_open.set()
                await release.wait()
                resp.close()  # hang up mid-stream: the gateway must cancel its upstream request
        except (aiohttp.ClientError, TimeoutError) as exc:
            failed += 1
            why[type(exc).__name__] += 1
        if opened + failed == streams:
            all_open.set()

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter()
        tasks = []
        for i in range(streams):  # paced a little (50 per 50 ms), not a burst that overflows accept queues
            tasks.append(asyncio.create_task(one(session)))
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
    out["json_c1"] = await run(target.reply, 1, cfg["c1_requests"], seconds, 30, pid)
    if pid:
        out["rss_idle_mb"] = rss_mb(pid)
    step("non-stream, c=32")
    helpers = tuple(cfg.get("helpers", ()))
    out["json_c32"] = await run(target.reply, 32, cfg["c32_requests"], seconds, 320, pid, helpers=helpers)
    step("stream, c=1")
    out["stream_c1"] = await run(target.first_chunk, 1, cfg["c1_streams"], seconds, 30, pid)
    step("stream, c=32")
    out["stream_c32"] = await run(target.first_chunk, 32, cfg["c32_streams"], seconds, 320, pid)
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
