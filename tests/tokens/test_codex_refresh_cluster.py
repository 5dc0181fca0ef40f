"""Six processes (a web node's inline refresh and two forced workers, twice over) on one PostgreSQL and Redis
race to refresh a codex account, round after round: its single-use RefreshTokens rotate, and each one
reaches the token endpoint exactly once."""

from __future__ import annotations

import os

import pytest

from tests.cluster import manage, postgres_database, redis_namespace, start_together

RACER = """
import sys, time, django
django.setup()
from tokens import refreshing
print("ready", flush=True)
start, rounds, cred_id = float(input()), int(sys.argv[1]), int(sys.argv[2])
results = []
for n in range(rounds):
    while time.time() < start + n:
        time.sleep(0.005)
    if sys.argv[3] == "inline":
        row = refreshing.refresh_inline(cred_id)
        results.append(row.status)
    else:
        results.append(refreshing.refresh_credential(cred_id, force=True).result)
print(" ".join(results))
"""
ROUNDS = 3

pytestmark = pytest.mark.cluster  # timing across processes: run on its own (see the Makefile)


@pytest.fixture(scope="module")
def cluster_env(fake_oauth):
    """What every process of the cluster shares: one database, one Redis, the fake issuer."""
    with (
        postgres_database(f"chat2api_test_codex_refresh_{os.getpid()}") as url,
        redis_namespace() as (redis_env, _),
    ):
        yield {"DATABASE_URL": url, **redis_env, "CODEX_AUTH_URL": fake_oauth.url}


def test_each_refresh_token_is_sent_once(cluster_env, fake_oauth):
    manage(cluster_env, "import_credentials", "-", stdin="codex rt_race-0123456789abcdefghijklmnop\n")
    modes = ["inline", "force", "force"] * 2
    procs = start_together(cluster_env, *(["-c", RACER, str(ROUNDS), "1", mode] for mode in modes))
    outputs = [p.communicate(timeout=90) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-1500:] for _, err in outputs]
    sent = [r["refresh_token"] for r in fake_oauth.requests]
    assert sent and all(count == 1 for count in fake_oauth.calls.values()), fake_oauth.calls
    assert len(sent) >= ROUNDS  # every round rotated the token at least once
    per_token = sorted(fake_oauth.calls.values())
    print(f"codex refresh race: {len(procs)} processes, {len(sent)} refreshes, calls per RefreshToken {per_token}")
    final = manage(cluster_env, "shell", "-c", SHOW).stdout.strip().splitlines()[-1].split()
    assert final[0] == "active" and final[1] not in sent  # the newest, unspent token is the stored one
    results = " ".join(out for out, _ in outputs).split()
    assert "invalid" not in results and "failed" not in results


SHOW = "from tokens.models import Credential; c = Credential.objects.get(); print(c.status, c.refresh_token)"
