"""The credential pool as the request path sees it: an in-memory snapshot plus live state.

Picking a credential never queries the database. Each process keeps an immutable snapshot of the
usable credentials and a watcher task that, every `POOL_RELOAD_SECONDS`, compares a cheap signature
(row count, newest `updated_at`) and reloads on change, so an admin edit reaches every process within
a second. Failures are written through `services` (they are rare); successes only bump counters that
are flushed in batches by the same watcher.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from tokens import services
from tokens.models import Credential, mask
from tokens.services import ANY_MODEL

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PooledCredential:
    """What an upstream adapter needs of a credential; `id` is None for a caller's own token."""

    id: int | None
    kind: str
    access_token: str = field(default="", repr=False)
    refresh_token: str = field(default="", repr=False)
    account_id: str = ""
    base_url: str = ""
    api_key: str = field(default="", repr=False)
    models: frozenset[str] = frozenset()

    def __str__(self) -> str:
        return f"#{self.id} {self.kind} {mask(self.api_key or self.access_token or self.refresh_token)}"

    @classmethod
    def from_model(cls, cred: Credential) -> PooledCredential:
        return cls(
            id=cred.pk,
            kind=cred.kind,
            access_token=cred.access_token,
            refresh_token=cred.refresh_token,
            account_id=cred.account_id,
            base_url=cred.base_url,
            api_key=cred.api_key,
            models=frozenset(cred.model_names or ()),
        )

    def serves(self, model: str) -> bool:
        """An `openai` key with no model list serves any name; ChatGPT accounts are matched by the caller."""
        return not self.models or model in self.models


class NoCredential(Exception):
    """No credential can take the request now; `retry_after` is set when all are only cooling down."""

    def __init__(self, retry_after: float | None = None) -> None:
        super().__init__("no usable credential")
        self.retry_after = retry_after


@dataclass(slots=True)
class _Snapshot:
    credentials: tuple[PooledCredential, ...] = ()
    signature: tuple | None = None
    cooldowns: dict[tuple[int, str], float] = field(default_factory=dict)


class CredentialPool:
    def __init__(self) -> None:
        self._snap = _Snapshot()
        self._cursor = 0
        self._usage: Counter[tuple[int, str]] = Counter()
        self._watcher: asyncio.Task | None = None
        self._loaded = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    async def ready(self) -> None:
        """Start the watcher on first use in this event loop and wait for the first snapshot."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._watcher is None or self._watcher.done():
            self._loop, self._loaded = loop, asyncio.Event()
            self._watcher = loop.create_task(self._watch())
        await self._loaded.wait()

    async def _watch(self) -> None:
        while True:
            try:
                await self.reload()
                await self.flush_usage()
            except Exception:  # the watcher must outlive a database hiccup
                log.exception("credential pool reload failed")
            self._loaded.set()
            await asyncio.sleep(settings.POOL_RELOAD_SECONDS)

    async def reload(self, force: bool = False) -> None:
        signature = await _db(services.pool_signature)
        if force or signature != self._snap.signature:
            rows = await _db(services.usable_credentials)
            self._snap = _build_snapshot(rows, signature)

    async def flush_usage(self) -> None:
        if self._usage:
            batch, self._usage = self._usage, Counter()
            await _db(services.add_usage, batch)

    # -- the request path ------------------------------------------------------------------------
    @property
    def credentials(self) -> tuple[PooledCredential, ...]:
        return self._snap.credentials

    def pick(self, model: str, serves: Callable[[PooledCredential], bool], exclude: Iterable[int]) -> PooledCredential:
        """Choose one credential for `model`, never one in `exclude`; raises `NoCredential`."""
        now = time.time()
        excluded = set(exclude)
        serving = [c for c in self._snap.credentials if serves(c)]
        ready = [c for c in serving if c.id not in excluded and self._cooling_until(c.id, model, now) <= now]
        if not ready:
            waits = [self._cooling_until(c.id, model, now) - now for c in serving]
            cooling = bool(waits) and min(waits) > 0
            raise NoCredential(retry_after=max(1.0, min(waits)) if cooling else None)
        if settings.RANDOM_TOKEN:
            return random.choice(ready)
        self._cursor += 1
        return ready[(self._cursor - 1) % len(ready)]

    def _cooling_until(self, cred_id: int, model: str, now: float) -> float:
        cooldowns = self._snap.cooldowns
        return max(cooldowns.get((cred_id, ANY_MODEL), 0.0), cooldowns.get((cred_id, model), 0.0))

    def record_use(self, cred: PooledCredential, failed: bool = False) -> None:
        if cred.id is not None:
            self._usage[(cred.id, "errors" if failed else "requests")] += 1

    async def cool_down(self, cred: PooledCredential, seconds: float, model: str | None, reason: str) -> None:
        """Take `cred` out for `seconds` (for one model when given); persisted so every node sees it."""
        until = time.time() + seconds
        self._snap.cooldowns[(cred.id, model or ANY_MODEL)] = until
        await _db(services.mark_cooling, cred.id, until, model, reason)

    async def disable(self, cred: PooledCredential, status: str, reason: str) -> None:
        """Drop `cred` from this snapshot now and record why; other processes follow on reload."""
        self._snap.credentials = tuple(c for c in self._snap.credentials if c.id != cred.id)
        await _db(services.mark_status, cred.id, status, reason)


async def _db(func: Callable[..., T], *args: Any) -> T:
    """Run a database call in a worker thread; no request cycle closes stale connections there, so do it here."""

    def call() -> T:
        close_old_connections()
        return func(*args)

    return await sync_to_async(call, thread_sensitive=False)()


def _build_snapshot(rows: list[Credential], signature: tuple) -> _Snapshot:
    """The database is the source of cooldowns: `cool_down` writes them through before the next reload."""
    cooldowns = {(row.pk, model): until for row in rows for model, until in services.cooldowns_of(row).items()}
    return _Snapshot(tuple(PooledCredential.from_model(r) for r in rows), signature, cooldowns)


pool = CredentialPool()
