"""Reasoning goes to `reasoning_content`, or inline as <think>…</think> when REASONING_INLINE asks for it."""

from __future__ import annotations

import orjson
import pytest

from tests.factories import openai_key
from tests.middle.client import call, loaded
from tests.spec import sse_data

BODY = {"model": "fake-model", "messages": [{"role": "user", "content": "think first"}]}


def ask(run, stream: bool) -> tuple[str, str]:
    """The answer's content and reasoning, whole or gathered from the chunks."""

    async def go() -> bytes:
        await loaded()
        reply, raw = await call("/v1/chat/completions", {**BODY, "stream": stream})
        assert reply.status == 200, raw
        return raw

    raw = run(go())
    if not stream:
        message = orjson.loads(raw)["choices"][0]["message"]
        return message["content"], message.get("reasoning_content") or ""
    chunks = [orjson.loads(data) for data in sse_data(raw.decode()) if data != "[DONE]"]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    return "".join(d.get("content") or "" for d in deltas), "".join(d.get("reasoning_content") or "" for d in deltas)


@pytest.mark.parametrize("stream", [False, True])
def test_reasoning_has_its_own_field(run, fake_openai, stream):
    openai_key(fake_openai.url + "/v1", "sk-rich-1")
    content, reasoning = ask(run, stream)
    assert reasoning and "<think>" not in content and reasoning not in content


@pytest.mark.parametrize("stream", [False, True])
def test_reasoning_inline_when_asked(run, settings, fake_openai, stream):
    settings.REASONING_INLINE = True
    openai_key(fake_openai.url + "/v1", "sk-rich-2")
    content, reasoning = ask(run, stream)
    assert not reasoning
    assert content.startswith("<think>\n") and content.count("</think>") == 1
    assert content.split("</think>", 1)[1].strip()
