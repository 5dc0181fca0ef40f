"""The request log: one `Entry` per API request, buffered in the process by `record` (no I/O on the request path)
and written by the pool's watcher through `flush`, in one transaction with the `DailyUsage` roll-ups; then read
back by the admin and `manage.py usage`.

The roll-up is an increment upsert (`INSERT … ON CONFLICT DO UPDATE SET n = n + excluded.n`), never a
read-modify-write, so any number of processes and nodes can flush at once and the sums stay exact.
"""

from __future__ import annotations

import logging
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Q, QuerySet, Sum
from django.utils import timezone

from common.db import in_thread
from tokens.models import ClientKey, DailyUsage, Outcome, RequestLog

log = logging.getLogger(__name__)

MAX_BUFFERED = 100_000  # entries kept while the database is away; the oldest go first
CHUNK = 1000  # rows per INSERT, and per DELETE when pruning
COUNTERS = ("requests", "errors", "prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens")
NO_KEY_NAME = "(AUTHORIZATION code)"


@dataclass(slots=True)
class Entry:
    created_at: float  # epoch seconds
    key_id: int | None
    endpoint: str
    model: str
    credential_id: int | None
    kind: str
    status: int
    outcome: str  # an `Outcome` value
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    first_byte_ms: int | None
    duration_ms: int
    request_id: str


@dataclass(frozen=True, slots=True)
class Totals:
    requests: int = 0
    tokens: int = 0  # prompt + completion


_buffer: deque[Entry] = deque(maxlen=MAX_BUFFERED)
_dropped = 0


# -- writing ---------------------------------------------------------------------------------------
def record(entry: Entry) -> None:
    """Buffer one request for the next flush (called on the event loop: no I/O, O(1))."""
    global _dropped
    if len(_buffer) == MAX_BUFFERED:
        _dropped += 1  # the deque drops the oldest itself
    _buffer.append(entry)


async def flush() -> None:
    """Write what is buffered; a failed write puts the batch back in front of the buffer and re-raises."""
    batch = _take()
    if not batch:
        return
    try:
        await in_thread(write, batch)
    except Exception:  # not on cancellation: the thread may still commit, and a batch must never be written twice
        _put_back(batch)
        raise


def flush_now() -> None:
    """`flush` for synchronous callers (tests, commands)."""
    batch = _take()
    try:
        write(batch)
    except Exception:
        _put_back(batch)
        raise


def flush_at_exit() -> None:
    """What a stopping process still holds (at most `POOL_RELOAD_SECONDS` of requests), written on its way out."""
    try:
        flush_now()
    except Exception:
        log.exception("request log: the last %d entries could not be written at exit", len(_buffer))


def _take() -> list[Entry]:
    global _dropped
    if _dropped:
        log.warning("request log buffer full: dropped the %d oldest entries", _dropped)
        _dropped = 0
    batch = list(_buffer)
    _buffer.clear()
    return batch


def _put_back(batch: list[Entry]) -> None:
    global _dropped
    newer = list(_buffer)
    _dropped += max(0, len(batch) + len(newer) - MAX_BUFFERED)
    _buffer.clear()
    _buffer.extend(batch + newer)  # past the cap the deque drops from the front: the oldest


def write(batch: Sequence[Entry]) -> None:
    """The log rows and their roll-ups in one transaction: both or neither."""
    if not batch:
        return
    with transaction.atomic():
        _insert(batch)
        _upsert(_roll_up(batch))


LOGGED = (
    *("created_at", "client_key_id", "endpoint", "model", "credential_id", "kind", "status", "outcome"),
    *("prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens"),
    *("first_byte_ms", "duration_ms", "request_id"),
)


def _insert(batch: Sequence[Entry]) -> None:
    """The log rows by `executemany`: the ORM's `bulk_create` spends about 200 µs per row building and preparing
    model instances, this about a tenth of that (a busy gateway logs a thousand requests a second)."""
    q, ops = connection.ops.quote_name, connection.ops
    sql = (
        f"INSERT INTO {q(RequestLog._meta.db_table)} ({', '.join(q(c) for c in LOGGED)}) "
        f"VALUES ({', '.join(['%s'] * len(LOGGED))})"
    )
    rows = [
        (
            ops.adapt_datetimefield_value(datetime.fromtimestamp(e.created_at, UTC)),
            *(e.key_id, e.endpoint[:64], e.model[:200], e.credential_id, e.kind[:16], e.status, e.outcome),
            *(e.prompt_tokens, e.completion_tokens, e.cached_tokens, e.reasoning_tokens),
            *(e.first_byte_ms, e.duration_ms, e.request_id[:128]),
        )
        for e in batch
    ]
    with connection.cursor() as cursor:
        for start in range(0, len(rows), CHUNK):
            cursor.executemany(sql, rows[start : start + CHUNK])


def _roll_up(batch: Iterable[Entry]) -> dict[tuple[date, int, int, str], list[int]]:
    zone = ZoneInfo(settings.TIME_ZONE)
    groups: dict[tuple[date, int, int, str], list[int]] = defaultdict(lambda: [0] * len(COUNTERS))
    for e in batch:
        day = datetime.fromtimestamp(e.created_at, zone).date()
        counts = groups[(day, e.key_id or 0, e.credential_id or 0, e.model[:200])]
        added = (1, e.outcome != Outcome.COMPLETED, e.prompt_tokens, e.completion_tokens)
        for i, value in enumerate((*added, e.cached_tokens, e.reasoning_tokens)):
            counts[i] += value
    return groups


