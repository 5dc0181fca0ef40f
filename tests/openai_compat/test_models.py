"""Model discovery: an `openai` key without a model list serves what its upstream's `GET /models` lists,
and `/v1/models` shows it (with `created`), through the real gateway, SDK and fake upstream."""

from __future__ import annotations

from datetime import timedelta

import openai
import pytest
from django.utils import timezone

from tests import sdk
from tests.factories import openai_key
from tests.fakes.openai_server import MODELS
from tests.gateway import settle
from tokens import discovery, tasks
from tokens.models import Credential, Kind

pytestmark = pytest.mark.django_db(transaction=True)
CREATED = {m["id"]: m.get("created", 0) for m in MODELS}
MESSAGES = [{"role": "user", "content": "Say hello"}]


def client(gateway) -> openai.OpenAI:
    return sdk.client(gateway.url)


def unlisted_key(fake_openai, api_key: str) -> Credential:
    """An `openai` key imported without a model list."""
    return Credential.objects.create(kind=Kind.OPENAI, base_url=fake_openai.url + "/v1", api_key=api_key)


def listed(gateway) -> dict[str, int]:
    return {m.id: m.created for m in client(gateway).models.list().data}


def test_a_key_without_a_list_shows_and_serves_what_its_upstream_lists(gateway, fake_openai, eager):
    key = unlisted_key(fake_openai, "sk-ok-discover")
    settle()
    assert listed(gateway) == {}  # not fetched yet: any name is served, none can be listed

    tasks.refresh_due()  # the pool's periodic pass (and the worker's start-up pass)
    settle()
    assert listed(gateway) == CREATED
    assert client(gateway).models.retrieve("fake-model-mini").created == 1710000000
    assert client(gateway).models.retrieve("fake-model-undated").created == 0
    reply = client(gateway).chat.completions.create(model="fake-model-mini", messages=MESSAGES)
    assert reply.choices[0].message.content.startswith("Hello from")

    with pytest.raises(openai.NotFoundError) as err:  # now the pool knows what the key serves
        client(gateway).chat.completions.create(model="not-on-this-upstream", messages=MESSAGES)
    assert err.value.body["code"] == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        client(gateway).models.retrieve("not-on-this-upstream")
    key.refresh_from_db()
    assert key.models_fetched_at is not None and key.discovered_models == CREATED


def test_an_operator_list_wins_and_gets_the_upstream_created(gateway, fake_openai):
    key = openai_key(fake_openai.url + "/v1", "sk-ok-listed", ["fake-model", "house-alias"])
    assert discovery.fetch_models(key.pk).ok
    settle()
    assert listed(gateway) == {"fake-model": 1700000000, "house-alias": 0}


def test_the_pass_fetches_only_missing_or_old_lists(fake_openai, eager):
    fresh, old = unlisted_key(fake_openai, "sk-ok-fresh"), unlisted_key(fake_openai, "sk-ok-old")
    Credential.objects.filter(pk=fresh.pk).update(models_fetched_at=timezone.now())
    Credential.objects.filter(pk=old.pk).update(models_fetched_at=timezone.now() - timedelta(hours=2))
    tasks.refresh_due()
    assert dict(fake_openai.model_lists) == {"sk-ok-old": 1}


def test_a_failed_fetch_keeps_the_last_list_and_says_why(fake_openai):
    key = unlisted_key(fake_openai, "sk-401-discover")
    Credential.objects.filter(pk=key.pk).update(discovered_models={"kept": 1})
    fetched = discovery.fetch_models(key.pk)
    assert (fetched.ok, fetched.detail) == (False, "GET /models answered HTTP 401")
    key.refresh_from_db()
    assert key.discovered_models == {"kept": 1} and key.models_fetched_at is None
    assert key.last_error == "fetch models failed: GET /models answered HTTP 401"  # the admin's list says why
    assert not discovery.fetch_models(Credential.objects.create(kind=Kind.CHATGPT, access_token="at-x").pk).ok


@pytest.mark.parametrize(
    ("doc", "found"),
    [
        ({"data": [{"id": "a", "created": 5}, {"id": "b", "created": "x"}, {"id": ""}, {"x": 1}]}, {"a": 5, "b": 0}),
        ({"data": ["c", None, {"id": 3}]}, {}),
        ({"data": [{"id": "x" * 201}, {"id": "t", "created": True}]}, {"t": 0}),
    ],
)
def test_parse_models_takes_only_usable_entries(doc: dict, found: dict[str, int]):
    assert discovery.parse_models(doc) == found


@pytest.mark.parametrize("doc", [[], {"data": {}}, {"error": "nope"}])
def test_parse_models_refuses_what_is_no_model_list(doc: object):
    with pytest.raises(discovery.DiscoveryFailed):
        discovery.parse_models(doc)
