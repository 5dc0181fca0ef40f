"""A pool credential with an expired or refused access token is refreshed inline, then used; usage is counted."""

from __future__ import annotations

import time

import openai
import pytest

from tests import sdk
from tests.factories import chatgpt_account, openai_key
from tests.gateway import settle
from tokens.models import Credential, Status, Usage

pytestmark = pytest.mark.django_db(transaction=True)
MESSAGES = [{"role": "user", "content": "Say hi"}]


def client(gateway) -> openai.OpenAI:
    return sdk.client(gateway.url)


def test_refresh_token_only_credential_is_refreshed_on_first_use(gateway, fake_chatgpt, fake_oauth):
    cred = chatgpt_account("", refresh_token="rt-ok-ivan")
    settle()
    for _ in range(3):
        reply = client(gateway).chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert reply.choices[0].message.content
    assert sum(fake_oauth.calls.values()) == 1
    cred.refresh_from_db()
    assert cred.status == Status.ACTIVE and cred.access_token.startswith("eyJ")


def test_refused_token_is_refreshed_on_next_use(gateway, fake_chatgpt, fake_oauth):
    cred = chatgpt_account("at-401-judy", refresh_token="rt-ok-judy")
    settle()
    with pytest.raises(openai.APIStatusError):
        client(gateway).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    cred.refresh_from_db()
    assert cred.status == Status.NEEDS_REFRESH
    settle()
    reply = client(gateway).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert reply.choices[0].message.content
    assert sum(fake_oauth.calls.values()) == 1


def test_usage_is_counted_per_credential_and_model(gateway, fake_openai):
    cred = openai_key(fake_openai.url + "/v1", "sk-ok-usage", models=["fake-model", "other-model"])
    settle()
    for model in ("fake-model", "fake-model", "other-model"):
        client(gateway).chat.completions.create(model=model, messages=MESSAGES)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and Usage.objects.filter(credential=cred).count() < 2:
        time.sleep(0.05)
    time.sleep(0.2)
    rows = {u.model: u for u in Usage.objects.filter(credential=cred)}
    assert rows["fake-model"].requests == 2 and rows["other-model"].requests == 1
    assert rows["fake-model"].prompt_tokens > 0 and rows["fake-model"].completion_tokens > 0
    assert Credential.objects.get(pk=cred.pk).request_count == 3
