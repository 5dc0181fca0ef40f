"""The pool's live state: leases (in-flight requests), concurrency limits, the round-robin cursor, cooldowns,
and the evidence of credential health with its ejections (`tokens.health`, kept by `tokens.outcomes`).

Requests on every process and node must see one pool, so with `REDIS_URL` this state lives in Redis and
each pick-and-lease is one Lua script (atomic, one round trip); without it, `LocalState` gives the same
semantics in process memory. A lease is a member of a sorted set per credential scored by its expiry:
releasing twice removes nothing, and the lease of a process that died falls out when it expires.
A pick skips ejected credentials unless no other candidate is ready or busy (panic); cooldowns always hold.
A `headroom` pick keeps only the ready candidates whose reported plan quota (`tokens.quota`) is least used.
The list of credentials is not here: each process keeps the snapshot it reloads from the database.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings

from common.redis import LoopClients
from tokens import quota
from tokens.health import Evidence
from tokens.outcomes import LocalOutcomes, RedisOutcomes

if TYPE_CHECKING:  # redis-py is loaded only where a Redis backend is built (`common.redis`)
    import redis.asyncio
    from redis.commands.core import AsyncScript

ANY_MODEL = "*"  # the cooldown key that covers every model


@dataclass(frozen=True, slots=True)
class Candidate:
    """A credential that serves the model; `excluded` ones (already tried) only count towards the wait."""

    id: int
    limit: int = 0  # concurrent leases allowed; 0 = unlimited
    excluded: bool = False


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why nothing was leased: `busy` when a candidate is only at its limit (a slot may free up soon);
    otherwise `cooling_for` is the seconds until the first cooldown ends, when every candidate cools."""

    busy: bool = False
    cooling_for: float | None = None


class PoolState(ABC):
    shared = False  # seen by every process and node
    suspends = True  # a call may wait on the network midway, so a cancel can land between its request and its answer

    @abstractmethod
    async def acquire(
        self,
        candidates: Sequence[Candidate],
        model: str,
        lease: str,
        now: float,
        ttl: float,
        point: float | None,
        headroom: bool = False,
    ) -> int | Refusal:
        """Lease one ready candidate until `now + ttl`; `point` in [0, 1) picks at random, None round-robin
        (with `headroom`, among the ready ones with the least used plan quota)."""

    @abstractmethod
    async def release(self, cred_id: int, lease: str) -> None: ...

    @abstractmethod
    async def renew(self, leases: Mapping[int, Sequence[str]], expiry: float) -> None:
        """Move the expiry of each live lease given (credential id → lease ids) to `expiry`; released ones stay gone."""

    @abstractmethod
    async def cool_down(self, cred_id: int, model: str, until: float) -> None:
        """Rest `cred_id` for `model` (`ANY_MODEL`: every model) until the epoch time `until`."""

    @abstractmethod
    async def set_cooldowns(self, cooldowns: Mapping[int, Mapping[str, float]], now: float) -> None:
        """Replace the cooldowns of each credential given (by the database's, after an edit there)."""

    @abstractmethod
    async def in_flight(self, cred_id: int, now: float) -> int: ...

    @abstractmethod
    async def note_outcome(
        self, cred_id: int, failed: bool, now: float, window: float, peers: Sequence[int] = ()
    ) -> Evidence | None:
        """Count a finished request of `cred_id`; after a failure, the evidence on it and its `peers`."""

    @abstractmethod
    async def eject(
        self, cred_id: int, others: Sequence[int], now: float, until: float, most: int, forget_at: float
    ) -> bool:
        """Eject `cred_id` until `until`, unless it already is or `most` of `others` are; the ejection counts
        as recent until `forget_at`. False when nothing was done."""

    @abstractmethod
    async def lift_ejections(self, cred_ids: Sequence[int]) -> None:
        """End these credentials' ejections now (an operator cleared them); their count of recent ones stays."""

    @abstractmethod
    async def note_quota(self, cred_id: int, fields: quota.Fields, now: float) -> None:
        """Merge a plan quota report for `cred_id` (`tokens.quota.merge`); it lasts until its latest reset."""

    @abstractmethod
    async def quotas(self, cred_ids: Sequence[int], now: float) -> dict[int, quota.Fields]: ...


def choose(ready: Sequence[int], cursor: int, point: float | None) -> int:
    """`ready[(cursor - 1) % n]` for round-robin, the same rule as the Lua script's."""
    return ready[int(point * len(ready))] if point is not None else ready[(cursor - 1) % len(ready)]


