"""Plan quota in the pool state (memory and a real Redis) and the headroom pick that reads it."""

from __future__ import annotations

import time

import pytest

from openai_compat.upstreams.base import Quota, Window
from tests.cluster import redis_namespace
from tests.tokens import test_state
from tests.tokens.test_state import NOW, TTL, pool_with, run
from tokens import quota
from tokens.pool import PooledCredential
from tokens.state import ANY_MODEL, Candidate, PoolState, RedisState

HOUR, WEEK = 3600.0, 7 * 24 * 3600.0
state = test_state.state  # the fixture: each test runs in process memory and in Redis


def report(primary: float | None, secondary: float | None = None, reset: float = NOW + HOUR) -> quota.Fields:
    five_hours = Window(primary, 300, reset) if primary is not None else None
    week = Window(secondary, 10080, NOW + WEEK) if secondary is not None else None
    return quota.flatten(Quota(five_hours, week, "plus"))


async def pick(state: PoolState, ids: list[int], point: float | None = None, now: float = NOW) -> int:
    got = await state.acquire([Candidate(i) for i in ids], "m1", f"l-{time.monotonic_ns()}", now, TTL, point, True)
    assert isinstance(got, int), got
    return got


def test_a_report_replaces_the_windows_it_names_and_keeps_the_others(state):
    async def scenario() -> None:
        await state.note_quota(1, report(37, 12), NOW)
        await state.note_quota(1, report(38), NOW)  # an event that names the 5 h window only
        found = await state.quotas([1, 2], NOW)
        assert list(found) == [1]
        assert quota.used(quota.parse(found[1]), NOW) == 38
        assert found[1]["s_used"] == "12.0" and found[1]["plan"] == "plus"

    run(state, scenario)


def test_headroom_picks_the_ready_candidate_with_the_most_quota_left(state):
    async def scenario() -> list[int]:
        await state.note_quota(1, report(80, 10), NOW)
        await state.note_quota(2, report(20, 50), NOW)  # the week is the fuller window: 50 % used
        await state.note_quota(3, report(90, 40, reset=NOW - 1), NOW)  # its 5 h window has reset: 40 % used
        picks = [await pick(state, [1, 2, 3])]
        await state.cool_down(3, ANY_MODEL, NOW + 60)
        picks.append(await pick(state, [1, 2, 3]))
        await state.note_quota(2, report(95), NOW)
        picks.append(await pick(state, [1, 2, 3]))
        picks.append(await pick(state, [1, 2, 3, 4]))  # nothing reported: nothing known used
        return picks

    assert run(state, scenario) == [3, 2, 1, 4]


def test_ties_follow_round_robin_or_the_random_point(state):
    async def scenario() -> list[int]:
        await state.note_quota(3, report(50), NOW)
        rotation = [await pick(state, [1, 2, 3]) for _ in range(4)]
        return rotation + [await pick(state, [1, 2, 3], point=p) for p in (0.0, 0.49, 0.5, 0.99)]

    assert run(state, scenario) == [1, 2, 1, 2, 1, 1, 2, 2]


def test_the_redis_hash_lives_until_the_latest_reset():
    async def scenario() -> None:
        now = time.time()
        five_hours, week = Window(10, 300, now + 300), Window(5, 10080, now + 3000)
        await state.note_quota(1, quota.flatten(Quota(five_hours, week)), now)
        await state.note_quota(1, quota.flatten(Quota(Window(11, 300, now + 600))), now)

    with redis_namespace() as (env, client):
        state = RedisState(env["REDIS_URL"], env["REDIS_KEY_PREFIX"])
        run(state, scenario)
        assert 2990 <= client.ttl(f"{env['REDIS_KEY_PREFIX']}:{{pool}}:quota:1") <= 3001


CODEX = [PooledCredential(id=i, kind="codex", access_token=f"at-{i}", account_id=f"acc-{i}") for i in (1, 2)]
KEY = PooledCredential(id=3, kind="openai", api_key="sk-three")


def test_auto_strategy_is_headroom_among_codex_accounts_only(state, settings):
    settings.POOL_STRATEGY, settings.RANDOM_TOKEN = "auto", False
    pool = pool_with(state, *CODEX, KEY)

    async def scenario() -> tuple[list[int], list[int]]:
        await pool.note_quota(CODEX[0], Quota(Window(60, 300, time.time() + HOUR)))
        await pool.note_quota(CODEX[1], Quota(Window(30, 300, time.time() + HOUR)))
        accounts = [c for c in pool.credentials if c.kind == "codex"]
        codex = [(await pool.pick("m1", accounts, ())).cred.id for _ in range(3)]
        mixed = [(await pool.pick("m1", pool.credentials, ())).cred.id for _ in range(3)]
        return codex, mixed

    codex, mixed = run(state, scenario)
    assert codex == [2, 2, 2]
    assert sorted(mixed) == [1, 2, 3]  # not every candidate reports quota: round-robin as RANDOM_TOKEN says


@pytest.mark.parametrize(
    ("strategy", "random_token", "expected"),
    [("headroom", False, [2, 2, 2]), ("round_robin", True, [1, 2, 1]), ("auto", False, [2, 2, 2])],
)
def test_pool_strategy_setting(state, settings, strategy, random_token, expected):
    settings.POOL_STRATEGY, settings.RANDOM_TOKEN = strategy, random_token
    pool = pool_with(state, *CODEX)

    async def scenario() -> list[int]:
        await pool.note_quota(CODEX[0], Quota(Window(60, 300, time.time() + HOUR)))
        return [(await pool.pick("m1", pool.credentials, ())).cred.id for _ in range(3)]

    assert run(state, scenario) == expected


def test_describe_in_the_operators_time_zone(settings):
    settings.TIME_ZONE = "Asia/Tokyo"  # UTC+9, no daylight saving
    now = 1_800_000_000.0  # 2027-01-15 08:00 UTC = 17:00 in Tokyo (a Friday)
    fields = quota.flatten(Quota(Window(37.4, 300, now + 2 * HOUR + 40 * 60), Window(12, 10080, now + 3 * 86400)))
    assert quota.describe(fields, now) == "5 h window 37 %, resets 19:40 · week 12 %"
    full = quota.flatten(Quota(Window(100, 300, now + 86400), Window(100, 10080, now + 3 * 86400)))
    assert quota.describe(full, now) == "5 h window 100 %, resets Sat 17:00 · week 100 %, resets Mon 17:00"
    past = quota.flatten(Quota(Window(90, 60, now - 1)))
    assert quota.describe(past, now) == "1 h window 0 %"
    assert quota.describe({}, now) == ""
