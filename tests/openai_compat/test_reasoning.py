"""Reasoning goes to `reasoning_content`, or inline as <think>…</think> when REASONING_INLINE asks for it."""

from __future__ import annotations

import openai
import pytest

from tests.factories import openai_key
from tests.gateway import Gateway, settle

pytestmark = pytest.mark.django_db(transaction=True)
MESSAGES = [{"role": "user", "content": "think first"}]


@pytest.fixture(scope="module")
def inline(gateway_env):
    server = Gateway({**gateway_env, "REASONING_INLINE": "true"}).start()
    yield server
    server.stop()


def ask(gateway, stream: bool) -> tuple[str, str]:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="test-code", max_retries=0)
    reply = client.chat.completions.create(model="fake-model", messages=MESSAGES, stream=stream)
    if not stream:
        message = reply.choices[0].message
        return message.content, getattr(message, "reasoning_content", None) or ""
    chunks = [c.choices[0].delta for c in reply if c.choices]
    return "".join(d.content or "" for d in chunks), "".join(
        getattr(d, "reasoning_content", None) or "" for d in chunks
    )


@pytest.mark.parametrize("stream", [False, True])
def test_reasoning_has_its_own_field(gateway, fake_openai, stream):
    openai_key(fake_openai.url + "/v1", "sk-rich-1")
    settle()
    content, reasoning = ask(gateway, stream)
    assert reasoning and "<think>" not in content and reasoning not in content


@pytest.mark.parametrize("stream", [False, True])
def test_reasoning_inline_when_asked(inline, fake_openai, stream):
    openai_key(fake_openai.url + "/v1", "sk-rich-2")
    settle()
    content, reasoning = ask(inline, stream)
    assert not reasoning
    assert content.startswith("<think>\n") and content.count("</think>") == 1
    assert content.split("</think>", 1)[1].strip()