class LocalState(PoolState):
    """One process's state. Every method runs without an await inside, so each is atomic on its event loop."""

    suspends = False

    def __init__(self) -> None:
        self._cursor = 0
        self._cooldowns: dict[int, dict[str, float]] = {}
        self._leases: dict[int, dict[str, float]] = {}
        self._health = LocalOutcomes()
        self._quotas: dict[int, quota.Fields] = {}
        self._spent: dict[int, quota.Parsed] = {}

    async def acquire(
        self,
        candidates: Sequence[Candidate],
        model: str,
        lease: str,
        now: float,
        ttl: float,
        point: float | None,
        headroom: bool = False,
    ) -> int | Refusal:
        ready: list[int] = []
        ejected: list[int] = []
        busy, wait = False, math.inf
        for cand in candidates:
            cools = self._cooldowns.get(cand.id, {})
            left = max(cools.get(ANY_MODEL, 0.0), cools.get(model, 0.0)) - now
            wait = min(wait, left)
            if cand.excluded or left > 0:
                continue
            if cand.limit and self._live_leases(cand.id, now) >= cand.limit:
                busy = True
            else:
                (ejected if self._health.ejected(cand.id, now) else ready).append(cand.id)
        if not ready and not busy:
            ready = ejected  # panic: every usable candidate is ejected, so use them anyway
        if not ready:
            return Refusal(busy=busy, cooling_for=wait if not busy and 0 < wait < math.inf else None)
        if headroom:
            ready = quota.least_used(ready, self._spent, now)
        if point is None:
            self._cursor += 1
        chosen = choose(ready, self._cursor, point)
        self._live_leases(chosen, now)
        self._leases.setdefault(chosen, {})[lease] = now + ttl
        return chosen

    def _live_leases(self, cred_id: int, now: float) -> int:
        leases = self._leases.get(cred_id, {})
        for lease in [lease for lease, expiry in leases.items() if expiry <= now]:
            del leases[lease]
        return len(leases)

    async def release(self, cred_id: int, lease: str) -> None:
        self._leases.get(cred_id, {}).pop(lease, None)

    async def renew(self, leases: Mapping[int, Sequence[str]], expiry: float) -> None:
        for cred_id, ids in leases.items():
            held = self._leases.get(cred_id, {})
            for lease in ids:
                if lease in held:
                    held[lease] = expiry

    async def cool_down(self, cred_id: int, model: str, until: float) -> None:
        self._cooldowns.setdefault(cred_id, {})[model] = until

    async def set_cooldowns(self, cooldowns: Mapping[int, Mapping[str, float]], now: float) -> None:
        for cred_id, cools in cooldowns.items():
            self._cooldowns[cred_id] = {model: until for model, until in cools.items() if until > now}

    async def in_flight(self, cred_id: int, now: float) -> int:
        return self._live_leases(cred_id, now)

    async def note_outcome(
        self, cred_id: int, failed: bool, now: float, window: float, peers: Sequence[int] = ()
    ) -> Evidence | None:
        return self._health.note(cred_id, failed, now, window, peers)

    async def eject(
        self, cred_id: int, others: Sequence[int], now: float, until: float, most: int, forget_at: float
    ) -> bool:
        return self._health.eject(cred_id, others, now, until, most, forget_at)

    async def lift_ejections(self, cred_ids: Sequence[int]) -> None:
        self._health.lift(cred_ids)

    async def note_quota(self, cred_id: int, fields: quota.Fields, now: float) -> None:
        merged = self._quotas[cred_id] = quota.merge(self._quotas.get(cred_id, {}), fields)
        self._spent[cred_id] = quota.parse(merged)

    async def quotas(self, cred_ids: Sequence[int], now: float) -> dict[int, quota.Fields]:
        found = {i: self._quotas[i] for i in cred_ids if i in self._quotas}
        return {i: fields for i, fields in found.items() if quota.expiry(fields, now) > now}


PICK = (Path(__file__).parent / "pick.lua").read_text()  # the same rules as `LocalState.acquire`


