"""Chat Completions over the Codex backend: the real `openai` SDK, the real gateway, the fake Codex backend."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests import sdk
from tests.factories import codex_account
from tests.fakes.codex_server import ANSWER, ARGUMENTS, SUMMARY
from tests.gateway import settle
from tests.spec import assert_valid, assert_valid_sse, sse_data
from tokens.models import Credential

pytestmark = pytest.mark.django_db(transaction=True)
MODEL = "gpt-5.5"
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def client(gateway) -> openai.OpenAI:
    return sdk.client(gateway.url)


def post(gateway, **body) -> httpx.Response:
    body = {"model": MODEL, "messages": MESSAGES, **body}
    return httpx.post(
        gateway.url + "/v1/chat/completions", json=body, headers={"Authorization": "Bearer test-code"}, timeout=30
    )


def accounts(*ids: str) -> list[Credential]:
    made = [codex_account(account_id=i) for i in ids]
    settle()
    return made


def test_non_stream_sends_the_spec_body_and_answers(gateway, fake_codex):
    (account,) = accounts("acc-ok-plain")
    refused = {"temperature": 0.2, "top_p": 0.9, "max_tokens": 50, "presence_penalty": 0.1, "frequency_penalty": 0.1}
    raw = post(gateway, **refused)
    assert raw.status_code == 200, raw.text
    assert_valid("CreateChatCompletionResponse", raw.json())
    reply = client(gateway).chat.completions.create(model=MODEL, messages=MESSAGES, max_completion_tokens=9)
    assert reply.choices[0].message.content == ANSWER
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.prompt_tokens == 20 and reply.usage.completion_tokens == 12
    assert reply.usage.prompt_tokens_details.cached_tokens == 8
    assert reply.usage.completion_tokens_details.reasoning_tokens == 5

    sent = fake_codex.requests[0]
    headers = {k.lower(): v for k, v in sent["headers"].items()}
    assert headers["authorization"] == f"Bearer {account.access_token}"
    assert headers["chatgpt-account-id"] == "acc-ok-plain"
    assert headers["user-agent"].startswith("chat2api/") and headers["originator"] == "chat2api"
    body = sent["body"]
    assert body["store"] is False and body["stream"] is True and body["instructions"] == ""
    assert body["input"][0] == {
        "type": "message",
        "role": "developer",
        "content": [{"type": "input_text", "text": "Be brief."}],
    }
    assert not set(refused) & set(body) and "reasoning" not in body and body["include"] == []
    # one conversation, one cache key; another conversation, another key
    assert fake_codex.requests[1]["body"]["prompt_cache_key"] == body["prompt_cache_key"]
    post(gateway, messages=[{"role": "user", "content": "Something else"}])
    assert fake_codex.requests[2]["body"]["prompt_cache_key"] != body["prompt_cache_key"]


def test_stream_matches_spec(gateway, fake_codex):
    accounts("acc-ok-stream")
    raw = post(gateway, stream=True, stream_options={"include_usage": True})
    assert raw.status_code == 200
    assert_valid_sse(raw.text)
    stream = client(gateway).chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_reasoning_effort_gives_reasoning_content(gateway, fake_codex):
    accounts("acc-ok-think")
    reply = post(gateway, reasoning_effort="high").json()
    assert reply["choices"][0]["message"]["reasoning_content"] == "\n\n".join(SUMMARY)
    assert reply["choices"][0]["message"]["content"] == ANSWER
    body = fake_codex.requests[0]["body"]
    assert body["reasoning"] == {"effort": "high", "summary": "auto"}
    assert body["include"] == ["reasoning.encrypted_content"]
    raw = post(gateway, reasoning_effort="low", stream=True)
    assert_valid_sse(raw.text)
    chunks = [json.loads(data) for data in sse_data(raw.text) if data != "[DONE]"]
    text = "".join(c["choices"][0]["delta"].get("reasoning_content", "") for c in chunks if c["choices"])
    assert text == "\n\n".join(SUMMARY)


def tool_round(gateway, stream: bool) -> tuple[str, list[dict]]:
    """Ask, get the tool call, answer it, get the final text; the fake refuses unpaired calls and outputs."""
    sdk = client(gateway)
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    first = sdk.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER], stream=stream)
    if stream:
        calls: dict[int, dict] = {}
        finish = None
        for chunk in first:
            for part in chunk.choices[0].delta.tool_calls or () if chunk.choices else ():
                call = calls.setdefault(part.index, {"id": "", "name": "", "arguments": ""})
                call["id"] += part.id or ""
                call["name"] += part.function.name or ""
                call["arguments"] += part.function.arguments or ""
            finish = chunk.choices[0].finish_reason if chunk.choices else finish
        found = list(calls.values())
    else:
        finish = first.choices[0].finish_reason
        found = [
            {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
            for c in first.choices[0].message.tool_calls
        ]
    assert finish == "tool_calls"
    assert found == [{"id": "call_get_weather_1", "name": "get_weather", "arguments": "".join(ARGUMENTS)}]
    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": found[0]["id"],
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": found[0]["arguments"]},
                }
            ],
        },
        {"role": "tool", "tool_call_id": found[0]["id"], "content": "18 C and sunny"},
    ]
    second = sdk.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER], stream=stream)
    text = (
        "".join(c.choices[0].delta.content or "" for c in second if c.choices)
        if stream
        else second.choices[0].message.content
    )
    return text, messages


@pytest.mark.parametrize("stream", [False, True])
def test_tool_calling_round_trip(gateway, fake_codex, stream):
    accounts("acc-ok-tools")
    text, _ = tool_round(gateway, stream)
    assert text == "The tool said: 18 C and sunny"
    items = fake_codex.requests[-1]["body"]["input"]
    assert [i.get("type") for i in items] == ["message", "function_call", "function_call_output"]
    assert items[1] == {
        "type": "function_call",
        "call_id": "call_get_weather_1",
        "name": "get_weather",
        "arguments": "".join(ARGUMENTS),
    }
    assert fake_codex.requests[0]["body"]["tools"] == [{"type": "function", **WEATHER["function"]}]
    raw = post(gateway, messages=[{"role": "user", "content": "Weather?"}], tools=[WEATHER], stream=True)
    assert_valid_sse(raw.text)
