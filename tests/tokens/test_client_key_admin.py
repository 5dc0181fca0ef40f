"""The client key admin: a new key is shown once, on the page that answers the add form, and never again."""

from __future__ import annotations

import asyncio
import re

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse

from tokens.clients import create_key, lookup
from tokens.models import ClientKey

CHANGELIST = reverse("admin:tokens_clientkey_changelist")
ADD = reverse("admin:tokens_clientkey_add")
KEY = re.compile(r"sk-c2a-[\w-]{43}")
FORM = {
    "name": "alice",
    "enabled": "on",
    "allowed_models": "gpt-5*, o3",
    "rpm": "60",
    "tpm": "100000",
    "max_concurrency": "5",
    "daily_tokens": "1000000",
    "monthly_tokens": "0",
}

pytestmark = pytest.mark.django_db(transaction=True)  # `lookup` reads in a worker thread


def test_adding_a_key_shows_it_once(admin_client: Client) -> None:
    response = admin_client.post(ADD, FORM)
    assert response.status_code == 200  # the page itself, not a redirect: the key is in no URL or message
    assert "no-store" in response["Cache-Control"]
    page = response.content.decode()
    assert "will not be shown again" in page
    (key,) = set(KEY.findall(page))
    policy = asyncio.run(lookup(key))
    assert policy is not None and (policy.name, policy.allowed_models, policy.rpm) == ("alice", ("gpt-5*", "o3"), 60)
    row = ClientKey.objects.get()
    for url in (CHANGELIST, reverse("admin:tokens_clientkey_change", args=[row.pk])):
        html = admin_client.get(url).content.decode()
        assert key not in html and key[12:] not in html and row.digest not in html
    history = " ".join(f"{e.object_repr} {e.change_message}" for e in LogEntry.objects.all())
    assert key[12:] not in history and row.digest not in history
    assert not list(response.wsgi_request._messages)


def test_the_list_reads_at_a_glance(admin_client: Client) -> None:
    row, key = create_key("alice", allowed_models=["gpt-5*", "o3"], rpm=60, tpm=100_000, max_concurrency=5)
    create_key("bob", daily_tokens=1_000_000)
    html = admin_client.get(CHANGELIST).content.decode()
    assert f"{row.prefix}…" in html and key[12:] not in html and row.digest not in html
    assert "gpt-5*, o3" in html and ">all<" in html
    assert "60 req/min · 100k tok/min · 5 at once" in html and "1M/day" in html
    assert f'{reverse("admin:tokens_dailyusage_changelist")}?key_id={row.pk}"' in html


def test_editing_changes_the_limits_never_the_key(admin_client: Client) -> None:
    row, key = create_key("alice", rpm=60)
    response = admin_client.post(reverse("admin:tokens_clientkey_change", args=[row.pk]), {**FORM, "rpm": "5"})
    assert response.status_code == 302
    edited = ClientKey.objects.get()
    assert (edited.rpm, edited.allowed_models, edited.digest) == (5, ["gpt-5*", "o3"], row.digest)
    assert asyncio.run(lookup(key)).rpm in (5, 60)  # the same key still works (this process may have it cached)


def test_bad_globs_are_refused_by_the_form(admin_client: Client) -> None:
    long = "x" * 201
    response = admin_client.post(ADD, {**FORM, "allowed_models": f"gpt-5*, {long}"})
    assert response.status_code == 200 and "Not a model name or glob" in response.content.decode()
    assert not ClientKey.objects.exists()


def test_disable_and_enable_actions(admin_client: Client, settings) -> None:
    settings.CLIENT_KEY_CACHE_SECONDS = 0
    row, key = create_key("alice")

    def act(action: str) -> str:
        data = {"action": action, "_selected_action": [row.pk]}
        return admin_client.post(CHANGELIST, data, follow=True).content.decode()

    assert "Disabled 1 client key(s)." in act("disable_selected")
    assert asyncio.run(lookup(key)) is None
    assert "Enabled 1 client key(s)." in act("enable_selected")
    assert asyncio.run(lookup(key)) is not None
