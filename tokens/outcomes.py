"""Where `tokens.health` keeps its evidence: outcomes per credential over a sliding window, and ejections.

Two ledgers with the same semantics, used by the two pool states: `LocalOutcomes` in process memory and
`RedisOutcomes` in Redis, each operation one atomic step (no await inside; one Lua call). The window is
`health.BUCKETS` time buckets of request and failure counts, so a record is a few counter increments
whatever the traffic; the consecutive-failure count and the buckets are forgotten after a window without
requests. An ejection is `until` (the pool's pick skips the credential before it, except in panic) and a
`count` of recent ejections (for the growing ejection time) that lives until `forget_at`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tokens.health import BUCKETS, Evidence, Stats, bucket_of

if TYPE_CHECKING:  # redis-py is loaded only where a Redis backend is built (`common.redis`)
    import redis.asyncio


@dataclass(slots=True)
class _Record:
    touched: float = 0.0
    consecutive: int = 0
    buckets: dict[int, list[int]] = field(default_factory=dict)  # bucket → [requests, failures]

    def window(self, bucket: int) -> tuple[int, int]:
        for old in [b for b in self.buckets if b <= bucket - BUCKETS]:
            del self.buckets[old]
        return sum(n for n, _ in self.buckets.values()), sum(f for _, f in self.buckets.values())


class LocalOutcomes:
    def __init__(self) -> None:
        self._records: dict[int, _Record] = {}
        self._ejections: dict[int, tuple[float, int, float]] = {}  # id → (until, count, forget_at)

    def note(self, cred_id: int, failed: bool, now: float, window: float, peers: Sequence[int]) -> Evidence | None:
        bucket = bucket_of(now, window)
        record = self._live(cred_id, now, window)
        if record is None:
            record = self._records[cred_id] = _Record()
        record.touched = now
        counts = record.buckets.setdefault(bucket, [0, 0])
        counts[0] += 1
        counts[1] += failed
        record.consecutive = record.consecutive + 1 if failed else 0
        if not failed:
            return None
        peer_counts = [r.window(bucket) if (r := self._live(p, now, window)) else (0, 0) for p in peers]
        requests, failures = record.window(bucket)
        own = Stats(requests, failures, record.consecutive)
        peer = Stats(sum(n for n, _ in peer_counts), sum(f for _, f in peer_counts))
        return Evidence(own, peer, self._ejection(cred_id, now)[1])

    def _live(self, cred_id: int, now: float, window: float) -> _Record | None:
        """The credential's record, unless a whole window passed without requests (as a Redis key expires)."""
        record = self._records.get(cred_id)
        return record if record is not None and now - record.touched < math.ceil(window) else None

    def _ejection(self, cred_id: int, now: float) -> tuple[float, int, float]:
        found = self._ejections.get(cred_id, (0.0, 0, 0.0))
        return found if found[2] > now else (0.0, 0, 0.0)

    def ejected(self, cred_id: int, now: float) -> bool:
        return self._ejection(cred_id, now)[0] > now

    def eject(self, cred_id: int, others: Sequence[int], now: float, until: float, most: int, forget_at: float) -> bool:
        if self.ejected(cred_id, now) or sum(self.ejected(o, now) for o in others) >= most:
            return False
        self._ejections[cred_id] = (until, self._ejection(cred_id, now)[1] + 1, forget_at)
        return True

    def lift(self, cred_ids: Sequence[int]) -> None:
        for cred_id in cred_ids:
            if cred_id in self._ejections:
                _, count, forget_at = self._ejections[cred_id]
                self._ejections[cred_id] = (0.0, count, forget_at)


