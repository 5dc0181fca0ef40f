"""Slow down token guessing: a per-address failure counter in the cache, with an exponential lockout.

The first `FREE_FAILURES` wrong tokens cost nothing; each further one locks the address out for
`BASE_LOCK_SECONDS`, doubling up to `MAX_LOCK_SECONDS`. A success, or an hour without failures, forgets
them. The cache is Redis when `REDIS_URL` is set (shared by every process), process memory otherwise.
"""

from __future__ import annotations

import math
import time

from django.core.cache import cache
from django.http import HttpRequest

FREE_FAILURES = 5
BASE_LOCK_SECONDS = 2.0
MAX_LOCK_SECONDS = 900.0
FORGET_SECONDS = 3600


def client_address(request: HttpRequest) -> str:
    # REMOTE_ADDR, not X-Forwarded-For: a header the client writes cannot reset its own counter.
    return request.META.get("REMOTE_ADDR") or "unknown"


def _key(address: str) -> str:
    return f"mirror:login-failures:{address}"


async def locked_for(address: str) -> int:
    """Whole seconds this address must still wait before its next attempt (0: it may try now)."""
    state = await cache.aget(_key(address))
    left = state["until"] - time.time() if state else 0
    return math.ceil(left) if left > 0 else 0


async def record_failure(address: str) -> None:
    state = await cache.aget(_key(address)) or {"failures": 0, "until": 0.0}
    failures = state["failures"] + 1
    until = 0.0
    if failures > FREE_FAILURES:
        until = time.time() + min(BASE_LOCK_SECONDS * 2 ** (failures - FREE_FAILURES - 1), MAX_LOCK_SECONDS)
    await cache.aset(_key(address), {"failures": failures, "until": until}, FORGET_SECONDS + MAX_LOCK_SECONDS)


async def forget(address: str) -> None:
    await cache.adelete(_key(address))
