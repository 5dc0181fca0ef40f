"""The real `openai` SDK against the real gateway, over an OpenAI-compatible fake upstream."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

from tests import sdk
from tests.factories import openai_key
from tests.gateway import settle
from tests.spec import assert_valid, assert_valid_sse

pytestmark = pytest.mark.django_db(transaction=True)
MESSAGES = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def pool_key(fake_openai, gateway):
    cred = openai_key(fake_openai.url + "/v1", "sk-ok-1")
    settle()
    return cred


def client(gateway, key: str = "test-code") -> openai.OpenAI:
    return sdk.client(gateway.url, key)


def test_non_stream_reply_matches_spec(gateway, pool_key):
    raw = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "fake-model", "messages": MESSAGES},
        headers={"Authorization": "Bearer test-code"},
    )
    assert raw.status_code == 200, raw.text
    assert_valid("CreateChatCompletionResponse", raw.json())
    reply = client(gateway).chat.completions.create(model="fake-model", messages=MESSAGES)
    assert reply.choices[0].message.content == "Hello from the fake upstream, one word at a time."
    assert reply.model == "fake-model"
    assert reply.usage.total_tokens > 0


@pytest.mark.parametrize("include_usage", [False, True])
def test_stream_matches_spec(gateway, pool_key, include_usage):
    body = {"model": "fake-model", "messages": MESSAGES, "stream": True}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    raw = httpx.post(gateway.url + "/v1/chat/completions", json=body, headers={"Authorization": "Bearer test-code"})
    assert raw.status_code == 200
    assert "event:" not in raw.text
    assert_valid_sse(raw.text)
    assert raw.text.endswith("data: [DONE]\n\n")
    usage_chunks = [line for line in raw.text.splitlines() if '"choices":[]' in line]
    assert len(usage_chunks) == (1 if include_usage else 0)

    stream = client(gateway).chat.completions.create(model="fake-model", messages=MESSAGES, stream=True)
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith("Hello from")
    assert len({c.id for c in chunks}) == 1


def test_async_client_stream_and_not(gateway, pool_key):
    async def run() -> tuple[str, str]:
        aclient = sdk.async_client(gateway.url)
        reply = await aclient.chat.completions.create(model="fake-model", messages=MESSAGES)
        parts = []
        async for chunk in await aclient.chat.completions.create(model="fake-model", messages=MESSAGES, stream=True):
            if chunk.choices:
                parts.append(chunk.choices[0].delta.content or "")
        return reply.choices[0].message.content, "".join(parts)

    whole, streamed = asyncio.run(run())
    assert whole == streamed


def test_models_lists_pool_models(gateway, pool_key):
    models = client(gateway).models.list()
    assert "fake-model" in [m.id for m in models.data]
    assert client(gateway).models.retrieve("fake-model").id == "fake-model"
    with pytest.raises(openai.NotFoundError) as err:
        client(gateway).models.retrieve("no-such-model")
    assert err.value.body["code"] == "model_not_found"