class RedisState(PoolState):
    """Every process and node shares this state; keys share one hash tag, so a Redis Cluster takes the script."""

    shared = True

    def __init__(self, url: str, namespace: str = "chat2api") -> None:
        self._prefix = f"{namespace}:{{pool}}:"
        self._health = RedisOutcomes(self._prefix)
        self._redis = LoopClients(url, PICK)

    def _client(self) -> tuple[redis.asyncio.Redis, AsyncScript]:
        return self._redis.get()

    def _cool(self, cred_id: int) -> str:
        return f"{self._prefix}cool:{cred_id}"

    def _leases(self, cred_id: int) -> str:
        return f"{self._prefix}leases:{cred_id}"

    async def acquire(
        self,
        candidates: Sequence[Candidate],
        model: str,
        lease: str,
        now: float,
        ttl: float,
        point: float | None,
        headroom: bool = False,
    ) -> int | Refusal:
        keys = [f"{self._prefix}cursor"]
        args: list[str | float | int] = [now, model, lease, now + ttl, "" if point is None else point]
        args.append("1" if headroom else "")
        for cand in candidates:
            keys += [self._cool(cand.id), self._leases(cand.id), self._health.ejection_key(cand.id)]
            keys.append(quota.redis_key(self._prefix, cand.id))
            args += [cand.id, -1 if cand.excluded else cand.limit]
        _, script = self._client()
        reply = await script(keys=keys, args=args)
        if reply[0] == "ok":
            return int(reply[1])
        return Refusal(busy=reply[0] == "busy", cooling_for=float(reply[1]) if reply[0] == "cooling" else None)

    async def release(self, cred_id: int, lease: str) -> None:
        client, _ = self._client()
        await client.zrem(self._leases(cred_id), lease)

    async def renew(self, leases: Mapping[int, Sequence[str]], expiry: float) -> None:
        if not leases:
            return
        client, _ = self._client()
        async with client.pipeline(transaction=False) as pipe:  # one round trip for every lease of the process
            for cred_id, ids in leases.items():
                key = self._leases(cred_id)
                pipe.zadd(key, dict.fromkeys(ids, expiry), xx=True)
                pipe.expireat(key, math.ceil(expiry), gt=True)
            await pipe.execute()

    async def cool_down(self, cred_id: int, model: str, until: float) -> None:
        client, _ = self._client()
        key, at = self._cool(cred_id), math.ceil(until)
        async with client.pipeline(transaction=True) as pipe:
            # The hash lives as long as its latest cooldown: NX sets a first expiry, GT only lengthens it.
            pipe.hset(key, model, until)
            pipe.expireat(key, at, nx=True)
            pipe.expireat(key, at, gt=True)
            await pipe.execute()

    async def set_cooldowns(self, cooldowns: Mapping[int, Mapping[str, float]], now: float) -> None:
        if not cooldowns:
            return
        client, _ = self._client()
        async with client.pipeline(transaction=True) as pipe:
            for cred_id, cools in cooldowns.items():
                key, live = self._cool(cred_id), {model: until for model, until in cools.items() if until > now}
                pipe.delete(key)
                if live:
                    pipe.hset(key, mapping=live)  # type: ignore[arg-type]  # redis-py's Mapping keys are invariant: a str key is a valid field
                    pipe.expireat(key, math.ceil(max(live.values())))
            await pipe.execute()

    async def in_flight(self, cred_id: int, now: float) -> int:
        client, _ = self._client()
        return await client.zcount(self._leases(cred_id), f"({now}", "+inf")

    async def note_outcome(
        self, cred_id: int, failed: bool, now: float, window: float, peers: Sequence[int] = ()
    ) -> Evidence | None:
        return await self._health.note(self._client()[0], cred_id, failed, now, window, peers)

    async def eject(
        self, cred_id: int, others: Sequence[int], now: float, until: float, most: int, forget_at: float
    ) -> bool:
        return await self._health.eject(self._client()[0], cred_id, others, now, until, most, forget_at)

    async def lift_ejections(self, cred_ids: Sequence[int]) -> None:
        if cred_ids:
            await self._health.lift(self._client()[0], cred_ids)

    async def note_quota(self, cred_id: int, fields: quota.Fields, now: float) -> None:
        await quota.store(self._client()[0], quota.redis_key(self._prefix, cred_id), fields, now)

    async def quotas(self, cred_ids: Sequence[int], now: float) -> dict[int, quota.Fields]:
        client, _ = self._client()
        async with client.pipeline(transaction=False) as pipe:
            for cred_id in cred_ids:
                pipe.hgetall(quota.redis_key(self._prefix, cred_id))
            found = await pipe.execute()
        return {i: fields for i, fields in zip(cred_ids, found, strict=True) if fields}

    async def close(self) -> None:
        """Close this event loop's connections (tests open a loop per test)."""
        await self._redis.close()


def make_state() -> PoolState:
    return RedisState(settings.REDIS_URL, settings.REDIS_KEY_PREFIX) if settings.REDIS_URL else LocalState()
