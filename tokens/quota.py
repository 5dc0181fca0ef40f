"""The plan quota an upstream reports for an account (Codex's `x-codex-primary-*` / `-secondary-*` headers and
`codex.rate_limits` events): what the `headroom` pick reads and the admin's list shows.

A report is kept flat (field → text), the same in every store: in process memory, in a Redis hash per
credential that expires at the latest reset (nothing reported is true after it), and, when there is no Redis,
on the credential row, written by the pool's batched flush so that the admin's process can read it. A window
past its reset counts as unused, here and in the pick's Lua script (`tokens.state.PICK`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from django.conf import settings
from django.utils import timezone

if TYPE_CHECKING:
    import redis
    import redis.asyncio

    from tokens.models import Credential

Fields = Mapping[str, str]
WINDOWS = (("p", True), ("s", False))  # (field prefix, primary): the short window, then the long one
KEEP_WITHOUT_RESET = 7 * 24 * 3600.0  # a report that names no reset is kept a week, the longest window


class ReportedWindow(Protocol):
    @property
    def used_percent(self) -> float: ...
    @property
    def window_minutes(self) -> int | None: ...
    @property
    def resets_at(self) -> float | None: ...


class ReportedQuota(Protocol):
    """What an upstream adapter reports (`openai_compat.upstreams.base.Quota` has this shape)."""

    @property
    def primary(self) -> ReportedWindow | None: ...
    @property
    def secondary(self) -> ReportedWindow | None: ...
    @property
    def plan(self) -> str: ...


def flatten(quota: ReportedQuota) -> dict[str, str]:
    fields = {"plan": quota.plan} if quota.plan else {}
    for prefix, window in (("p", quota.primary), ("s", quota.secondary)):
        if window is None:
            continue
        fields[f"{prefix}_used"] = repr(float(window.used_percent))
        if window.window_minutes:
            fields[f"{prefix}_minutes"] = str(int(window.window_minutes))
        if window.resets_at:
            fields[f"{prefix}_resets"] = repr(float(window.resets_at))
    return fields


def merge(old: Fields, new: Fields) -> dict[str, str]:
    """A report replaces the windows it names and keeps the others (an event may name only the 5 h window)."""
    return {**{k: v for k, v in old.items() if k not in _stale(new)}, **new}


def _stale(new: Fields) -> list[str]:
    """The fields of every window `new` reports: what it replaces."""
    named = [p for p, _ in WINDOWS if f"{p}_used" in new]
    return [f"{p}_{part}" for p in named for part in ("used", "minutes", "resets")]


def expiry(fields: Fields, now: float) -> float:
    """When the report stops saying anything: its latest reset."""
    resets = [float(fields[f"{p}_resets"]) for p, _ in WINDOWS if f"{p}_resets" in fields]
    return max(resets) if resets else now + KEEP_WITHOUT_RESET


def _live_used(fields: Fields, prefix: str, now: float) -> float | None:
    if f"{prefix}_used" not in fields:
        return None
    resets = fields.get(f"{prefix}_resets")
    return 0.0 if resets is not None and float(resets) <= now else float(fields[f"{prefix}_used"])


Parsed = tuple[tuple[float, float], ...]  # (used percent, reset or +inf) per window reported


def parse(fields: Fields) -> Parsed:
    """The numbers a pick compares, parsed once per report rather than on every pick."""
    found = [p for p, _ in WINDOWS if f"{p}_used" in fields]
    return tuple((float(fields[f"{p}_used"]), float(fields.get(f"{p}_resets", math.inf))) for p in found)


def used(windows: Parsed, now: float) -> float:
    """Percent used of the fullest live window: headroom is 100 minus this (nothing known: 0)."""
    return max((spent for spent, resets in windows if resets > now), default=0.0)


def least_used(ready: Sequence[int], quotas: Mapping[int, Parsed], now: float) -> list[int]:
    """The candidates with the most headroom (ties kept, in order, for the random or round-robin rule)."""
    spent = {cred_id: used(quotas.get(cred_id, ()), now) for cred_id in ready}
    fewest = min(spent.values(), default=0.0)
    return [cred_id for cred_id in ready if spent[cred_id] == fewest]


# -- for the operator ----------------------------------------------------------------------------------------
def describe(fields: Fields, now: float) -> str:
    """Like "5 h window 37 %, resets 19:40 · week 12 %" in `TIME_ZONE`; a long window's reset once it is full."""
    return " · ".join(windows(fields, now))


def windows(fields: Fields, now: float) -> list[str]:
    parts = []
    for prefix, primary in WINDOWS:
        spent = _live_used(fields, prefix, now)
        if spent is None:
            continue
        text = f"{_span(fields.get(f'{prefix}_minutes'))} {spent:.0f} %"
        resets = float(fields.get(f"{prefix}_resets", 0))
        if resets > now and (primary or spent >= 100):
            text += f", resets {_clock(resets, now)}"
        parts.append(text)
    return parts


def _span(minutes: str | None) -> str:
    n = int(minutes or 0)
    for size, name in ((10080, "week"), (1440, "day")):
        if n and n % size == 0:
            return name if n == size else f"{n // size} {name}s"
    if n and n % 60 == 0:
        return f"{n // 60} h window"
    return f"{n} min window" if n else "window"


def _clock(at: float, now: float) -> str:
    when, today = (timezone.localtime(datetime.fromtimestamp(t, tz=UTC)) for t in (at, now))
    return when.strftime("%H:%M" if when.date() == today.date() else "%a %H:%M")


def shown(creds: Iterable[Credential]) -> dict[int, Fields]:
    """The last report of each credential, for the admin: from Redis when there is one (live, every node's),
    else from the row (the pool's flush writes it there within `POOL_RELOAD_SECONDS`)."""
    creds = list(creds)
    if not settings.REDIS_URL:
        return {cred.pk: cred.quota for cred in creds}
    with _client(settings.REDIS_URL).pipeline(transaction=False) as pipe:
        for cred in creds:
            pipe.hgetall(redis_key(_prefix(), cred.pk))
        return dict(zip((cred.pk for cred in creds), pipe.execute(), strict=True))


# -- Redis ---------------------------------------------------------------------------------------------------
def _prefix() -> str:
    return f"{settings.REDIS_KEY_PREFIX}:{{pool}}:"  # the pool state's own (`tokens.state.RedisState`)


def redis_key(prefix: str, cred_id: int) -> str:
    return f"{prefix}quota:{cred_id}"


async def store(client: redis.asyncio.Redis, key: str, fields: Fields, now: float) -> None:
    """`merge` the report into the hash, in one transaction; the hash lives until the latest reset it names
    (NX sets a first expiry, GT only lengthens it)."""
    at = math.ceil(expiry(fields, now))
    async with client.pipeline(transaction=True) as pipe:
        if stale := _stale(fields):
            pipe.hdel(key, *stale)
        pipe.hset(key, mapping=dict(fields))  # type: ignore[arg-type]  # redis-py's Mapping keys are invariant: a str key is a valid field
        pipe.expireat(key, at, nx=True)
        pipe.expireat(key, at, gt=True)
        await pipe.execute()


@functools.cache
def _client(url: str) -> redis.Redis:
    import redis  # here: a process without REDIS_URL never loads redis-py

    timeout = settings.REDIS_TIMEOUT
    return redis.Redis.from_url(url, decode_responses=True, socket_timeout=timeout, socket_connect_timeout=timeout)