def _upsert(groups: dict[tuple[date, int, int, str], list[int]]) -> None:
    """One atomic increment per group; the same SQL on SQLite and PostgreSQL. Groups go in one order on every
    node, so two flushes that touch the same rows wait for each other instead of deadlocking."""
    q = connection.ops.quote_name
    table = q(DailyUsage._meta.db_table)
    keys = ", ".join(q(name) for name in ("day", "key_id", "credential_id", "model"))
    columns = ", ".join(q(name) for name in COUNTERS)
    increments = ", ".join(f"{q(c)} = {table}.{q(c)} + excluded.{q(c)}" for c in COUNTERS)
    placeholders = ", ".join(["%s"] * (4 + len(COUNTERS)))
    sql = (
        f"INSERT INTO {table} ({keys}, {columns}) VALUES ({placeholders}) "
        f"ON CONFLICT ({keys}) DO UPDATE SET {increments}"
    )
    with connection.cursor() as cursor:
        cursor.executemany(sql, [(*group, *counts) for group, counts in sorted(groups.items())])


def prune(days: int | None = None) -> int:
    """Delete log rows older than `days` (default `REQUEST_LOG_DAYS`) a chunk at a time, so a big table is never
    locked by one long statement; the daily roll-ups stay."""
    cutoff = timezone.now() - timedelta(days=days or settings.REQUEST_LOG_DAYS)
    old = RequestLog.objects.filter(created_at__lt=cutoff).order_by()
    deleted = 0
    while ids := list(old.values_list("pk", flat=True)[:CHUNK]):
        deleted += RequestLog.objects.filter(pk__in=ids).delete()[0]
    return deleted


# -- reading ---------------------------------------------------------------------------------------
def today() -> date:
    return datetime.now(ZoneInfo(settings.TIME_ZONE)).date()


def daily(since: date, key_id: int | None = None, credential_id: int | None = None) -> list[dict]:
    """Per day and model since `since`: requests, errors and the token sums, oldest first."""
    return grouped(_usage(since, key_id, credential_id), "day", "model")


def grouped(rows: QuerySet[DailyUsage], *by: str) -> list[dict]:
    """The counters summed per `by` (field names), in that order; each dict also has `total_tokens`."""
    sums = rows.values(*by).annotate(**{f"sum_{c}": Sum(c) for c in COUNTERS}).order_by(*by)
    result = []
    for row in sums:
        summed = {c: row.pop(f"sum_{c}") or 0 for c in COUNTERS}
        result.append({**row, **summed, "total_tokens": summed["prompt_tokens"] + summed["completion_tokens"]})
    return result


def _usage(since: date, key_id: int | None = None, credential_id: int | None = None) -> QuerySet[DailyUsage]:
    rows = DailyUsage.objects.filter(day__gte=since)
    if key_id is not None:
        rows = rows.filter(key_id=key_id)
    if credential_id is not None:
        rows = rows.filter(credential_id=credential_id)
    return rows


def credential_totals(ids: Sequence[int], since: date) -> dict[int, Totals]:
    """Requests and tokens per credential since `since`, for a list column (one query)."""
    return _totals(DailyUsage.objects.filter(credential_id__in=ids, day__gte=since), "credential_id")


def key_totals(ids: Sequence[int], since: date) -> dict[int, Totals]:
    """Requests and tokens per client key since `since`, for a list column (one query)."""
    return _totals(DailyUsage.objects.filter(key_id__in=ids, day__gte=since), "key_id")


def _totals(rows: QuerySet[DailyUsage], by: str) -> dict[int, Totals]:
    sums = rows.values(by).annotate(n=Sum("requests"), tokens=Sum(F("prompt_tokens") + F("completion_tokens")))
    return {row[by]: Totals(row["n"], row["tokens"]) for row in sums.order_by()}


def spent(key_id: int, since: date) -> int:
    """Prompt and completion tokens of a key since a day (inclusive), from which the limits seed their budgets."""
    total = _usage(since, key_id=key_id).aggregate(n=Sum(F("prompt_tokens") + F("completion_tokens")))["n"]
    return total or 0


def last_hour() -> tuple[int, int]:
    """Requests and errors (not completed) logged in the last hour."""
    recent = RequestLog.objects.filter(created_at__gte=timezone.now() - timedelta(hours=1))
    counts = recent.aggregate(n=Count("pk"), errors=Count("pk", filter=~Q(outcome=Outcome.COMPLETED)))
    return counts["n"], counts["errors"]


def key_names(ids: Iterable[int]) -> dict[int, str]:
    """What to call each key id: its name, `NO_KEY_NAME` for 0, `#id (deleted)` for a key that is gone."""
    wanted = set(ids)
    names = dict(ClientKey.objects.filter(pk__in=wanted - {0}).values_list("pk", "name"))
    return {i: key_label(i, names.get(i)) for i in wanted}


def key_label(key_id: int, name: str | None) -> str:
    if key_id == 0:
        return NO_KEY_NAME
    return f"#{key_id} (deleted)" if name is None else name
