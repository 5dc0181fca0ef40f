"""Client keys: only a digest is stored, `lookup` finds enabled, unexpired keys (and caches what it read), and
`manage.py create_client_key` prints the key once."""

from __future__ import annotations

import asyncio
import hashlib
import io
import time
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.utils import timezone

from tokens.clients import KeyPolicy, _Cache, create_key, describe_limits, lookup, parse_globs
from tokens.models import ClientKey

pytestmark = pytest.mark.django_db(transaction=True)  # `lookup` reads in a worker thread


def test_a_key_is_stored_as_its_digest_only() -> None:
    row, key = create_key("alice", rpm=60, allowed_models=["gpt-5*"])
    assert key.startswith("sk-c2a-") and len(key) == 7 + 43
    assert row.prefix == key[:12]
    assert row.digest == hashlib.sha256(key.encode()).hexdigest()
    stored = ClientKey.objects.filter(pk=row.pk).values().get()
    assert not any(key in str(value) for value in stored.values())
    assert create_key("bob")[1] != key


@pytest.mark.parametrize(
    ("name", "limits", "field"),
    [
        ("  ", {}, "name"),
        ("alice", {}, "name"),  # taken
        ("carol", {"rpm": -1}, "rpm"),
        ("carol", {"allowed_models": ["gpt 5"]}, "allowed_models"),
        ("carol", {"allowed_models": "gpt-5"}, "allowed_models"),
    ],
)
def test_create_key_validates(name: str, limits: dict, field: str) -> None:
    create_key("alice")
    with pytest.raises(ValidationError) as caught:
        create_key(name, **limits)
    assert field in caught.value.message_dict
    assert ClientKey.objects.count() == 1


def test_lookup_finds_an_enabled_key_with_its_limits() -> None:
    row, key = create_key("alice", allowed_models=["gpt-5*", "o3"], rpm=60, tpm=1000, daily_tokens=10**6)
    policy = asyncio.run(lookup(key))
    assert policy == KeyPolicy(row.pk, "alice", ("gpt-5*", "o3"), rpm=60, tpm=1000, daily_tokens=10**6)
    assert policy.allows("gpt-5-mini") and policy.allows("o3")
    assert not policy.allows("o3-mini") and not policy.allows("GPT-5")
    assert KeyPolicy(1, "any").allows("whatever")


@pytest.mark.parametrize("fields", [{"enabled": False}, {"expires_at": timezone.now() - timedelta(seconds=1)}])
def test_lookup_refuses_disabled_and_expired_keys(fields: dict) -> None:
    _, key = create_key("alice", **fields)
    assert asyncio.run(lookup(key)) is None


def test_lookup_refuses_unknown_keys() -> None:
    create_key("alice")
    assert asyncio.run(lookup("sk-c2a-" + "A" * 43)) is None
    assert asyncio.run(lookup("sk-proj-not-a-client-key")) is None


def test_expiry_is_checked_on_every_call_even_when_cached(settings) -> None:
    settings.CLIENT_KEY_CACHE_SECONDS = 60
    _, key = create_key("alice", expires_at=timezone.now() + timedelta(seconds=0.5))
    assert asyncio.run(lookup(key)) is not None
    time.sleep(0.6)
    assert asyncio.run(lookup(key)) is None


def test_lookup_trusts_what_it_read_for_the_cache_seconds(settings) -> None:
    settings.CLIENT_KEY_CACHE_SECONDS = 0.5
    row, key = create_key("alice")
    assert asyncio.run(lookup(key)) is not None
    ClientKey.objects.filter(pk=row.pk).update(enabled=False)
    assert asyncio.run(lookup(key)) is not None  # not read again yet
    time.sleep(0.6)
    assert asyncio.run(lookup(key)) is None


def test_the_cache_is_bounded() -> None:
    cache = _Cache(3)
    for n in range(5):
        cache.put(f"d{n}", None, 1.0)
    assert list(cache.entries) == ["d2", "d3", "d4"]


def test_globs_and_limits_read_as_an_operator_writes_them() -> None:
    assert parse_globs(" gpt-5*, o3  o3 ") == ["gpt-5*", "o3"]
    assert parse_globs("") == []
    row = ClientKey(rpm=60, tpm=100_000, max_concurrency=5, daily_tokens=1_000_000, monthly_tokens=2_500_000)
    assert describe_limits(row) == "60 req/min · 100k tok/min · 5 at once · 1M/day · 2.5M/month"
    assert describe_limits(ClientKey()) == "unlimited"


# -- manage.py create_client_key ------------------------------------------------------------------------
def create(*args: str) -> list[str]:
    out = io.StringIO()
    call_command("create_client_key", *args, stdout=out)
    return out.getvalue().splitlines()


def test_the_command_prints_the_key_alone_on_its_last_line() -> None:
    lines = create(
        "alice", "--models", "gpt-5*,o3", "--rpm", "60", "--daily-tokens", "1000000", "--expires", "2999-01-31"
    )
    key = lines[-1]
    policy = asyncio.run(lookup(key))
    assert policy is not None and policy.name == "alice"
    assert (policy.allowed_models, policy.rpm, policy.daily_tokens) == (("gpt-5*", "o3"), 60, 1_000_000)
    row = ClientKey.objects.get()
    assert timezone.localtime(row.expires_at).isoformat().startswith("2999-01-31T00:00:00")
    assert "60 req/min · 1M/day" in "\n".join(lines[:-1]) and key not in "\n".join(lines[:-1])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["alice"], "already exists"),
        (["bob", "--expires", "next tuesday"], "not an ISO date"),
        (["bob", "--expires", "2001-01-01"], "already past"),
        (["bob", "--rpm", "-5", "--monthly-tokens", "-1"], "--rpm, --monthly-tokens: must be 0"),
        (["bob", "--models", "gpt-5*," + "x" * 201], "Not a model name or glob"),
        (["bob", "--max-concurrency", "x"], "invalid int value"),
    ],
)
def test_the_command_reports_bad_arguments(args: list[str], message: str) -> None:
    create_key("alice")
    with pytest.raises(CommandError, match=message):
        create(*args)
    assert ClientKey.objects.count() == 1
