"""What client keys and the request log cost per request, in-process: finding the key (a cache hit), admitting and
settling it under its limits (process memory, and Redis when one answers on `BENCH_REDIS_URL`, default
redis://127.0.0.1:6379/9, under a key prefix of its own that is deleted afterwards), and recording the request
(buffered) and writing it with its daily roll-up (SQLite, in batches of 500). A temporary database, migrated here.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import django
import redis.asyncio

REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
ROUNDS, NUMBER = 5, 2000


async def per_call_us(step: Callable[[], Awaitable[object]]) -> float:
    """The best of `ROUNDS` loops of `NUMBER` awaited calls, in µs per call."""
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(NUMBER):
            await step()
        best = min(best, time.perf_counter() - started)
    return best / NUMBER * 1e6


def costs() -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="chat2api-bench-keys-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chat2api_site.settings")
    os.environ["DATABASE_URL"] = f"sqlite:///{folder / 'db.sqlite3'}"
    django.setup()
    from django.core.management import call_command

    from tokens import clients, limits, usage

    call_command("migrate", verbosity=0)
    row, key = clients.create_key("bench", rpm=10**9, tpm=10**12, daily_tokens=10**15, monthly_tokens=10**15)
    entry = usage.Entry(
        **dict.fromkeys(("prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens"), 10),
        **{"created_at": time.time(), "key_id": row.pk, "endpoint": "/v1/chat/completions", "model": "gpt-5.5"},
        **{"credential_id": None, "kind": "openai", "status": 200, "outcome": "completed", "first_byte_ms": 5},
        **{"duration_ms": 9, "request_id": "req_bench"},
    )

    async def measured() -> dict[str, float]:
        policy = await clients.lookup(key)

        async def admitted(under: limits.Limits) -> float:
            async def step() -> None:
                await under.settle(await under.admit(policy, 100), 80)

            return await per_call_us(step)

        async def record() -> None:
            usage.record(entry)

        found = {"find the key (cached)": await per_call_us(lambda: clients.lookup(key))}
        found["admit + settle, process memory"] = await admitted(limits.LocalLimits())
        prefix = f"chat2api-bench-{uuid.uuid4().hex[:8]}"
        shared = limits.RedisLimits(REDIS, prefix)
        try:
            found["admit + settle, Redis"] = await admitted(shared)
        except OSError:
            pass  # no Redis here: the process-memory figure stands alone
        finally:
            await shared.close()
            await _forget(prefix)
        found["record a request"] = await per_call_us(record)
        return found

    found = asyncio.run(measured())
    usage.flush_now()
    started = time.perf_counter()
    for _ in range(10):
        for _ in range(500):
            usage.record(entry)
        usage.flush_now()
    found["write it with its roll-up, per request"] = (time.perf_counter() - started) / 5000 * 1e6
    return found


async def _forget(prefix: str) -> None:
    """Delete the benchmark's keys in Redis."""
    client = redis.asyncio.Redis.from_url(REDIS)
    try:
        async for name in client.scan_iter(f"{prefix}:*"):
            await client.delete(name)
    except OSError:
        pass
    finally:
        await client.aclose()


def line() -> str:
    return "Client keys and the request log per request (best of 5): " + "; ".join(
        f"{k}: {v:.1f} µs" for k, v in costs().items()
    )


if __name__ == "__main__":
    print(line())
