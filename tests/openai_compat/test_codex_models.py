"""`/v1/models` over Codex accounts: `CODEX_MODELS` and their `MODEL_MAP` aliases are listed while a codex
account is usable, and an alias is served by the Codex model it names (real gateway, SDK, fake backend)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest

from tests import sdk
from tests.factories import codex_account
from tests.fakes.codex_server import ANSWER
from tests.gateway import Gateway, settle
from tokens.models import Credential, Status

pytestmark = pytest.mark.django_db(transaction=True)
CODEX_MODELS = ["gpt-5.4", "gpt-5.3-codex-spark"]
# `house-coder` aliases a Codex model; `house-web` a ChatGPT slug, which a Codex account does not serve.
MODEL_MAP = {"house-coder": "gpt-5.3-codex-spark", "house-web": "gpt-4o"}
MESSAGES = [{"role": "user", "content": "Say hello"}]


@pytest.fixture(scope="module")
def codex_gateway(gateway_env: dict[str, str]) -> Iterator[Gateway]:
    env = {**gateway_env, "CODEX_MODELS": ",".join(CODEX_MODELS), "MODEL_MAP": json.dumps(MODEL_MAP)}
    server = Gateway(env).start()
    yield server
    server.stop()


def client(gateway: Gateway) -> openai.OpenAI:
    return sdk.client(gateway.url)


def listed(gateway: Gateway) -> dict[str, int]:
    return {m.id: m.created for m in client(gateway).models.list().data}


def set_status(account: Credential, status: Status) -> None:
    account.status = status
    account.save()  # bumps `updated_at`, which the pool watches
    settle()


def test_the_codex_models_and_their_aliases_are_listed_while_a_codex_account_is_usable(codex_gateway):
    account = codex_account(account_id="acc-ok-models")
    set_status(account, Status.INVALID)
    assert listed(codex_gateway) == {}  # an account that cannot be used lists nothing

    set_status(account, Status.ACTIVE)
    assert listed(codex_gateway) == dict.fromkeys(sorted([*CODEX_MODELS, "house-coder"]), 0)
    alias = client(codex_gateway).models.retrieve("house-coder")
    assert (alias.id, alias.object, alias.created) == ("house-coder", "model", 0)
    for name in ("house-web", "gpt-4o"):  # ChatGPT names: no ChatGPT account here
        with pytest.raises(openai.NotFoundError) as err:
            client(codex_gateway).models.retrieve(name)
        assert err.value.body["code"] == "model_not_found"


def test_an_alias_is_answered_by_the_codex_model_it_names(codex_gateway, fake_codex):
    codex_account(account_id="acc-ok-alias")
    settle()
    reply = client(codex_gateway).chat.completions.create(model="house-coder", messages=MESSAGES)
    assert reply.choices[0].message.content == ANSWER and reply.model == "house-coder"
    reply = client(codex_gateway).chat.completions.create(model="gpt-5.4", messages=MESSAGES)
    assert reply.choices[0].message.content == ANSWER
    assert [r["body"]["model"] for r in fake_codex.requests] == ["gpt-5.3-codex-spark", "gpt-5.4"]
