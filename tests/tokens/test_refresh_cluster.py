"""However many processes see a credential due at once, one call reaches the token endpoint."""

from __future__ import annotations

import pytest

from tests.cluster import manage, postgres_database, redis_namespace, start_together

REFRESHER = """
import os, sys, time, django
django.setup()
from tokens import refreshing
print("ready", flush=True)
start = float(input())
while time.time() < start:
    time.sleep(0.005)
if sys.argv[1] == "inline":
    row = refreshing.refresh_inline(int(sys.argv[2]))
    print(row.status, row.access_token[-12:])
else:
    print(refreshing.refresh_credential(int(sys.argv[2])).result)
"""

# Timing across processes: run on its own, not beside other workers (see the Makefile).
pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def cluster_env(fake_oauth):
    with (
        postgres_database(f"chat2api_test_refresh_{__import__('os').getpid()}") as url,
        redis_namespace() as (redis_env, _),
    ):
        token_url = fake_oauth.url + "/oauth/token"
        yield {
            "DATABASE_URL": url,
            **redis_env,
            "OAUTH_TOKEN_URL": token_url,
            "OAUTH_RT_TOKEN_URL": token_url,
            "DJANGO_SETTINGS_MODULE": "chat2api_site.settings",
        }


def test_concurrent_refreshers_make_one_call(cluster_env, fake_oauth):
    manage(cluster_env, "import_credentials", "-", stdin="rt-ok-frank-0123456789abcdefghijklmnopqrstuvwxyz\n")
    cred_id = "1"
    modes = ["inline", "inline", "inline", "beat", "beat", "beat"]
    procs = start_together(cluster_env, *(["-c", REFRESHER, mode, cred_id] for mode in modes))
    outputs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-1500:] for _, err in outputs]
    assert sum(fake_oauth.calls.values()) == 1
    inline = {out.strip() for (out, _), mode in zip(outputs, modes, strict=True) if mode == "inline"}
    assert len(inline) == 1 and next(iter(inline)).startswith("active ")  # all got the same fresh token
    beat = sorted(out.strip() for (out, _), mode in zip(outputs, modes, strict=True) if mode == "beat")
    assert beat.count("refreshed") <= 1 and set(beat) <= {"refreshed", "skipped"}
