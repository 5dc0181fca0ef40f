"""The credential pool as the request path sees it: an in-memory snapshot plus live state.

Picking a credential never queries the database. Each process keeps an immutable snapshot of the
usable credentials and a watcher task that, every `POOL_RELOAD_SECONDS`, compares a cheap signature
(row count, newest `updated_at`) and reloads on change, so an admin edit reaches every process within
a second. What requests change (leases, the round-robin cursor, cooldowns) is in `tokens.state`, shared
by every process and node through Redis when `REDIS_URL` is set, so a cooldown holds everywhere on the
very next request. Failures are also written through `services` (they are rare; the admin shows them and
a restart keeps them); successes only bump counters that are flushed in batches by the same watcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings

from common.db import in_thread
from common.ids import unique_hex
from common.masking import mask
from tokens import health, quota, services, shapes, usage
from tokens.leases import Holdings
from tokens.models import Credential, Kind, Status
from tokens.state import ANY_MODEL, Candidate, PoolState, make_state

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PooledCredential:
    """What an upstream adapter needs of a credential; `id` is None for a caller's own token."""

    id: int | None
    kind: str
    access_token: str = field(default="", repr=False)
    refresh_token: str = field(default="", repr=False)
    account_id: str = ""
    plan: str = ""  # the ChatGPT plan of a codex account
    base_url: str = ""
    api_key: str = field(default="", repr=False)
    wire_api: str = "chat"  # an `openai` key's server: "responses" when it speaks `/responses` too
    models: frozenset[str] = frozenset()
    created: tuple[tuple[str, int], ...] = ()  # (model, created) where the upstream's GET /models said
    max_concurrency: int = 0
    expires_at: float | None = None  # of the access token, when known
    needs_refresh: bool = False
    half_open: bool = False  # back from a cooldown: one request at a time until one succeeds

    @property
    def row_id(self) -> int:
        """`id` of a credential of the pool, which always has a row (a caller's own token never reaches it)."""
        assert self.id is not None, "a caller's own token has no row"
        return self.id

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
            plan=cred.plan,
            base_url=cred.base_url,
            api_key=cred.api_key,
            wire_api=cred.wire_api,
            models=frozenset(cred.served_models),
            created=tuple((m, c) for m, c in cred.discovered_models.items() if c),
            max_concurrency=cred.max_concurrency,
            expires_at=cred.access_token_expires_at.timestamp() if cred.access_token_expires_at else None,
            needs_refresh=cred.status == Status.NEEDS_REFRESH,
            half_open=cred.status == Status.COOLING,
        )

    @classmethod
    def own(cls, secret: str, account_id: str = "", access_token: str = "") -> PooledCredential:
        """A caller's own ChatGPT token: an AccessToken as it is; a RefreshToken with the AccessToken it was
        exchanged for, if it was yet (else the chat pipeline exchanges it)."""
        if shapes.is_access_token(secret):
            return cls(None, Kind.CHATGPT, access_token=secret, account_id=account_id)
        return cls(None, Kind.CHATGPT, access_token=access_token, refresh_token=secret, account_id=account_id)

    @property
    def limit(self) -> int:
        """Concurrent requests allowed now: a half-open credential takes a single probe."""
        return 1 if self.half_open else self.max_concurrency

    def stale(self, now: float) -> bool:
        """Its access token must be refreshed before use (and can be: it has a RefreshToken)."""
        expired = self.expires_at is not None and self.expires_at <= now
        return bool(self.refresh_token) and (self.needs_refresh or expired or not self.access_token)

    def serves(self, model: str) -> bool:
        """An `openai` key serves its models (listed, else discovered), or any name when neither is known;
        ChatGPT accounts are matched by the caller."""
        return not self.models or model in self.models

    def listed_models(self) -> list[tuple[str, int]]:
        """(model, created) for `/v1/models`: `created` is 0 where the upstream did not say."""
        created = dict(self.created)
        return [(model, created.get(model, 0)) for model in self.models]


