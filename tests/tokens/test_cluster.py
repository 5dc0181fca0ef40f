"""Two gateway nodes on one PostgreSQL and one Redis serve one pool: one rotation, shared cooldowns and limits."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import psycopg
import pytest
import redis

from tests.cluster import clear_namespace, manage, postgres_database, redis_namespace
from tests.gateway import Gateway, eventually, start_all

RELOAD_SECONDS = 0.25  # faster than this is not the database reload: that can only be the shared state
BODY = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
KEYS = (
    *("sk-ok-rr1", "sk-ok-rr2", "sk-ok-rr3"),
    *("sk-429-cool", "sk-ok-warm"),
    *("sk-slow-limited", "sk-long-hangup"),
)

# Timing across processes: run on its own, not beside other workers (see the Makefile).
pytestmark = pytest.mark.cluster


class Cluster:
    """Node A and node B; every credential of `KEYS` is imported once, disabled, and enabled by the test using it."""

    def __init__(self, env: dict[str, str], database_url: str, upstream: str, client: redis.Redis) -> None:
        self.env, self.database_url, self.upstream, self.redis = env, database_url, upstream, client
        # through the management command, which encrypts the secrets as the nodes expect them
        manage(env, "import_credentials", "-", stdin="".join(f"openai {upstream} {k}\n" for k in KEYS))
        with psycopg.connect(database_url) as conn:
            ids = [row[0] for row in conn.execute("SELECT id FROM tokens_credential ORDER BY id")]
        self.ids = dict(zip(KEYS, ids, strict=True))
        self.reset()
        self.a, self.b = Gateway(env), Gateway(env)

    def start(self) -> None:
        start_all(self.a, self.b)

    def stop(self) -> None:
        self.a.stop()
        self.b.stop()

    def sql(self, query: str, *params: object) -> None:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            conn.execute(query, params)

    def use(self, *keys: str, max_concurrency: int = 0) -> None:
        """Put `keys` in service, as an operator would in the admin; both nodes see them after a reload."""
        self.sql(
            "UPDATE tokens_credential SET status = 'active', max_concurrency = %s, updated_at = now()"
            " WHERE id = ANY(%s)",
            max_concurrency,
            [self.ids[k] for k in keys],
        )
        self.settle()

    def settle(self) -> None:
        time.sleep(RELOAD_SECONDS * 2.5)

    def reset(self) -> None:
        """Take every credential out of service and forget the shared state (rotation, cooldowns, leases)."""
        self.sql("UPDATE tokens_credential SET status = 'disabled', updated_at = now()")
        clear_namespace(self.redis, self.env["REDIS_KEY_PREFIX"])

    def keys(self, kind: str) -> list[str]:
        """The pool state's keys of one kind (`leases`, `cool`) in this cluster's Redis namespace."""
        return list(self.redis.scan_iter(f"{self.env['REDIS_KEY_PREFIX']}:{{pool}}:{kind}:*"))

    def leases(self) -> int:
        return sum(self.redis.zcard(key) for key in self.keys("leases"))


@pytest.fixture(scope="module")
def cluster(fake_openai) -> Iterator[Cluster]:
    with postgres_database(f"chat2api_test_cluster_{os.getpid()}") as url, redis_namespace() as (redis_env, client):
        env = {
            "DATABASE_URL": url,
            **redis_env,
            "RANDOM_TOKEN": "false",
            "POOL_RELOAD_SECONDS": str(RELOAD_SECONDS),
        }
        nodes = Cluster(env, url, fake_openai.url + "/v1", client)
        try:
            nodes.start()
            yield nodes
        finally:
            nodes.stop()


@pytest.fixture
def nodes(cluster: Cluster, fake_openai) -> Iterator[Cluster]:
    yield cluster
    cluster.reset()


def ask(node: Gateway, stream: bool = False) -> httpx.Response:
    return httpx.post(
        node.url + "/v1/chat/completions",
        json={**BODY, "stream": stream},
        headers={"Authorization": "Bearer test-code"},
        timeout=30,
    )


def test_round_robin_is_one_sequence_across_nodes(nodes, fake_openai):
    nodes.use("sk-ok-rr1", "sk-ok-rr2", "sk-ok-rr3")
    for i in range(9):
        assert ask(nodes.a if i % 2 == 0 else nodes.b).status_code == 200
    assert fake_openai.order == ["sk-ok-rr1", "sk-ok-rr2", "sk-ok-rr3"] * 3


def test_cooldown_set_on_one_node_holds_on_the_other_at_once(nodes, fake_openai):
    nodes.use("sk-429-cool", "sk-ok-warm")
    assert ask(nodes.a).status_code == 200  # sk-429-cool answers 429 (Retry-After 30), sk-ok-warm answers
    for _ in range(4):  # the first within milliseconds: node B has not reloaded from the database yet
        assert ask(nodes.b).status_code == 200
    assert fake_openai.order == ["sk-429-cool", "sk-ok-warm", *["sk-ok-warm"] * 4]
    cools = [nodes.redis.hgetall(k) for k in nodes.keys("cool")]
    assert len(cools) == 1 and 25 < float(cools[0]["*"]) - time.time() <= 30

    # the admin's "Clear cooldown" (a database write) reaches the shared state within a reload
    nodes.sql(
        "UPDATE tokens_credential SET cooldown_until = NULL, status = 'active', updated_at = now() WHERE id = %s",
        nodes.ids["sk-429-cool"],
    )
    started = time.monotonic()
    while fake_openai.calls["sk-429-cool"] == 1:
        # ~0.2 s as a rule (a reload is 0.25 s); the cooldown it clears had 30 s to run. 2 s: a busy CI host stalls.
        assert time.monotonic() - started < 2.0, "the cleared cooldown still holds"
        assert ask(nodes.b).status_code == 200
        time.sleep(0.02)
    assert nodes.leases() == 0  # failed attempts gave their slots back too


def test_concurrency_limit_holds_across_nodes(nodes, fake_openai):
    nodes.use("sk-slow-limited", max_concurrency=1)
    start = threading.Barrier(6)

    def one(i: int) -> httpx.Response:
        start.wait()
        return ask(nodes.a if i % 2 == 0 else nodes.b, stream=True)

    with ThreadPoolExecutor(6) as workers:
        replies = list(workers.map(one, range(6)))
    assert [r.status_code for r in replies] == [200] * 6
    assert all(r.text.endswith("data: [DONE]\n\n") for r in replies)
    assert fake_openai.calls["sk-slow-limited"] == 6
    assert fake_openai.peak["sk-slow-limited"] == 1, fake_openai.order
    assert nodes.leases() == 0  # each slot was given back exactly once


def test_a_client_that_hangs_up_frees_its_slot_for_the_other_node(nodes, fake_openai):
    nodes.use("sk-long-hangup", max_concurrency=1)  # its answer lasts about 6 s
    with first_chunk(nodes.a):
        assert eventually(lambda: nodes.leases() == 1, seconds=2.0)
    started = time.monotonic()
    with first_chunk(nodes.b):  # had A's slot stayed taken, B would wait for the rest of A's answer
        assert time.monotonic() - started < 4
    assert eventually(lambda: nodes.leases() == 0, seconds=2.0)  # B's own hang-up is released a moment later


@contextmanager
def first_chunk(node: Gateway) -> Iterator[bytes]:
    """Open a stream, read its first chunk, and hang up when the block ends."""
    body = {**BODY, "stream": True}
    headers = {"Authorization": "Bearer test-code"}
    with httpx.stream("POST", node.url + "/v1/chat/completions", json=body, headers=headers, timeout=30) as reply:
        chunks = reply.iter_bytes()  # keep the iterator: dropping it would close the connection at once
        first = next(chunks)
        assert reply.status_code == 200 and first.startswith(b'data: {"id"'), first[:300]
        yield first


def test_import_and_disable_on_one_view_reach_the_other_node_without_restart(nodes, fake_openai):
    nodes.settle()
    assert ask(nodes.b).status_code != 200
    manage(nodes.env, "import_credentials", "-", stdin=f"openai {nodes.upstream} sk-ok-live\n")
    assert seconds_until(nodes.b, answers=True) < 1.0
    nodes.sql("UPDATE tokens_credential SET status = 'disabled', updated_at = now()")
    assert seconds_until(nodes.b, answers=False) < 1.0


def seconds_until(node: Gateway, answers: bool) -> float:
    start = time.monotonic()
    while time.monotonic() - start < 5:
        if (ask(node).status_code == 200) == answers:
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError(f"node never {'answered' if answers else 'refused'}")
