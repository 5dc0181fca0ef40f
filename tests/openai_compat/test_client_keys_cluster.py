"""A client key's budget and limits on two gateway nodes sharing PostgreSQL and Redis: 50 requests at once against a
budget of 10 requests' worth of tokens never overspend by more than the requests in flight when it ran out."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from tests.cluster import postgres_database, redis_namespace, run_python, two_nodes
from tests.gateway import Gateway, eventually

pytestmark = pytest.mark.cluster
PER_REQUEST = 7 + 10  # the fake's usage for "Say hello": 7 prompt tokens and its 10-word answer
BUDGET = 10 * PER_REQUEST
SETUP = (
    "import django; django.setup(); from tests.factories import openai_key; from tokens.clients import create_key; "
    "openai_key('{url}/v1', 'sk-slow-cluster-keys', ['fake-model']); "
    "print(create_key('team', daily_tokens={budget}, rpm=1000)[1]); print(create_key('paced', rpm=5)[1])"
)
BODY = {"model": "fake-model", "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 20}


@pytest.fixture(scope="module")
def nodes(fake_openai) -> Iterator[tuple[str, str, Gateway, Gateway]]:
    """Two nodes, a slow `openai` credential (one word every 50 ms: requests overlap) and a client key per test."""
    with (
        postgres_database(f"chat2api_test_keys_cluster_{os.getpid()}") as url,
        redis_namespace() as (shared, _),
    ):
        env = {"DATABASE_URL": url, **shared}
        made = run_python(env, "-c", SETUP.format(url=fake_openai.url, budget=BUDGET))
        assert made.returncode == 0, made.stderr[-3000:]
        with two_nodes(env) as (a, b):
            *_, team, paced = made.stdout.strip().splitlines()
            yield url, {"team": team, "paced": paced}, a, b


async def burst(urls: list[str], key: str, n: int) -> list[httpx.Response]:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=n)) as client:
        calls = [client.post(urls[i % 2] + "/v1/chat/completions", json=BODY, headers=headers) for i in range(n)]
        return await asyncio.gather(*calls)


def spent_in_database(url: str, key: str) -> int:
    """The tokens the request log holds for the client key named `key`."""
    query = (
        "SELECT coalesce(sum(r.prompt_tokens + r.completion_tokens), 0) FROM tokens_requestlog r"
        " JOIN tokens_clientkey k ON k.id = r.client_key_id WHERE k.name = %s"
    )
    with psycopg.connect(url) as conn:
        return conn.execute(query, (key,)).fetchone()[0]


def test_a_budget_holds_across_two_nodes_under_a_burst(nodes, capsys):
    url, keys, a, b = nodes
    key = keys["team"]
    replies = asyncio.run(burst([a.url, b.url], key, 50))
    served = [r for r in replies if r.status_code == 200]
    refused = [r for r in replies if r.status_code != 200]
    assert served, [r.text for r in replies[:3]]
    for reply in refused:
        assert reply.status_code == 429 and reply.json()["error"]["code"] == "insufficient_quota", reply.text
        assert int(reply.headers["Retry-After"]) >= 1
    burst_spent = PER_REQUEST * len(served)
    assert burst_spent <= BUDGET + PER_REQUEST  # admitted only while some budget was left, reservation >= use
    # Sequentially after the burst, until the budget is spent: it is spent, and by no more than one request.
    for _ in range(20):
        again = asyncio.run(burst([a.url, b.url], key, 1))[0]
        if again.status_code != 200:
            assert again.json()["error"]["code"] == "insufficient_quota"
            break
        served.append(again)
    total = PER_REQUEST * len(served)
    assert BUDGET <= total <= BUDGET + PER_REQUEST - 1
    # the request log reaches the database in batches
    assert eventually(lambda: spent_in_database(url, "team") == total, 10), spent_in_database(url, "team")
    with capsys.disabled():
        print(
            f"\nbudget under concurrency: 50 requests at once on two nodes, budget {BUDGET} tokens: "
            f"{len(replies) - len(refused)} served, {len(refused)} refused ({burst_spent} tokens); "
            f"then until refused: {total} of {BUDGET} tokens spent"
        )


def test_requests_per_minute_are_counted_once_for_both_nodes(nodes):
    _, keys, a, b = nodes
    replies = asyncio.run(burst([a.url, b.url], keys["paced"], 12))
    assert sorted(r.status_code for r in replies) == [200] * 5 + [429] * 7
    for reply in replies:
        if reply.status_code == 429:
            assert reply.json()["error"]["code"] == "rate_limit_exceeded"
            assert reply.headers["x-ratelimit-limit-requests"] == "5"
            assert reply.headers["x-ratelimit-remaining-requests"] == "0"
