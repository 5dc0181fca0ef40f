"""What a Codex failure does to the account and the client: the mappings of shared/codex-protocol.md A4."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from tests import sdk
from tests.factories import codex_account
from tests.fakes.codex_server import ANSWER, RESET_SECONDS, WORDS
from tests.gateway import settle
from tests.spec import sse_data
from tokens.models import Credential, Status

pytestmark = pytest.mark.django_db(transaction=True)
MODEL = "gpt-5.5"
MESSAGES = [{"role": "user", "content": "Say hello"}]


def client(gateway) -> openai.OpenAI:
    return sdk.client(gateway.url)


def accounts(*ids: str) -> list[Credential]:
    made = [codex_account(account_id=i) for i in ids]
    settle()
    return made


def ask_until_tried(gateway, fake_codex, account: str, stream: bool = False) -> None:
    """Ask until the pick (random) has tried `account`; every answer must come from the healthy one."""
    for _ in range(12):
        reply = client(gateway).chat.completions.create(model=MODEL, messages=MESSAGES, stream=stream)
        text = "".join(c.choices[0].delta.content or "" for c in reply if c.choices) if stream else None
        assert (text if stream else reply.choices[0].message.content) == ANSWER
        if fake_codex.calls[account]:
            return
    pytest.fail(f"{account} was never tried")


@pytest.mark.parametrize("account", ["acc-usage-at", "acc-usagein-1"])
def test_usage_limit_cools_the_whole_account_until_it_resets(gateway, fake_codex, account):
    limited, _ = accounts(account, "acc-ok-peer")
    ask_until_tried(gateway, fake_codex, account)
    limited.refresh_from_db()
    assert limited.status == Status.COOLING and "usage limit" in limited.last_error
    left = limited.cooldown_until.timestamp() - time.time()
    assert RESET_SECONDS - 120 < left <= RESET_SECONDS + 1
    assert fake_codex.calls[account] == 1  # cooling: never tried again


def test_every_account_used_up_is_a_429_with_the_reset_as_retry_after(gateway, fake_codex):
    accounts("acc-usage-only")
    for _ in range(2):  # the account's 429, then the pool's own (no upstream call)
        with pytest.raises(openai.RateLimitError) as err:
            client(gateway).chat.completions.create(model=MODEL, messages=MESSAGES)
        assert RESET_SECONDS - 120 < int(err.value.response.headers["retry-after"]) <= RESET_SECONDS + 1
    assert fake_codex.calls["acc-usage-only"] == 1


def test_plan_without_codex_is_invalid_with_the_reason(gateway, fake_codex):
    excluded, _ = accounts("acc-excluded-1", "acc-ok-peer2")
    ask_until_tried(gateway, fake_codex, "acc-excluded-1", stream=True)
    excluded.refresh_from_db()
    assert excluded.status == Status.INVALID and "does not include Codex" in excluded.last_error


@pytest.mark.parametrize("account", ["acc-cf-1", "acc-busy-1", "acc-429-1", "acc-401-1"])
def test_transient_and_auth_failures_go_to_the_next_account(gateway, fake_codex, account):
    failing, _ = accounts(account, "acc-ok-peer3")
    ask_until_tried(gateway, fake_codex, account)
    failing.refresh_from_db()
    if account == "acc-429-1":
        assert failing.status == Status.COOLING and 0 < failing.cooldown_until.timestamp() - time.time() <= 31


def test_challenge_page_is_named_to_the_client(gateway, fake_codex):
    accounts("acc-cf-alone")
    with pytest.raises(openai.APIStatusError) as err:
        client(gateway).chat.completions.create(model=MODEL, messages=MESSAGES)
    assert err.value.status_code == 502 and err.value.body["code"] == "upstream_challenge_required"
    assert "<html" not in err.value.body["message"].lower()


def test_bad_request_is_passed_through_and_not_retried(gateway, fake_codex):
    accounts("acc-bad-1", "acc-bad-2")
    with pytest.raises(openai.BadRequestError) as err:
        client(gateway).chat.completions.create(model=MODEL, messages=MESSAGES)
    assert "not supported when using Codex" in err.value.body["message"]
    assert err.value.body["type"] == "invalid_request_error"
    assert fake_codex.calls["acc-bad-1"] + fake_codex.calls["acc-bad-2"] == 1


def test_stream_cut_before_completed(gateway, fake_codex):
    accounts("acc-cut-1")
    raw = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": MODEL, "messages": MESSAGES, "stream": True},
        headers={"Authorization": "Bearer test-code"},
        timeout=30,
    )
    events = [json.loads(d) for d in sse_data(raw.text) if d != "[DONE]"]
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e.get("choices"))
    assert text == "".join(WORDS[:2])
    assert "response.completed" in events[-1]["error"]["message"]
    assert not any(c["finish_reason"] for e in events for c in e.get("choices") or ())
    assert "[DONE]" not in raw.text
    # not streamed: the whole answer is awaited, so the next account answers instead
    accounts("acc-ok-after-cut")
    fake_codex.reset()
    ask_until_tried(gateway, fake_codex, "acc-cut-1")


@pytest.mark.parametrize(("account", "finish"), [("acc-long-1", "length"), ("acc-filter-1", "content_filter")])
def test_incomplete_answers_finish_with_the_reason(gateway, fake_codex, account, finish):
    accounts(account)
    reply = client(gateway).chat.completions.create(model=MODEL, messages=MESSAGES)
    assert reply.choices[0].finish_reason == finish and reply.choices[0].message.content == ANSWER


def test_a_401_refreshes_once_and_a_401_right_after_the_refresh_needs_a_new_sign_in(gateway, fake_codex):
    refused, _ = accounts("acc-401-revoked", "acc-ok-peer5")
    for _ in range(24):  # random picks: ask until the revoked account was tried twice (a refresh in between)
        reply = client(gateway).chat.completions.create(model=MODEL, messages=MESSAGES)
        assert reply.choices[0].message.content == ANSWER  # the healthy account answers every time
        if fake_codex.calls["acc-401-revoked"] == 2:
            break
        settle()
    refused.refresh_from_db()
    assert fake_codex.calls["acc-401-revoked"] == 2
    assert refused.status == Status.INVALID and "signed in again" in refused.last_error
