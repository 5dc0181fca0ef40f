"""The slots this process holds, kept alive while it lives; and tasks that must finish after their request.

A lease expires `LEASE_TTL_SECONDS` after it was taken or last renewed, so the slots of a node that dies
(SIGKILL, power loss) free within that time for every node. While the process lives, one small task renews
every lease it holds, in one round trip, every third of the TTL. No lease is renewed past `LEASE_SECONDS`
after it was taken: a request that somehow never gave its slot back loses it then at the latest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Coroutine, Sequence
from typing import Any

from django.conf import settings

from tokens.state import Candidate, PoolState, Refusal

log = logging.getLogger(__name__)
_running: set[asyncio.Task] = set()


def background(coro: Coroutine[Any, Any, Any]) -> asyncio.Task:
    """Run `coro` to its end although whoever started it is gone (a client that hung up): a strong reference
    keeps the task from being collected, and a failure is logged rather than "never retrieved"."""
    task = asyncio.get_running_loop().create_task(coro)
    _running.add(task)
    task.add_done_callback(_finished)
    return task


def _finished(task: asyncio.Task) -> None:
    _running.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("background task failed", exc_info=task.exception())


class Holdings:
    """The leases this process holds: lease id → (credential id, when it was taken, monotonic)."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[int, float]] = {}

    def __len__(self) -> int:
        return len(self._held)

    async def take(
        self,
        state: PoolState,
        candidates: Sequence[Candidate],
        model: str,
        lease: str,
        point: float | None,
        headroom: bool = False,
    ) -> int | Refusal:
        """`state.acquire`, recorded here, that cannot leak: if the request is cancelled while Redis answers
        (the script runs all the same), whatever it leased is given back as soon as the answer arrives."""
        acquiring = state.acquire(candidates, model, lease, time.time(), settings.LEASE_TTL_SECONDS, point, headroom)
        # A state whose calls never suspend (`LocalState`) cannot be cancelled halfway: it is awaited as it is, without
        # the task and shield (about 10 µs a call, and a turn of the event loop) that a call to Redis needs.
        got = await _unleakable(state, acquiring, lease) if state.suspends else await acquiring
        if isinstance(got, int):
            self._held[lease] = (got, time.monotonic())
        return got

    async def give_back(self, state: PoolState, cred_id: int, lease: str) -> None:
        """Release `lease`, to the end even if the request is being cancelled. A failure (Redis unreachable)
        is logged by `background`, and the lease then expires after `LEASE_TTL_SECONDS`."""
        self._held.pop(lease, None)
        if not state.suspends:
            await state.release(cred_id, lease)
            return
        with contextlib.suppress(Exception):
            await asyncio.shield(background(state.release(cred_id, lease)))

    def due(self) -> dict[int, list[str]]:
        """The leases to renew, by credential; one held longer than `LEASE_SECONDS` is let go instead."""
        oldest = time.monotonic() - settings.LEASE_SECONDS
        due: defaultdict[int, list[str]] = defaultdict(list)
        for lease, (cred_id, taken) in list(self._held.items()):
            if taken < oldest:
                log.warning("a lease on credential #%s outlived LEASE_SECONDS: no longer renewed", cred_id)
                del self._held[lease]
            else:
                due[cred_id].append(lease)
        return due

    async def keep_alive(self, state: PoolState) -> None:
        """Renew every held lease every third of `LEASE_TTL_SECONDS`, for as long as the event loop runs."""
        while True:
            ttl = settings.LEASE_TTL_SECONDS
            await asyncio.sleep(ttl / 3)
            try:
                await state.renew(self.due(), time.time() + ttl)
            except Exception:  # Redis unreachable: the next round tries again, before the leases expire
                log.exception("renewing %d leases failed", len(self))


async def _unleakable(state: PoolState, acquiring: Coroutine[Any, Any, int | Refusal], lease: str) -> int | Refusal:
    attempt = asyncio.ensure_future(acquiring)
    try:
        return await asyncio.shield(attempt)
    except asyncio.CancelledError:
        attempt.add_done_callback(lambda done: _abandon(state, done, lease))
        raise


def _abandon(state: PoolState, attempt: asyncio.Future[int | Refusal], lease: str) -> None:
    if not attempt.cancelled() and attempt.exception() is None and isinstance(taken := attempt.result(), int):
        background(state.release(taken, lease))
