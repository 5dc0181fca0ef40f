"""Slow down guessing (passwords, tokens): failure counters in the cache, with an exponential lockout.

A throttle counts failures per subject (a client address, a username). The first `FREE_FAILURES` cost
nothing; each further one locks that subject out for `BASE_LOCK_SECONDS`, doubling up to
`MAX_LOCK_SECONDS`. An attempt waits for the longest lockout among its subjects, so one address cannot
try many usernames and many addresses cannot try one username. `forget` (after a success) or an hour
without failures clears a subject. The cache is Redis when `REDIS_URL` is set (shared by every process),
process memory otherwise.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

FREE_FAILURES = 5
BASE_LOCK_SECONDS = 2.0
MAX_LOCK_SECONDS = 900.0
FORGET_SECONDS = 3600


def client_address(request: HttpRequest) -> str:
    """The client's address: `REMOTE_ADDR`, or when that is a trusted proxy, the address that the proxies
    recorded in `X-Forwarded-For`, read from the right (the left part is whatever the client wrote)."""
    address = request.META.get("REMOTE_ADDR") or "unknown"
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if not forwarded or not _trusted(address):
        return address
    for hop in reversed([h.strip() for h in forwarded.split(",") if h.strip()]):
        address = hop
        if not _trusted(hop):
            break
    return address


def _trusted(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in settings.TRUSTED_PROXIES)


def by_address(address: str) -> str:
    return f"address:{address}"


def by_username(username: str) -> str:
    return "user:" + hashlib.sha256(username.strip().casefold().encode()).hexdigest()[:32]


class Throttle:
    """Failure counters under one cache key prefix, e.g. `Throttle("admin-login")`."""

    def __init__(self, name: str) -> None:
        self.name = name

    def _key(self, subject: str) -> str:
        return f"throttle:{self.name}:{subject}"

    def locked_for(self, *subjects: str) -> int:
        """Whole seconds to wait before the next attempt (0: it may try now)."""
        states = cache.get_many([self._key(s) for s in subjects]).values()
        left = max((state["until"] for state in states), default=0.0) - time.time()
        return math.ceil(left) if left > 0 else 0

    def record_failure(self, *subjects: str) -> None:
        for subject in subjects:
            state = cache.get(self._key(subject)) or {"failures": 0, "until": 0.0}
            failures = state["failures"] + 1
            until = 0.0
            if failures > FREE_FAILURES:
                until = time.time() + min(BASE_LOCK_SECONDS * 2 ** (failures - FREE_FAILURES - 1), MAX_LOCK_SECONDS)
            cache.set(self._key(subject), {"failures": failures, "until": until}, FORGET_SECONDS + MAX_LOCK_SECONDS)

    def forget(self, *subjects: str) -> None:
        cache.delete_many([self._key(s) for s in subjects])

    async def alocked_for(self, *subjects: str) -> int:
        return await sync_to_async(self.locked_for, thread_sensitive=False)(*subjects)

    async def arecord_failure(self, *subjects: str) -> None:
        await sync_to_async(self.record_failure, thread_sensitive=False)(*subjects)

    async def aforget(self, *subjects: str) -> None:
        await sync_to_async(self.forget, thread_sensitive=False)(*subjects)
