"""A client key's limits: requests and tokens per minute, requests at once, tokens per day and per month.

`admit` checks every limit and takes its share in one atomic step (with `REDIS_URL`, one Lua call seen by every
process and node; without it, the same rules in process memory), and `settle` replaces the tokens a request
reserved with those it used. A request is admitted while any of a budget is left, so a key overspends by at
most what the requests in flight use beyond their reservations. The minute windows are fixed (they start on the
minute); days and months are those of `TIME_ZONE`. An admission that is never settled (its process died) gives
back its slot and its reservation after `LEASE_SECONDS`.

Redis keeps nothing on disk here, so when a budget's counter is missing (a restart, a new day) it is seeded from
the database's `DailyUsage` before the step is tried again; a process without Redis seeds the same way.
"""

from __future__ import annotations

import functools
import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from django.conf import settings

from common.db import in_thread
from common.ids import unique_hex
from common.redis import LoopClients
from tokens import usage
from tokens.clients import KeyPolicy

if TYPE_CHECKING:  # redis-py is loaded only where a Redis backend is built (`common.redis`)
    import redis.asyncio
    from redis.commands.core import AsyncScript

BUDGETS = ("daily", "monthly")
TOKEN_COUNTERS = ("tok", *BUDGETS)  # the counters that hold tokens: the minute's, the day's, the month's
SEED_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Periods:
    """The windows `now` falls in: the minute (epoch minutes), and the day and month of `TIME_ZONE`."""

    minute: int
    day: date
    day_ends: float
    month_ends: float

    @classmethod
    def at(cls, now: float) -> Periods:
        zone = ZoneInfo(settings.TIME_ZONE)
        today = datetime.fromtimestamp(now, zone).date()
        first_of_next = (today.replace(day=1) + timedelta(days=32)).replace(day=1)
        midnight = datetime.combine(today + timedelta(days=1), datetime.min.time(), zone)
        month_ends = datetime.combine(first_of_next, datetime.min.time(), zone)
        return cls(int(now // 60), today, midnight.timestamp(), month_ends.timestamp())

    @property
    def minute_ends(self) -> float:
        return (self.minute + 1) * 60.0

    @property
    def labels(self) -> tuple[str, str, str]:
        """Minute, day and month, as counters are named."""
        return str(self.minute), self.day.isoformat(), self.day.isoformat()[:7]


@dataclass(frozen=True, slots=True)
class Admission:
    """One admitted request; hand it to `settle` once it ends. `id` is empty for a key without limits."""

    policy: KeyPolicy
    id: str = ""
    reserve: int = 0
    periods: Periods | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Refused:
    """Why a request was not admitted: `reason` is "requests", "tokens", "concurrency", "daily" or "monthly"."""

    reason: str
    retry_after: int
    message: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Counts:
    """What one step saw: the refusal reason (None: admitted) and the minute's requests and tokens after it."""

    reason: str | None
    requests: int
    tokens: int


class Limits(ABC):
    async def admit(self, policy: KeyPolicy, reserve: int, now: float | None = None) -> Admission | Refused:
        """Take one request, `reserve` tokens and a slot of `policy`'s limits, or nothing and say why.

        `Admission.headers` are OpenAI's `x-ratelimit-*`: the requests trio only when the key has a requests per
        minute limit, the tokens trio only when it has a tokens per minute limit (budgets have no OpenAI header).
        """
        if policy.unlimited:
            return Admission(policy)
        now = time.time() if now is None else now
        periods, admission = Periods.at(now), unique_hex()
        for _ in range(SEED_ATTEMPTS):
            counts = await self._take(policy, reserve, admission, now, periods)
            if isinstance(counts, _Counts):
                break
            for budget in counts:
                await self._seed(policy.id, budget, periods, await in_thread(spent, policy.id, budget, periods.day))
        else:
            raise RuntimeError("budget counters vanished while being seeded")
        headers = _headers(policy, counts, periods.minute_ends - now)
        if counts.reason is None:
            return Admission(policy, admission, reserve, periods, headers)
        return _refusal(policy, counts.reason, periods, now, headers)

    async def settle(self, admission: Admission, used: int) -> None:
        """Replace the admission's reservation with the `used` tokens and free its slot; once (later calls do
        nothing, as does settling an admission that already expired)."""
        if admission.id and admission.periods is not None:
            await self._settle(admission, admission.periods, max(0, used))

    @abstractmethod
    async def _take(
        self, policy: KeyPolicy, reserve: int, admission: str, now: float, periods: Periods
    ) -> _Counts | list[str]:
        """The atomic step: the counts it saw, or the budgets whose counters are missing (nothing taken)."""

    @abstractmethod
    async def _seed(self, key_id: int, budget: str, periods: Periods, tokens: int) -> None:
        """Set a missing budget counter to `tokens`, unless another request set it meanwhile."""

    @abstractmethod
    async def _settle(self, admission: Admission, periods: Periods, used: int) -> None: ...


def spent(key_id: int, budget: str, day: date) -> int:
    """Tokens the database has of `key_id` for the day (`daily`) or the month (`monthly`) of `day`."""
    return usage.spent(key_id, day if budget == "daily" else day.replace(day=1))


def _refusal(policy: KeyPolicy, reason: str, periods: Periods, now: float, headers: dict[str, str]) -> Refused:
    ends = {"daily": periods.day_ends, "monthly": periods.month_ends, "concurrency": now + 1}
    retry_after = max(1, math.ceil(ends.get(reason, periods.minute_ends) - now))
    messages = {
        "requests": f"This key's limit of {policy.rpm} requests per minute is reached.",
        "tokens": f"This key's limit of {policy.tpm} tokens per minute is reached.",
        "concurrency": f"This key already has {policy.max_concurrency} requests in progress.",
        "daily": f"This key's budget of {policy.daily_tokens} tokens per day is spent.",
        "monthly": f"This key's budget of {policy.monthly_tokens} tokens per month is spent.",
    }
    message = f"{messages[reason]} Try again in {retry_after} s."
    return Refused(reason, retry_after, message, headers)


def _headers(policy: KeyPolicy, counts: _Counts, reset: float) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, limit, used in (("requests", policy.rpm, counts.requests), ("tokens", policy.tpm, counts.tokens)):
        if limit:
            headers[f"x-ratelimit-limit-{name}"] = str(limit)
            headers[f"x-ratelimit-remaining-{name}"] = str(max(0, limit - used))
            headers[f"x-ratelimit-reset-{name}"] = format_duration(reset)
    return headers


def format_duration(seconds: float) -> str:
    """A duration as OpenAI's rate limit headers write it (Go's): "17ms", "1s", "59.5s", "6m0s", "1h0m0s"."""
    ms = max(0, round(seconds * 1000))
    if ms < 1000:
        return f"{ms}ms"
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs = f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms / 1000:.3f}".rstrip("0") + "s"
    if hours:
        return f"{hours}h{minutes}m{secs}"
    return f"{minutes}m{secs}" if minutes else secs


# -- in process memory ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Held:
    expiry: float
    tokens: int
    labels: tuple[str, str, str]  # minute, day, month of the counters that hold `tokens` ("-": none)


class LocalLimits(Limits):
    """One process's limits. Each step runs without an await inside, so it is atomic on its event loop; each
    counter keeps only its latest period (one minute, one day, one month per key)."""

    def __init__(self) -> None:
        self._counters: dict[tuple[int, str], tuple[str, int]] = {}  # (key id, kind) → (period label, value)
        self._live: dict[int, dict[str, _Held]] = {}  # key id → admission id → what it holds

    def _get(self, key_id: int, kind: str, label: str) -> int | None:
        found = self._counters.get((key_id, kind))
        return found[1] if found is not None and found[0] == label else None

    def _add(self, key_id: int, kind: str, label: str, tokens: int, create: bool = False) -> int:
        """Add to the counter of `label`; a counter of another period is replaced only with `create`."""
        value = self._get(key_id, kind, label)
        if value is None and not create:
            return 0
        self._counters[key_id, kind] = (label, (value or 0) + tokens)
        return (value or 0) + tokens

    def _count(self, key_id: int, labels: tuple[str, str, str], tokens: int, create: bool = False) -> None:
        """Add `tokens` to the minute's, the day's and the month's tokens where `labels` name them."""
        for kind, label in zip(TOKEN_COUNTERS, labels, strict=True):
            if label != "-":
                self._add(key_id, kind, label, tokens, create)

    async def _take(
        self, policy: KeyPolicy, reserve: int, admission: str, now: float, periods: Periods
    ) -> _Counts | list[str]:
        key, minute, counted = policy.id, periods.labels[0], _counted(policy, periods)
        live = self._live.setdefault(key, {})
        for gone in [gone for gone, held in live.items() if held.expiry <= now]:
            held = live.pop(gone)
            self._count(key, held.labels, -held.tokens)
        budgets = {b: self._get(key, b, label) for b, label in zip(BUDGETS, counted[1:], strict=True) if label != "-"}
        if missing := [budget for budget, tokens in budgets.items() if tokens is None]:
            return missing
        requests, tokens = self._get(key, "req", minute) or 0, self._get(key, "tok", minute) or 0
        reason = _reason(policy, requests, tokens, len(live), budgets.get("daily") or 0, budgets.get("monthly") or 0)
        if reason:
            return _Counts(reason, requests, tokens)
        if policy.rpm or policy.tpm:
            requests = self._add(key, "req", minute, 1, create=True)
        live[admission] = _Held(now + settings.LEASE_SECONDS, reserve, counted)
        self._count(key, counted, reserve, create=True)
        return _Counts(None, requests, self._get(key, "tok", minute) or 0)

    async def _seed(self, key_id: int, budget: str, periods: Periods, tokens: int) -> None:
        label = periods.labels[1 if budget == "daily" else 2]
        if self._get(key_id, budget, label) is None:
            self._counters[key_id, budget] = (label, tokens)

    async def _settle(self, admission: Admission, periods: Periods, used: int) -> None:
        held = self._live.get(admission.policy.id, {}).pop(admission.id, None)
        if held is not None:
            self._count(admission.policy.id, held.labels, used - held.tokens)


def _counted(policy: KeyPolicy, periods: Periods) -> tuple[str, str, str]:
    """The labels of the token counters `policy` keeps: minute, day, month ("-" where it has no limit)."""
    limits = (policy.tpm, policy.daily_tokens, policy.monthly_tokens)
    minute, day, month = (label if limit else "-" for label, limit in zip(periods.labels, limits, strict=True))
    return minute, day, month


def _reason(policy: KeyPolicy, requests: int, tokens: int, in_flight: int, day: int, month: int) -> str | None:
    """The first limit already reached (the longest wait first), as the Lua script checks them."""
    if policy.monthly_tokens and month >= policy.monthly_tokens:
        return "monthly"
    if policy.daily_tokens and day >= policy.daily_tokens:
        return "daily"
    if policy.rpm and requests >= policy.rpm:
        return "requests"
    if policy.tpm and tokens >= policy.tpm:
        return "tokens"
    if policy.max_concurrency and in_flight >= policy.max_concurrency:
        return "concurrency"
    return None


# -- in Redis ---------------------------------------------------------------------------------------------
SCRIPT = (Path(__file__).parent / "limits.lua").read_text()
COUNTER_SLACK = 86400  # a budget counter outlives its period by this, so late settles still find it


class RedisLimits(Limits):
    """Every process and node shares these limits; a key's counters share one hash tag (a Redis Cluster slot)."""

    def __init__(self, url: str, namespace: str = "chat2api") -> None:
        self._namespace = namespace
        self._redis = LoopClients(url, SCRIPT)

    def _client(self) -> tuple[redis.asyncio.Redis, AsyncScript]:
        return self._redis.get()

    def _keys(self, key_id: int, periods: Periods) -> list[str]:
        base, (minute, today, month) = f"{self._namespace}:{{ck:{key_id}}}:", periods.labels
        return [f"{base}live", f"{base}held", f"{base}m:{minute}", f"{base}daily:{today}", f"{base}monthly:{month}"]

    async def _take(
        self, policy: KeyPolicy, reserve: int, admission: str, now: float, periods: Periods
    ) -> _Counts | list[str]:
        limits = (policy.rpm, policy.tpm, policy.max_concurrency, policy.daily_tokens, policy.monthly_tokens)
        args = ["admit", now, admission, now + settings.LEASE_SECONDS, reserve, *limits, *periods.labels]
        _, script = self._client()
        reply = await script(keys=self._keys(policy.id, periods), args=[*args, periods.minute_ends])
        if reply[0] == "seed":
            return list(reply[1:])
        return _Counts(reply[1] or None, int(reply[2]), int(reply[3]))

    async def _seed(self, key_id: int, budget: str, periods: Periods, tokens: int) -> None:
        client, _ = self._client()
        key = self._keys(key_id, periods)[3 if budget == "daily" else 4]
        ends = periods.day_ends if budget == "daily" else periods.month_ends
        await client.set(key, tokens, nx=True, exat=math.ceil(ends) + COUNTER_SLACK)

    async def _settle(self, admission: Admission, periods: Periods, used: int) -> None:
        policy, (_, script) = admission.policy, self._client()
        args: list[str | int] = [
            "settle",
            admission.id,
            used - admission.reserve,
            policy.tpm,
            policy.daily_tokens,
            policy.monthly_tokens,
        ]
        await script(keys=self._keys(policy.id, periods), args=args)

    async def close(self) -> None:
        """Close this event loop's connections (tests open a loop per test)."""
        await self._redis.close()


@functools.cache
def default_limits() -> Limits:
    return RedisLimits(settings.REDIS_URL, settings.REDIS_KEY_PREFIX) if settings.REDIS_URL else LocalLimits()


async def admit(policy: KeyPolicy, reserve: int, now: float | None = None) -> Admission | Refused:
    """`Limits.admit` on this deployment's limits (Redis when `REDIS_URL` is set)."""
    return await default_limits().admit(policy, reserve, now)


async def settle(admission: Admission, used: int) -> None:
    await default_limits().settle(admission, used)
