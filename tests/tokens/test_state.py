"""The pool's live state behaves the same in process memory and in Redis (a real one, `TEST_REDIS_URL`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import pytest

from tests.cluster import redis_namespace
from tokens.pool import CredentialPool, Lease, NoCredential, PooledCredential, _Snapshot
from tokens.state import ANY_MODEL, Candidate, LocalState, PoolState, RedisState, Refusal

T = TypeVar("T")
NOW = 1_800_000_000.0
TTL = 600.0


@pytest.fixture(params=["local", "redis"])
def state(request: pytest.FixtureRequest) -> Iterator[PoolState]:
    if request.param == "local":
        yield LocalState()
        return
    with redis_namespace() as (env, _):
        yield RedisState(env["REDIS_URL"], env["REDIS_KEY_PREFIX"])


def run(state: PoolState, scenario: Callable[[], Awaitable[T]]) -> T:
    """Each test runs in a fresh event loop; the Redis client of that loop is closed with it."""

    async def main() -> T:
        try:
            return await scenario()
        finally:
            if isinstance(state, RedisState):
                await state.close()

    return asyncio.run(main())


async def take(state: PoolState, cands: list[Candidate], model: str = "m1", now: float = NOW, lease: str = "") -> int:
    got = await state.acquire(cands, model, lease or f"lease-{time.monotonic_ns()}", now, TTL, None)
    assert isinstance(got, int), got
    return got


def test_cooldown_for_one_model_leaves_the_others(state):
    one = [Candidate(1)]

    async def scenario() -> None:
        await state.cool_down(1, "m1", NOW + 30)
        refused = await state.acquire(one, "m1", "a", NOW, TTL, None)
        assert refused == Refusal(cooling_for=pytest.approx(30))
        assert await take(state, one, "m2") == 1
        await state.cool_down(1, ANY_MODEL, NOW + 10)
        assert await state.acquire(one, "m2", "b", NOW, TTL, None) == Refusal(cooling_for=pytest.approx(10))
        assert await state.acquire(one, "m1", "c", NOW, TTL, None) == Refusal(cooling_for=pytest.approx(30))
        assert await take(state, one, "m2", now=NOW + 11) == 1
        assert await take(state, one, "m1", now=NOW + 31) == 1

    run(state, scenario)


def test_cooling_candidates_are_skipped_and_the_shortest_wait_is_given(state):
    async def scenario() -> None:
        await state.cool_down(1, ANY_MODEL, NOW + 50)
        await state.cool_down(2, "m1", NOW + 20)
        assert await take(state, [Candidate(1), Candidate(2), Candidate(3)]) == 3
        refused = await state.acquire([Candidate(1), Candidate(2)], "m1", "x", NOW, TTL, None)
        assert refused == Refusal(cooling_for=pytest.approx(20))
        # a tried candidate that is not cooling means "nothing left", not "wait": the caller reports its error
        refused = await state.acquire([Candidate(1), Candidate(3, excluded=True)], "m1", "y", NOW, TTL, None)
        assert refused == Refusal()
        assert await state.acquire([], "m1", "z", NOW, TTL, None) == Refusal()

    run(state, scenario)


def test_database_cooldowns_replace_the_live_ones(state):
    one = [Candidate(1)]

    async def scenario() -> None:
        await state.cool_down(1, "m1", NOW + 30)
        await state.set_cooldowns({1: {}}, NOW)  # the admin cleared it
        assert await take(state, one) == 1
        await state.set_cooldowns({1: {ANY_MODEL: NOW + 5, "m2": NOW - 1}}, NOW)
        assert await state.acquire(one, "m2", "a", NOW, TTL, None) == Refusal(cooling_for=pytest.approx(5))

    run(state, scenario)


def test_concurrency_limit_and_release(state):
    limited, spare = Candidate(1, limit=2), Candidate(2)

    async def scenario() -> None:
        assert await take(state, [limited], lease="a") == 1
        assert await take(state, [limited], lease="b") == 1
        assert await state.acquire([limited], "m1", "c", NOW, TTL, None) == Refusal(busy=True)
        assert await state.in_flight(1, NOW) == 2
        assert await take(state, [limited, spare], lease="c") == 2  # the full one is skipped
        await state.release(1, "a")
        await state.release(1, "a")  # twice is harmless: a lease is not a counter
        assert await state.in_flight(1, NOW) == 1
        assert await take(state, [limited], lease="d") == 1
        assert await state.acquire([limited], "m1", "e", NOW, TTL, None) == Refusal(busy=True)

    run(state, scenario)


def test_a_lease_expires_when_its_holder_never_releases_it(state):
    single = [Candidate(1, limit=1)]

    async def scenario() -> None:
        await take(state, single, lease="dead-process")
        assert await state.acquire(single, "m1", "b", NOW + TTL - 1, TTL, None) == Refusal(busy=True)
        assert await take(state, single, now=NOW + TTL + 1) == 1
        assert await state.in_flight(1, NOW + TTL + 1) == 1

    run(state, scenario)


def test_redis_keys_expire_with_their_content():
    async def scenario() -> None:
        now = time.time()
        await state.acquire([Candidate(1, limit=1)], "m1", "a", now, 60, None)
        await state.cool_down(2, "m1", now + 30)
        await state.cool_down(2, ANY_MODEL, now + 90)

    with redis_namespace() as (env, client):
        state = RedisState(env["REDIS_URL"], env["REDIS_KEY_PREFIX"])
        run(state, scenario)
        prefix = env["REDIS_KEY_PREFIX"]
        assert 55 <= client.ttl(f"{prefix}:{{pool}}:leases:1") <= 61
        assert 85 <= client.ttl(f"{prefix}:{{pool}}:cool:2") <= 91


def test_round_robin_is_one_sequence_and_skips_unready(state):
    three = [Candidate(1), Candidate(2), Candidate(3)]

    async def scenario() -> list[int]:
        picks = [await take(state, three) for _ in range(6)]
        await state.cool_down(2, ANY_MODEL, NOW + 30)
        return picks + [await take(state, three) for _ in range(4)]

    picks = run(state, scenario)
    assert picks[:6] == [1, 2, 3, 1, 2, 3]
    assert sorted(picks[6:]) == [1, 1, 3, 3]  # the ready ones share the load evenly


def test_random_point_picks_among_ready(state):
    three = [Candidate(1), Candidate(2, limit=1), Candidate(3)]

    async def scenario() -> list[int | Refusal]:
        await take(state, [Candidate(2, limit=1)])
        return [await state.acquire(three, "m1", f"p{p}", NOW, TTL, p) for p in (0.0, 0.49, 0.5, 0.99)]

    assert run(state, scenario) == [1, 1, 3, 3]


# -- the pool on top of a state: waiting for a slot ------------------------------------------------
def pool_with(state: PoolState, *creds: PooledCredential) -> CredentialPool:
    pool = CredentialPool(state)
    pool._snap = _Snapshot(credentials=creds)
    return pool


ONE_SLOT = PooledCredential(id=1, kind="openai", api_key="sk-one", max_concurrency=1)


def test_pick_waits_for_a_release_then_gives_up_busy(state, settings):
    settings.RANDOM_TOKEN, settings.POOL_WAIT_SECONDS = False, 0.3
    pool = pool_with(state, ONE_SLOT)

    async def scenario() -> tuple[float, float]:
        first = await pool.pick("m1", pool.credentials, ())
        asyncio.get_running_loop().call_later(0.1, lambda: asyncio.ensure_future(pool.release(first)))
        start = time.monotonic()
        second = await pool.pick("m1", pool.credentials, ())
        waited = time.monotonic() - start
        assert isinstance(second, Lease) and second.id != first.id
        start = time.monotonic()
        with pytest.raises(NoCredential) as refused:
            await pool.pick("m1", pool.credentials, ())
        assert refused.value.busy and refused.value.retry_after == 1.0
        return waited, time.monotonic() - start

    waited, gave_up = run(state, scenario)
    assert 0.08 < waited < 0.25
    assert 0.3 <= gave_up < 0.5


def test_pick_fails_at_once_when_all_are_cooling(state, settings):
    settings.POOL_WAIT_SECONDS = 5
    pool = pool_with(state, ONE_SLOT)

    async def scenario() -> None:
        await state.cool_down(1, ANY_MODEL, time.time() + 42)
        with pytest.raises(NoCredential) as refused:
            await pool.pick("m1", pool.credentials, ())
        assert not refused.value.busy and 40 < refused.value.retry_after <= 42

    run(state, scenario)


def test_renewal_keeps_a_live_lease_past_its_ttl_and_never_revives_a_released_one(state):
    single = [Candidate(1, limit=1)]

    async def scenario() -> None:
        await take(state, single, lease="alive")
        await take(state, [Candidate(2, limit=1)], lease="gone")
        await state.release(2, "gone")
        await state.renew({1: ["alive"], 2: ["gone"]}, NOW + 2 * TTL)
        assert await state.acquire(single, "m1", "b", NOW + TTL + 1, TTL, None) == Refusal(busy=True)
        assert await state.in_flight(2, NOW) == 0
        assert await take(state, single, now=NOW + 2 * TTL + 1) == 1

    run(state, scenario)


def test_a_pick_cancelled_while_the_state_answers_leaves_no_lease(state):
    """Redis answers later: a pick cancelled meanwhile gives back what its script leased. The process's own state
    answers within the pick's first step, so there is no answer to wait for and nothing a cancel could interrupt."""
    pool = pool_with(state, ONE_SLOT)

    async def scenario() -> int:
        await state.in_flight(1, NOW)  # Redis: connected, so that the pick's script goes out at once
        picking = asyncio.ensure_future(pool.pick("m1", pool.credentials, ()))
        await asyncio.sleep(0)  # the acquire is under way (in Redis: the script is sent)
        if isinstance(state, LocalState):
            assert picking.done()
            await pool.release(picking.result())
            return await state.in_flight(1, time.time())
        picking.cancel()
        with pytest.raises(asyncio.CancelledError):
            await picking
        for _ in range(100):  # what it leased is given back as soon as the state's answer arrives
            if await state.in_flight(1, time.time()) == 0:
                break
            await asyncio.sleep(0.01)
        return await state.in_flight(1, time.time())

    assert run(state, scenario) == 0
