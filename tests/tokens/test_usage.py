"""The request log: entries recorded on the request path and flushed in batches, with their daily roll-ups; exact
under concurrent flushes (threads on SQLite, processes on PostgreSQL), nothing lost or doubled by a failed write,
pruned by age, bounded while the database is away."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from django.db import IntegrityError, connection

from tests.cluster import postgres_database, start_together
from tokens import tasks, usage
from tokens.models import DailyUsage, Outcome, RequestLog

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_usage")]
NOON = datetime(2026, 11, 30, 12, tzinfo=UTC).timestamp()
ROLLED = ("key_id", "credential_id", "model", *usage.COUNTERS)


def entry(when: float = NOON, key_id: int | None = 1, model: str = "gpt-5", **fields) -> usage.Entry:
    values = {
        "endpoint": "chat.completions",
        "credential_id": 7,
        "kind": "openai",
        "status": 200,
        "outcome": Outcome.COMPLETED,
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "cached_tokens": 2,
        "reasoning_tokens": 1,
        "first_byte_ms": 120,
        "duration_ms": 900,
        "request_id": "req_test",
    }
    return usage.Entry(created_at=when, key_id=key_id, model=model, **{**values, **fields})


def rollups() -> list[tuple]:
    return list(DailyUsage.objects.order_by("day", "key_id", "credential_id", "model").values_list("day", *ROLLED))


@pytest.fixture(autouse=True)
def empty_buffer():
    usage._buffer.clear()  # what an earlier test of this process may have left
    yield
    usage._buffer.clear()


def test_a_flush_writes_the_log_and_the_daily_rollups():
    usage.record(entry(request_id="req_a"))
    usage.record(entry(request_id="req_b", status=502, outcome=Outcome.UPSTREAM_ERROR, completion_tokens=0))
    usage.record(entry(key_id=None, credential_id=None, model="gpt-4o", request_id="req_c"))
    asyncio.run(usage.flush())

    logged = RequestLog.objects.get(request_id="req_a")
    assert logged.created_at == datetime(2026, 11, 30, 12, tzinfo=UTC)
    assert (logged.client_key_id, logged.credential_id, logged.kind, logged.first_byte_ms) == (1, 7, "openai", 120)
    assert RequestLog.objects.count() == 3
    assert rollups() == [
        (date(2026, 11, 30), 0, 0, "gpt-4o", 1, 0, 10, 5, 2, 1),
        (date(2026, 11, 30), 1, 7, "gpt-5", 2, 1, 20, 5, 4, 2),
    ]


def test_two_flushes_of_one_group_add_up():
    usage.record(entry())
    usage.flush_now()
    usage.record(entry(prompt_tokens=100))
    usage.record(entry(outcome=Outcome.RATE_LIMITED, status=429))
    asyncio.run(usage.flush())
    assert rollups() == [(date(2026, 11, 30), 1, 7, "gpt-5", 3, 1, 120, 15, 6, 3)]


def test_days_are_those_of_the_time_zone(settings):
    settings.TIME_ZONE = "Asia/Tokyo"  # 20:00 UTC on the 30th is the 1st there
    usage.record(entry(when=datetime(2026, 11, 30, 20, tzinfo=UTC).timestamp()))
    usage.flush_now()
    assert DailyUsage.objects.get().day == date(2026, 12, 1)


def test_a_failed_write_keeps_the_batch_in_front_and_writes_it_once_later():
    first, bad = entry(request_id="req_1"), entry(request_id="req_2", status=-1)  # violates the CHECK (status >= 0)
    usage.record(first)
    usage.record(bad)
    with pytest.raises(IntegrityError):
        asyncio.run(usage.flush())
    assert not RequestLog.objects.exists() and not DailyUsage.objects.exists()  # one transaction: nothing

    usage.record(entry(request_id="req_3"))  # arrived meanwhile: goes after the batch that was put back
    bad.status = 500
    usage.flush_now()
    assert list(RequestLog.objects.order_by("pk").values_list("request_id", flat=True)) == ["req_1", "req_2", "req_3"]
    assert DailyUsage.objects.get().requests == 3
    usage.flush_now()  # nothing left to write twice
    assert RequestLog.objects.count() == 3


def test_the_buffer_keeps_the_newest_entries_and_says_how_many_it_dropped(caplog):
    for n in range(usage.MAX_BUFFERED + 3):
        usage.record(entry(request_id=f"req_{n}"))
    with caplog.at_level(logging.WARNING, logger="tokens.usage"):
        usage.flush_now()
    assert "dropped the 3 oldest entries" in caplog.text
    assert RequestLog.objects.count() == usage.MAX_BUFFERED
    assert not RequestLog.objects.filter(request_id__in=["req_0", "req_1", "req_2"]).exists()
    assert RequestLog.objects.filter(request_id__in=["req_3", f"req_{usage.MAX_BUFFERED + 2}"]).count() == 2


def test_prune_deletes_old_log_rows_in_chunks_and_keeps_the_rollups(settings, monkeypatch):
    settings.REQUEST_LOG_DAYS = 30
    monkeypatch.setattr(usage, "CHUNK", 2)
    now = time.time()
    for age_days in (40, 35, 31, 31, 29, 0):
        usage.record(entry(when=now - age_days * 86400, request_id=f"req_{age_days}"))
    usage.flush_now()
    assert tasks.prune_request_log() == 4
    assert sorted(RequestLog.objects.values_list("request_id", flat=True)) == ["req_0", "req_29"]
    assert sum(DailyUsage.objects.values_list("requests", flat=True)) == 6
    assert usage.prune(days=1) == 1


def test_queries_for_the_admin_and_the_limits():
    today = usage.today()
    now = time.time()
    usage.record(entry(when=now, key_id=1, credential_id=7))
    usage.record(entry(when=now, key_id=1, credential_id=8, outcome=Outcome.SERVER_ERROR, status=500))
    usage.record(entry(when=now - 3 * 3600, key_id=2, credential_id=7, model="gpt-4o"))
    usage.record(entry(when=now - 3 * 86400, key_id=1, credential_id=7, prompt_tokens=1000))
    usage.flush_now()

    assert usage.spent(1, today - timedelta(days=10)) == 1000 + 5 + 2 * 15
    assert usage.spent(1, today + timedelta(days=1)) == 0
    assert usage.key_totals([1, 2, 3], today - timedelta(days=10)) == {
        1: usage.Totals(3, 1035),
        2: usage.Totals(1, 15),
    }
    assert usage.credential_totals([7], today - timedelta(days=10)) == {7: usage.Totals(3, 1035)}
    assert usage.last_hour() == (2, 1)
    by_day = usage.daily(today - timedelta(days=10), credential_id=7)
    oldest = by_day[0]
    assert (oldest["day"], oldest["model"], oldest["requests"], oldest["total_tokens"]) == (
        today - timedelta(days=3),
        "gpt-5",
        1,
        1005,
    )
    assert sum(row["requests"] for row in by_day) == 3
    assert usage.key_names([0, 1]) == {0: "(AUTHORIZATION code)", 1: "#1 (deleted)"}


def test_concurrent_flushes_from_threads_add_up_exactly():
    def flush_from_thread() -> None:
        try:
            for _ in range(10):
                usage.write([entry(key_id=k, model=m) for k in (1, 2) for m in ("a", "b") for _ in range(3)])
        finally:
            connection.close()

    threads = [threading.Thread(target=flush_from_thread) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [row[4] for row in rollups()] == [120, 120, 120, 120]
    assert RequestLog.objects.count() == 480


PROCESSES, FLUSHES, PER_FLUSH = 4, 30, 20


def flush_many() -> None:
    """One process's share of the PostgreSQL test: many small flushes, all processes at once (`start_together`)."""
    print("ready", flush=True)
    time.sleep(max(0.0, float(input()) - time.time()))
    for n in range(FLUSHES):
        for i in range(PER_FLUSH):
            usage.record(entry(key_id=i % 2 + 1, model=("a", "b", "c")[i % 3], outcome=("completed", "refused")[n % 2]))
        asyncio.run(usage.flush())


def test_concurrent_flushes_from_processes_on_postgresql_add_up_exactly():
    with postgres_database(f"chat2api_test_usage_{os.getpid()}") as url:
        script = "import django; django.setup(); from tests.tokens.test_usage import flush_many; flush_many()"
        children = start_together({"DATABASE_URL": url}, *(["-c", script] for _ in range(PROCESSES)))
        outcomes = [child.communicate(timeout=120) for child in children]
        assert [child.returncode for child in children] == [0] * PROCESSES, [err[-1500:] for _, err in outcomes]
        with psycopg.connect(url) as conn:
            logged = conn.execute("SELECT count(*) FROM tokens_requestlog").fetchone()[0]
            rows = conn.execute(
                "SELECT sum(requests), sum(errors), sum(prompt_tokens), count(*) FROM tokens_dailyusage"
            ).fetchone()
    total = PROCESSES * FLUSHES * PER_FLUSH
    assert logged == total
    assert rows == (total, total // 2, total * 10, 6)  # 2 keys x 3 models, one day
