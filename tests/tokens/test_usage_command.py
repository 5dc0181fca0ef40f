"""`manage.py usage`: the daily roll-ups per day, key and model as a table or JSON, checked against requests
recorded and flushed the way the gateway does it."""

from __future__ import annotations

import io
import json
import time
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command

from tests.tokens.test_usage import entry
from tokens import usage
from tokens.models import ClientKey, Outcome

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_usage")]


def client_key(name: str) -> ClientKey:
    return ClientKey.objects.create(name=name, prefix=f"c2a-{name[:4]}", digest=f"digest-of-{name}")


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("usage", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def recorded() -> dict[str, int]:
    """Two days of traffic: alice on two models, bob, a code holder, and a key deleted since."""
    usage._buffer.clear()
    alice, bob, gone = client_key("alice"), client_key("bob"), client_key("gone")
    now, yesterday = time.time(), time.time() - 86400
    usage.record(entry(when=yesterday, key_id=alice.pk, model="gpt-5", prompt_tokens=100, completion_tokens=40))
    usage.record(entry(when=now, key_id=alice.pk, model="gpt-5", prompt_tokens=7, completion_tokens=3))
    usage.record(entry(when=now, key_id=alice.pk, model="gpt-5", outcome=Outcome.UPSTREAM_ERROR, completion_tokens=0))
    usage.record(entry(when=now, key_id=alice.pk, model="o3", reasoning_tokens=50, cached_tokens=0))
    usage.record(entry(when=now, key_id=bob.pk, model="gpt-5", prompt_tokens=1, completion_tokens=1))
    usage.record(entry(when=now, key_id=None, credential_id=None, model="gpt-5"))
    usage.record(entry(when=now, key_id=gone.pk, model="gpt-5"))
    usage.flush_now()
    ids = {"alice": alice.pk, "bob": bob.pk, "gone": gone.pk}
    gone.delete()
    return ids


def test_json_rows_match_what_was_recorded(recorded):
    today, yesterday = usage.today().isoformat(), (usage.today() - timedelta(days=1)).isoformat()
    alice = recorded["alice"]
    rows = json.loads(run("--json"))
    assert rows[0] == {
        **{"day": yesterday, "key": "alice", "key_id": alice, "model": "gpt-5", "requests": 1, "errors": 0},
        **{"prompt_tokens": 100, "completion_tokens": 40, "cached_tokens": 2, "reasoning_tokens": 1},
        "total_tokens": 140,
    }
    assert [(r["day"], r["key"], r["model"], r["requests"], r["errors"], r["total_tokens"]) for r in rows[1:]] == [
        (today, "(AUTHORIZATION code)", "gpt-5", 1, 0, 15),
        (today, "alice", "gpt-5", 2, 1, 20),
        (today, "alice", "o3", 1, 0, 15),
        (today, "bob", "gpt-5", 1, 0, 2),
        (today, f"#{recorded['gone']} (deleted)", "gpt-5", 1, 0, 15),
    ]
    assert rows[2]["prompt_tokens"] == 17 and rows[2]["cached_tokens"] == 4 and rows[3]["reasoning_tokens"] == 50


def test_the_table_has_a_line_per_row_and_a_total(recorded):
    lines = run().splitlines()
    assert lines[0].split() == [
        *("day", "key", "model", "requests", "errors", "prompt", "completion"),
        *("cached", "reasoning", "total"),
    ]
    assert len(lines) == 1 + 6 + 1
    assert lines[3].split()[1:] == ["alice", "gpt-5", "2", "1", "17", "3", "4", "2", "20"]
    assert lines[-1].split() == ["total", "7", "1", "148", "59", "12", "56", "207"]


def test_key_and_since_filter(recorded):
    rows = json.loads(run("--json", "--key", "alice", "--since", usage.today().isoformat()))
    assert [(r["model"], r["requests"]) for r in rows] == [("gpt-5", 2), ("o3", 1)]
    assert run("--key", "bob").splitlines()[-1].split() == ["total", "1", "0", "1", "1", "2", "1", "2"]


def test_an_unknown_key_is_an_error(recorded):
    with pytest.raises(CommandError, match="No client key named 'nobody'"):
        run("--key", "nobody")
