"""Two gateway nodes on one PostgreSQL and one Redis: a ChatGPT plan's usage limit, hit on one node, is skipped on
the other at once (even with ENABLE_LIMIT=false: it is a fact, not a rate limit); when every account is used up
the client is told the earliest reset; the admin (node B) shows the quota the nodes saw, read from Redis."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from tests.cluster import manage, postgres_database, redis_namespace, two_nodes
from tests.fakes import codex_server
from tests.gateway import Gateway

pytestmark = pytest.mark.cluster  # several server processes, timing across them: run alone
RELOAD_SECONDS = 0.25
PASSWORD = "quota-admin-password"
ACCOUNTS = ("acc-usage-a", "acc-ok-b", "acc-usage-c")
SETUP = f"""
from django.contrib.auth.models import User
from tests.factories import codex_account
from tokens.models import Credential, Status
made = [codex_account(account_id=name) for name in {ACCOUNTS!r}]
Credential.objects.filter(pk=made[2].pk).update(status=Status.DISABLED)
User.objects.create_superuser("quota-admin", password={PASSWORD!r})
"""
SWAP = """UPDATE tokens_credential SET updated_at = now(),
    status = CASE account_id WHEN 'acc-ok-b' THEN 'disabled' ELSE 'active' END
    WHERE account_id IN ('acc-ok-b', 'acc-usage-c')"""


@pytest.fixture(scope="module")
def nodes(fake_codex) -> Iterator[tuple[Gateway, Gateway, dict[str, str]]]:
    with postgres_database(f"chat2api_test_quota_{os.getpid()}") as url, redis_namespace() as (redis_env, _):
        env = {
            **redis_env,
            "DATABASE_URL": url,
            "CODEX_BASE_URL": fake_codex.url + "/backend-api/codex",
            "ENABLE_LIMIT": "false",
            "RANDOM_TOKEN": "false",  # ties of the headroom pick go round-robin: the first pick is acc-usage-a
            "POOL_RELOAD_SECONDS": str(RELOAD_SECONDS),
        }
        manage(env, "shell", "-c", SETUP)
        with two_nodes(env) as (a, b):
            yield a, b, env


def ask(node: Gateway) -> httpx.Response:
    body = {"model": "gpt-5.5", "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(
        node.url + "/v1/chat/completions", json=body, headers={"Authorization": "Bearer test-code"}, timeout=30
    )


def sql(env: dict[str, str], query: str) -> list[tuple]:
    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
        cursor = conn.execute(query)
        return cursor.fetchall() if cursor.description else []


def test_a_used_up_plan_is_skipped_everywhere_and_the_earliest_reset_is_retry_after(nodes, fake_codex, monkeypatch):
    a, b, env = nodes
    assert ask(a).status_code == 200  # acc-usage-a: 429 usage_limit_reached (resets in 1 h); acc-ok-b answers
    assert ask(b).status_code == 200  # within milliseconds: node B has not reloaded from the database
    assert fake_codex.calls == {"acc-usage-a": 1, "acc-ok-b": 2}

    monkeypatch.setattr(codex_server, "RESET_SECONDS", 7200)
    sql(env, SWAP)  # acc-ok-b out, acc-usage-c in, as an operator would in the admin
    time.sleep(RELOAD_SECONDS * 4)
    refused = ask(b)  # acc-usage-c: 429, resets in 2 h; then every account is used up
    assert refused.status_code == 429, refused.text
    assert 3500 < int(refused.headers["Retry-After"]) <= 3600  # acc-usage-a's reset, the earliest
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    again = ask(a)
    assert again.status_code == 429 and 3500 < int(again.headers["Retry-After"]) <= 3600
    assert fake_codex.calls == {"acc-usage-a": 1, "acc-ok-b": 2, "acc-usage-c": 1}  # no further upstream call

    text = re.sub(r"<[^>]+>", "", admin_list(b))
    assert re.search(r"acc-ok-b.*?5 h window 38 %, resets (?:\w{3} )?\d\d:\d\d · week 12 %", text, re.DOTALL), text
    assert re.search(r"acc-usage-c.*?5 h window 37 %, resets (?:\w{3} )?\d\d:\d\d · week 12 %", text, re.DOTALL), text
    assert sql(env, "SELECT DISTINCT quota::text FROM tokens_credential") == [("{}",)]  # with Redis: not on rows


def admin_list(node: Gateway) -> str:
    """The credential list as the operator gets it from node B, after logging in through the form."""
    with httpx.Client(base_url=node.url, timeout=30, follow_redirects=True) as browser:
        login = browser.get("/admin/login/", params={"next": "/admin/tokens/credential/"})
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text)[1]
        form = {"username": "quota-admin", "password": PASSWORD, "csrfmiddlewaretoken": token}
        listed = browser.post(str(login.url), data={**form, "next": "/admin/tokens/credential/"})
        assert listed.status_code == 200 and "column-plan_quota" in listed.text, listed.text[-2000:]
        return listed.text