# KEYS: the credential's outcome hash, its ejection hash, then its peers' outcome hashes.
# ARGV: now, the current bucket, '1' for a failure ('0' for a success), the seconds an outcome hash outlives its
# last request, the number of buckets. An outcome hash holds 'n:<bucket>' and 'f:<bucket>' counts, 'k' (failures
# in a row) and 't' (its last request). Times are the caller's, as in `LocalOutcomes`; expiries only clean up.
NOTE = """
local now, bucket, failed = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3] == '1'
local ttl, span = tonumber(ARGV[4]), tonumber(ARGV[5])
local function stale(key)
  local t = tonumber(redis.call('HGET', key, 't'))
  return t == nil or now - t >= ttl
end
local function window(key)
  local n, f = 0, 0
  if stale(key) then return n, f end
  local fields = redis.call('HGETALL', key)
  for j = 1, #fields, 2 do
    local at = tonumber(string.sub(fields[j], 3))
    if at and at <= bucket - span then
      redis.call('HDEL', key, fields[j])
    elseif at and string.sub(fields[j], 1, 1) == 'n' then
      n = n + tonumber(fields[j + 1])
    elseif at then
      f = f + tonumber(fields[j + 1])
    end
  end
  return n, f
end
local own = KEYS[1]
if stale(own) then redis.call('DEL', own) end
redis.call('HINCRBY', own, 'n:' .. bucket, 1)
if failed then
  redis.call('HINCRBY', own, 'f:' .. bucket, 1)
  redis.call('HINCRBY', own, 'k', 1)
else
  redis.call('HSET', own, 'k', 0)
end
redis.call('HSET', own, 't', ARGV[1])
redis.call('EXPIRE', own, ttl)
if not failed then
  if redis.call('HLEN', own) > 2 * span + 2 then window(own) end
  return {}
end
local n, f = window(own)
local pn, pf = 0, 0
for i = 3, #KEYS do
  local a, b = window(KEYS[i])
  pn, pf = pn + a, pf + b
end
local count, forget = unpack(redis.call('HMGET', KEYS[2], 'count', 'forget'))
local ejections = (tonumber(forget) or 0) > now and tonumber(count) or 0
return {n, f, tonumber(redis.call('HGET', own, 'k')), pn, pf, ejections}
"""

# KEYS: the credential's ejection hash, then those of the other credentials serving the model.
# ARGV: now, until, the most that may be ejected at once, forget_at.
EJECT = """
local now = tonumber(ARGV[1])
local function out(key) return (tonumber(redis.call('HGET', key, 'until')) or 0) > now end
if out(KEYS[1]) then return 0 end
local ejected = 0
for i = 2, #KEYS do
  if out(KEYS[i]) then ejected = ejected + 1 end
end
if ejected >= tonumber(ARGV[3]) then return 0 end
local count, forget = unpack(redis.call('HMGET', KEYS[1], 'count', 'forget'))
count = (tonumber(forget) or 0) > now and tonumber(count) or 0
redis.call('HSET', KEYS[1], 'until', ARGV[2], 'count', count + 1, 'forget', ARGV[4])
redis.call('EXPIREAT', KEYS[1], math.ceil(tonumber(ARGV[4])))
return 1
"""

# KEYS: ejection hashes. Ends each ejection now; the count of recent ejections stays (and its expiry with it).
LIFT = """
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then redis.call('HSET', key, 'until', 0) end
end
"""


class RedisOutcomes:
    """The same ledger in Redis; the keys share the pool state's prefix (and its hash tag)."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix

    def ejection_key(self, cred_id: int) -> str:
        return f"{self._prefix}eject:{cred_id}"

    def _outcome_key(self, cred_id: int) -> str:
        return f"{self._prefix}health:{cred_id}"

    async def note(
        self, client: redis.asyncio.Redis, cred_id: int, failed: bool, now: float, window: float, peers: Sequence[int]
    ) -> Evidence | None:
        keys = [self._outcome_key(cred_id), self.ejection_key(cred_id), *map(self._outcome_key, peers)]
        args = [now, bucket_of(now, window), int(failed), math.ceil(window), BUCKETS]
        reply = await client.register_script(NOTE)(keys=keys, args=args)
        if not failed:
            return None
        n, f, k, pn, pf, ejections = map(int, reply)
        return Evidence(Stats(n, f, k), Stats(pn, pf), ejections)

    async def eject(
        self,
        client: redis.asyncio.Redis,
        cred_id: int,
        others: Sequence[int],
        now: float,
        until: float,
        most: int,
        forget_at: float,
    ) -> bool:
        keys = [self.ejection_key(cred_id), *map(self.ejection_key, others)]
        return bool(await client.register_script(EJECT)(keys=keys, args=[now, until, most, forget_at]))

    async def lift(self, client: redis.asyncio.Redis, cred_ids: Sequence[int]) -> None:
        await client.register_script(LIFT)(keys=[self.ejection_key(cred_id) for cred_id in cred_ids])
