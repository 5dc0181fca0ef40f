"""A client key's limits behave the same in process memory and in Redis (a real one, `TEST_REDIS_URL`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import date, datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

import pytest

from tests.cluster import redis_namespace
from tokens.clients import KeyPolicy
from tokens.limits import Admission, Limits, LocalLimits, RedisLimits, Refused, format_duration
from tokens.models import DailyUsage

T = TypeVar("T")
ZONE = ZoneInfo("Europe/Paris")  # days and months in TIME_ZONE, which is not UTC here
NOW = datetime(2030, 1, 15, 10, 0, tzinfo=ZONE).timestamp()  # on a minute's start, in the middle of a month

pytestmark = pytest.mark.django_db(transaction=True)  # budgets are seeded from the database in a worker thread


@pytest.fixture(autouse=True)
def _zone(settings) -> None:
    settings.TIME_ZONE = "Europe/Paris"


@pytest.fixture(params=["local", "redis"])
def limits(request: pytest.FixtureRequest) -> Iterator[Limits]:
    if request.param == "local":
        yield LocalLimits()
        return
    with redis_namespace() as (env, _):
        yield RedisLimits(env["REDIS_URL"], env["REDIS_KEY_PREFIX"])


def run(limits: Limits, scenario: Callable[[], Awaitable[T]]) -> T:
    """Each test runs in a fresh event loop; the Redis client of that loop is closed with it."""

    async def main() -> T:
        try:
            return await scenario()
        finally:
            if isinstance(limits, RedisLimits):
                await limits.close()

    return asyncio.run(main())


async def admitted(limits: Limits, policy: KeyPolicy, reserve: int = 0, now: float = NOW) -> Admission:
    got = await limits.admit(policy, reserve, now)
    assert isinstance(got, Admission), got
    return got


async def refused(limits: Limits, policy: KeyPolicy, reserve: int = 0, now: float = NOW) -> Refused:
    got = await limits.admit(policy, reserve, now)
    assert isinstance(got, Refused), got
    return got


def test_requests_per_minute_and_the_next_window(limits: Limits) -> None:
    key = KeyPolicy(1, "k", rpm=2)

    async def scenario() -> None:
        first = await admitted(limits, key, now=NOW + 10)
        assert first.headers == {
            "x-ratelimit-limit-requests": "2",
            "x-ratelimit-remaining-requests": "1",
            "x-ratelimit-reset-requests": "50s",
        }
        await admitted(limits, key, now=NOW + 20)
        no = await refused(limits, key, now=NOW + 30.5)
        assert (no.reason, no.retry_after) == ("requests", 30)
        assert no.headers["x-ratelimit-remaining-requests"] == "0"
        assert "2 requests per minute" in no.message
        assert (await admitted(limits, key, now=NOW + 60)).headers["x-ratelimit-remaining-requests"] == "1"

    run(limits, scenario)


def test_tokens_per_minute_reserve_then_settle(limits: Limits) -> None:
    key = KeyPolicy(1, "k", tpm=1000)

    async def scenario() -> None:
        first = await admitted(limits, key, 600)
        assert first.headers["x-ratelimit-remaining-tokens"] == "400"
        assert "x-ratelimit-limit-requests" not in first.headers  # no requests per minute limit: no trio
        await limits.settle(first, 100)  # the reservation is replaced by what was used
        assert (await admitted(limits, key, 700)).headers["x-ratelimit-remaining-tokens"] == "200"
        await admitted(limits, key, 700)  # 800 taken: admitted while any is left
        no = await refused(limits, key, 1)
        assert (no.reason, no.retry_after) == ("tokens", 60)
        assert no.headers["x-ratelimit-remaining-tokens"] == "0"

    run(limits, scenario)


def test_concurrency_slots_are_freed_by_settle(limits: Limits) -> None:
    key = KeyPolicy(1, "k", max_concurrency=2)

    async def scenario() -> None:
        first = await admitted(limits, key)
        await admitted(limits, key)
        no = await refused(limits, key)
        assert (no.reason, no.retry_after, no.headers) == ("concurrency", 1, {})
        await limits.settle(first, 10)
        await admitted(limits, key)
        await refused(limits, key)

    run(limits, scenario)


def test_an_admission_never_settled_expires(limits: Limits, settings) -> None:
    settings.LEASE_SECONDS = 600
    key = KeyPolicy(1, "k", max_concurrency=1, daily_tokens=1000, tpm=5000)

    async def scenario() -> None:
        lost = await admitted(limits, key, 1000)  # its process died: never settled
        assert (await refused(limits, key, now=NOW + 599)).reason == "daily"
        later = await admitted(limits, key, 1000, now=NOW + 601)  # slot and reservation given back
        await limits.settle(lost, 500)  # too late: nothing happens
        assert (await refused(limits, key, now=NOW + 602)).reason == "daily"
        await limits.settle(later, 10)
        assert (await admitted(limits, key, 990, now=NOW + 603)).headers["x-ratelimit-remaining-tokens"] == "4000"
        assert (await refused(limits, key, now=NOW + 604)).reason == "daily"

    run(limits, scenario)


@pytest.mark.parametrize(
    ("budget", "reason", "next_period"),
    [
        ("daily_tokens", "daily", datetime(2030, 1, 16, tzinfo=ZONE)),
        ("monthly_tokens", "monthly", datetime(2030, 2, 1, tzinfo=ZONE)),
    ],
)
def test_budget_settle_replaces_the_reservation(
    limits: Limits, settings, budget: str, reason: str, next_period: datetime
) -> None:
    settings.LEASE_SECONDS = 40 * 86400  # no admission expires in this test
    key = KeyPolicy(1, "k", **{budget: 1000})

    async def scenario() -> None:
        a, b = await admitted(limits, key, 400), await admitted(limits, key, 400)
        c = await admitted(limits, key, 400)  # 800 of 1000 taken: admitted, the key may overspend this once
        no = await refused(limits, key, 1)
        assert no.reason == reason
        assert no.retry_after == int(next_period.timestamp() - NOW)
        assert no.headers == {}  # budgets have no OpenAI header
        for admission in (a, b, c):
            await limits.settle(admission, 50)
        await admitted(limits, key, 850)  # 150 used + 850
        await refused(limits, key, 1, now=next_period.timestamp() - 1)
        await admitted(limits, key, 1000, now=next_period.timestamp())  # a new period: nothing spent

    run(limits, scenario)


def test_budgets_are_seeded_from_daily_usage(limits: Limits) -> None:
    usage = [
        (date(2030, 1, 15), 7, 300, 500),  # today
        (date(2030, 1, 3), 7, 100, 50),  # earlier this month
        (date(2029, 12, 31), 7, 10_000, 0),  # last month
        (date(2030, 1, 15), 8, 10_000, 0),  # another key
    ]
    for day, key_id, prompt, completion in usage:
        DailyUsage.objects.create(day=day, key_id=key_id, model="m", prompt_tokens=prompt, completion_tokens=completion)
    daily = KeyPolicy(7, "k", daily_tokens=1000)

    async def scenario() -> None:
        await admitted(limits, daily, 100)
        await admitted(limits, daily, 100)  # 900 < 1000
        assert (await refused(limits, daily)).reason == "daily"
        assert (await refused(limits, KeyPolicy(7, "k", monthly_tokens=950))).reason == "monthly"
        await admitted(limits, KeyPolicy(7, "k", monthly_tokens=951))

    run(limits, scenario)


def test_settle_twice_counts_once(limits: Limits) -> None:
    key = KeyPolicy(1, "k", tpm=1000, daily_tokens=300)

    async def scenario() -> None:
        first = await admitted(limits, key, 500)
        await limits.settle(first, 100)
        await limits.settle(first, 100)
        assert (await admitted(limits, key, 100)).headers["x-ratelimit-remaining-tokens"] == "800"
        await admitted(limits, key, 100)  # 300 of the day's budget taken, not 400
        await refused(limits, key)

    run(limits, scenario)


@pytest.mark.parametrize(
    ("policy", "allowed"),
    [
        (KeyPolicy(1, "k", daily_tokens=1000), 10),
        (KeyPolicy(1, "k", monthly_tokens=1000, tpm=100_000), 10),
        (KeyPolicy(1, "k", rpm=37), 37),
        (KeyPolicy(1, "k", tpm=450), 5),
        (KeyPolicy(1, "k", max_concurrency=7), 7),
    ],
)
def test_200_at_once_never_pass_a_limit(limits: Limits, policy: KeyPolicy, allowed: int) -> None:
    async def scenario() -> list[Admission | Refused]:
        return await asyncio.gather(*(limits.admit(policy, 100, NOW) for _ in range(200)))

    decisions = run(limits, scenario)
    assert sum(isinstance(decision, Admission) for decision in decisions) == allowed


def test_a_key_without_limits_costs_nothing() -> None:
    nowhere = RedisLimits("redis://127.0.0.1:9/0")  # nothing listens there: any call would fail

    async def scenario() -> None:
        admission = await admitted(nowhere, KeyPolicy(1, "k", allowed_models=("gpt-*",)), 10_000)
        assert (admission.id, admission.headers) == ("", {})
        await nowhere.settle(admission, 10_000)

    run(nowhere, scenario)


def test_redis_keeps_its_keys_under_the_prefix() -> None:
    with redis_namespace() as (env, client):
        limits = RedisLimits(env["REDIS_URL"], env["REDIS_KEY_PREFIX"])
        run(limits, lambda: admitted(limits, KeyPolicy(1, "k", rpm=5, daily_tokens=10), 5))
        keys = set(client.scan_iter(match=f"{env['REDIS_KEY_PREFIX']}*"))
        assert len(keys) == 4  # live admissions, their reservations, the minute window, the day
        assert all(client.ttl(key) > 0 for key in keys)  # everything goes away on its own


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.017, "17ms"), (0, "0ms"), (1, "1s"), (59.5, "59.5s"), (360, "6m0s"), (61.25, "1m1.25s"), (3600, "1h0m0s")],
)
def test_durations_as_openai_writes_them(seconds: float, shown: str) -> None:
    assert format_duration(seconds) == shown