class NoCredential(Exception):
    """No credential can take the request now; `retry_after` is set when all are only cooling down,
    or `busy` when every one that could serve is at its concurrency limit (after `POOL_WAIT_SECONDS`)."""

    def __init__(self, retry_after: float | None = None, busy: bool = False) -> None:
        super().__init__("no usable credential")
        self.retry_after = retry_after
        self.busy = busy


@dataclass(frozen=True, slots=True)
class Lease:
    """One request's hold on `cred`; give it back with `pool.release`."""

    cred: PooledCredential
    id: str


@dataclass(slots=True)
class _Snapshot:
    credentials: tuple[PooledCredential, ...] = ()
    signature: tuple | None = None
    cooldowns: dict[int, dict[str, float]] = field(default_factory=dict)  # as the database has them


class CredentialPool:
    def __init__(self, state: PoolState | None = None) -> None:
        self._snap = _Snapshot()
        self._state = state
        self._usage: Counter[tuple[int, str, str]] = Counter()
        self._quotas: dict[int, quota.Fields] = {}  # to write on the rows, when the state is this process's own
        self._watcher: asyncio.Task | None = None
        self._renewer: asyncio.Task | None = None
        self._held = Holdings()
        # Held by a reload and by `disable`'s write, so a reload never brings back a row it read before that write.
        self._writes = asyncio.Lock()
        self._loaded = asyncio.Event()
        self._freed = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def state(self) -> PoolState:
        if self._state is None:
            self._state = make_state()
        return self._state

    # -- lifecycle -------------------------------------------------------------------------------
    async def ready(self) -> None:
        """Start the watcher and the lease renewer on first use in this event loop; wait for the first snapshot."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._watcher is None or self._watcher.done():
            self._loop, self._loaded, self._freed, self._writes = loop, asyncio.Event(), asyncio.Event(), asyncio.Lock()
            self._watcher = loop.create_task(self._watch())
            self._renewer = loop.create_task(self._held.keep_alive(self.state))
        await self._loaded.wait()

    async def _watch(self) -> None:
        last_failure = ""
        while True:
            try:
                await self.reload()
                await self.flush_usage()
                await usage.flush()
                last_failure = ""
            except Exception as exc:  # the watcher must outlive a database hiccup; say so once, not every tick
                if repr(exc) != last_failure:
                    log.exception("pool reload or flush failed (retrying every %s s)", settings.POOL_RELOAD_SECONDS)
                last_failure = repr(exc)
            self._loaded.set()
            await asyncio.sleep(settings.POOL_RELOAD_SECONDS)

    async def reload(self, force: bool = False) -> None:
        async with self._writes:
            signature = await in_thread(services.pool_signature)
            if force or signature != self._snap.signature:
                rows = await in_thread(services.usable_credentials)
                new = _build_snapshot(rows, signature)
                changed = {i: c for i, c in new.cooldowns.items() if self._snap.cooldowns.get(i) != c}
                await self.state.set_cooldowns(changed, time.time())  # first: if it fails, the next tick retries
                await self.state.lift_ejections(_cleared(self._snap.credentials, new.credentials))
                self._snap = new

    async def flush_usage(self) -> None:
        """Write the counters and quotas gathered since the last flush; a failed write (one transaction) puts
        them back for the next one, so no count is lost to a database hiccup."""
        if self._usage:
            batch, self._usage = self._usage, Counter()
            try:
                await in_thread(services.add_usage, batch)
            except BaseException:
                self._usage.update(batch)
                raise
        if self._quotas:
            quotas, self._quotas = self._quotas, {}
            try:
                await in_thread(services.save_quotas, quotas)
            except BaseException:
                self._quotas = {**quotas, **self._quotas}  # a newer report that arrived meanwhile wins
                raise

    # -- the request path ------------------------------------------------------------------------
    @property
    def credentials(self) -> tuple[PooledCredential, ...]:
        return self._snap.credentials

    @property
    def version(self) -> str:
        """Which state of the credentials table this process serves (`/healthz`: has this node seen an edit yet?);
        empty before the first load."""
        signature = self._snap.signature
        return "" if signature is None else signature_version(signature)

    async def pick(
        self, model: str, serving: Iterable[PooledCredential], exclude: Iterable[int], affinity: str = ""
    ) -> Lease:
        """Lease one of `serving` (the snapshot's credentials that can take the request) for `model`, never one
        in `exclude`; raises `NoCredential`.

        With an `affinity` key, the same key lands on the same credential while it is ready (rendezvous
        hashing, so removing one credential moves only the keys that were on it). When every candidate is
        at its concurrency limit, wait up to `POOL_WAIT_SECONDS` for a slot: a release in this process
        wakes the wait at once, one on another node is seen by polling.
        """
        excluded = set(exclude)
        by_id = {c.row_id: c for c in serving}
        headroom = _by_headroom(by_id.values())
        candidates = [Candidate(c.row_id, c.limit, c.row_id in excluded) for c in by_id.values()]
        if affinity:
            sticky = await self._pick_sticky(candidates, model, affinity)
            if sticky is not None:
                return Lease(by_id[sticky[0]], sticky[1])
        deadline = time.monotonic() + settings.POOL_WAIT_SECONDS
        pause = 0.01
        while True:
            lease = unique_hex()
            point = random.random() if _at_random() else None
            got = await self._held.take(self.state, candidates, model, lease, point, headroom)
            if isinstance(got, int):
                return Lease(by_id[got], lease)
            left = deadline - time.monotonic()
            if not got.busy:
                raise NoCredential(retry_after=max(1.0, got.cooling_for) if got.cooling_for else None)
            if left <= 0:
                raise NoCredential(retry_after=1.0, busy=True)
            await self._wait_for_release(min(pause, left))
            pause = min(pause * 2, 0.2)

    async def _pick_sticky(self, candidates: list[Candidate], model: str, key: str) -> tuple[int, str] | None:
        """Try the candidates in `key`'s own stable order; None when none of them is ready now."""
        ranked = sorted((c for c in candidates if not c.excluded), key=lambda c: _rank(key, c.id), reverse=True)
        for candidate in ranked:
            lease = unique_hex()
            got = await self._held.take(self.state, [candidate], model, lease, 0.0)
            if isinstance(got, int):
                return got, lease
        return None

    async def _wait_for_release(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._freed.wait(), timeout)

    async def release(self, lease: Lease) -> None:
        """Give the slot back; releasing twice is harmless (a lease is a set member, not a counter)."""
        try:
            await self._held.give_back(self.state, lease.cred.row_id, lease.id)
        finally:
            freed, self._freed = self._freed, asyncio.Event()
            freed.set()

    def record_use(self, cred: PooledCredential, model: str, failed: bool, usage: dict[str, int] | None) -> None:
        """Count one request off the request path; the watcher writes the totals in batches."""
        if cred.id is None:
            return
        counts = self._usage
        counts[(cred.id, model, "requests")] += 1
        counts[(cred.id, model, "errors")] += failed
        if usage:
            counts[(cred.id, model, "prompt_tokens")] += usage.get("prompt_tokens", 0)
            counts[(cred.id, model, "completion_tokens")] += usage.get("completion_tokens", 0)

    async def note_quota(self, cred: PooledCredential, report: quota.ReportedQuota) -> None:
        """Keep the plan quota the upstream reported for `cred`: in the live state (the headroom pick; the admin
        reads it there with Redis), and without Redis on the row at the next flush, for the admin's process."""
        fields = quota.flatten(report)
        if cred.id is None or not fields:
            return
        now = time.time()
        await self.state.note_quota(cred.id, fields, now)
        if not self.state.shared:
            self._quotas[cred.id] = (await self.state.quotas([cred.id], now)).get(cred.id, {})

    async def cool_down(self, cred: PooledCredential, seconds: float, model: str | None, reason: str) -> None:
        """Take `cred` out for `seconds` (for one model when given): in the shared state first, so that
        every node skips it from its next request on, then in the database for the admin and restarts."""
        until = time.time() + seconds
        await self.state.cool_down(cred.row_id, model or ANY_MODEL, until)
        await in_thread(services.mark_cooling, cred.id, until, model, reason)

    async def failed_transiently(self, cred: PooledCredential, others: list[int], reason: str) -> None:
        """Count a transient failure; eject `cred` when it is an outlier among `others` (the ids of the other
        credentials that serve the same model; `tokens.health`): in the shared state first, then in the database
        with the reason."""
        if cred.id is None:
            return
        now = time.time()
        evidence = await self.state.note_outcome(cred.id, True, now, settings.OUTLIER_WINDOW_SECONDS, others)
        verdict = health.judge(evidence) if evidence is not None else None
        if verdict is None:
            return
        until, most = now + verdict.seconds, health.most_ejected(len(others) + 1)
        if await self.state.eject(cred.id, others, now, until, most, until + settings.OUTLIER_MAX_EJECTION_SECONDS):
            log.warning("credential %s ejected: %s", cred, verdict.reason)
            await in_thread(services.mark_ejected, cred.id, f"{verdict.reason}; last: {reason}")

    async def succeeded(self, cred: PooledCredential) -> None:
        """An answer completed: count it; a half-open credential is back to full service (every node follows
        after the reload)."""
        if cred.id is None:
            return
        await self.state.note_outcome(cred.id, False, time.time(), settings.OUTLIER_WINDOW_SECONDS)
        if cred.half_open:
            await in_thread(services.mark_recovered, cred.id)

    async def disable(self, cred: PooledCredential, status: str, reason: str) -> None:
        """Drop `cred` from this snapshot now and record why; other processes follow on reload."""
        self._drop(cred.id)
        async with self._writes:
            self._drop(cred.id)  # again: a reload that ended while we waited read the row before this write
            await in_thread(services.mark_status, cred.id, status, reason)

    def _drop(self, cred_id: int | None) -> None:
        self._snap.credentials = tuple(c for c in self._snap.credentials if c.id != cred_id)


def signature_version(signature: tuple) -> str:
    """An opaque digest of `services.pool_signature()`: says nothing of the rows, only whether it changed."""
    return hashlib.sha256(repr(signature).encode()).hexdigest()[:16]


def _build_snapshot(rows: list[Credential], signature: tuple) -> _Snapshot:
    """Keeps the database's cooldowns so that `reload` can push an edit of them (the admin's "Clear
    cooldown", or the write of another node's `cool_down`) into the live state."""
    cooldowns = {row.pk: services.cooldowns_of(row) for row in rows}
    return _Snapshot(tuple(PooledCredential.from_model(r) for r in rows), signature, cooldowns)


def _cleared(old: Iterable[PooledCredential], new: Iterable[PooledCredential]) -> list[int]:
    """Credentials the database moved from cooling to active: the admin's "Clear cooldown", or a half-open
    probe that answered. Either way an ejection of theirs that may still run is over."""
    cooling = {c.id for c in old if c.half_open}
    return [c.row_id for c in new if c.id in cooling and not c.half_open]


def _by_headroom(creds: Iterable[PooledCredential]) -> bool:
    """`POOL_STRATEGY`: `auto` is a headroom pick when it is among codex accounts (they report their quota)."""
    strategy = settings.POOL_STRATEGY
    if strategy == "auto":
        kinds = {c.kind for c in creds}
        return kinds == {Kind.CODEX}
    return strategy == "headroom"


def _at_random() -> bool:
    """Random or round-robin: `POOL_STRATEGY` when it names one, else `RANDOM_TOKEN` (also for headroom ties)."""
    strategy = settings.POOL_STRATEGY
    return strategy == "random" or (settings.RANDOM_TOKEN and strategy != "round_robin")


def _rank(key: str, cred_id: int) -> int:
    return int.from_bytes(hashlib.blake2b(f"{key}:{cred_id}".encode(), digest_size=8).digest(), "big")


pool = CredentialPool()
