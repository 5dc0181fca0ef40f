"""A node that dies mid-answer (SIGKILL: no `finally` runs) holds its slots for `LEASE_TTL_SECONDS` at most,
while a living node keeps the leases of its long answers by renewing them."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

import httpx
import psycopg
import pytest

from tests.cluster import manage, postgres_database, redis_namespace, two_nodes
from tests.gateway import Gateway

TTL = 2.0  # renewed every TTL / 3; the fake's long answer (about 6 s) outlives it three times
BODY = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}], "stream": True}
HEADERS = {"Authorization": "Bearer test-code"}

pytestmark = pytest.mark.cluster


@pytest.fixture
def nodes(fake_openai) -> Iterator[tuple[Gateway, Gateway, Callable[[], int]]]:
    with (
        postgres_database(f"chat2api_test_leases_{os.getpid()}") as url,
        redis_namespace() as (redis_env, client),
    ):
        env = {"DATABASE_URL": url, **redis_env, "LEASE_TTL_SECONDS": str(TTL), "POOL_RELOAD_SECONDS": "0.25"}
        manage(env, "import_credentials", "-", stdin=f"openai {fake_openai.url}/v1 sk-long-crash\n")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE tokens_credential SET max_concurrency = 1")
        prefix = redis_env["REDIS_KEY_PREFIX"]

        def leases() -> int:
            keys = client.scan_iter(f"{prefix}:{{pool}}:leases:*")
            return sum(client.zcount(key, f"({time.time()}", "+inf") for key in keys)

        with two_nodes(env) as (a, b):
            yield a, b, leases


def test_a_killed_node_frees_its_slot_within_the_lease_ttl(nodes, fake_openai):
    a, b, leases = nodes
    with httpx.stream("POST", a.url + "/v1/chat/completions", json=BODY, headers=HEADERS, timeout=30) as reply:
        chunks = reply.iter_bytes()
        assert next(chunks).startswith(b"data: ")
        time.sleep(TTL * 1.5)
        assert leases() == 1  # renewed: the answer is still going after its lease's first expiry
        a.process.kill()
        killed = time.monotonic()
        while leases():
            assert time.monotonic() - killed < TTL * 3, "the dead node's lease did not expire"
            time.sleep(0.05)
    with httpx.stream("POST", b.url + "/v1/chat/completions", json=BODY, headers=HEADERS, timeout=30) as reply:
        assert reply.status_code == 200  # the slot the dead node held is free for the living one
        assert next(reply.iter_bytes()).startswith(b"data: ")
    released = time.monotonic()
    while leases():  # the living node gives its slot back as soon as its client leaves
        assert time.monotonic() - released < TTL, "the living node kept its lease after its client left"
        time.sleep(0.05)
