"""Upstreams that speak `/responses` natively: codex and `openai` keys imported with `api=responses`.

The adapters run in-process against the real fake servers; the chat-tool tests go through the real gateway.
"""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest

from openai_compat.errors import APIError
from openai_compat.schema import ChatRequest
from openai_compat.upstreams.base import Action, Delta, UpstreamError
from openai_compat.upstreams.codex import Codex
from openai_compat.upstreams.openai import OpenAICompatible
from tests.factories import chatgpt_account, openai_key
from tests.fakes.codex_server import PIXEL, SUMMARY
from tests.gateway import settle
from tests.openai_compat.test_codex_upstream import WEATHER, tool_round
from tokens.importing import import_credentials
from tokens.models import Credential
from tokens.pool import PooledCredential

FLAT_WEATHER = {"type": "function", **WEATHER["function"]}
REFUSED = {"temperature": 0.2, "top_p": 0.9, "max_output_tokens": 50, "truncation": "auto", "metadata": {"a": "b"}}


def chat_request(native: dict) -> ChatRequest:
    """What the Responses front end hands the pipeline; the chat fields are only its translation."""
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    return ChatRequest(native["model"], messages, True, True, {"model": native["model"], "messages": messages}, native)


def run(upstream, cred: PooledCredential, native: dict) -> list[Delta]:
    async def collect() -> list[Delta]:
        return [d async for d in upstream.stream(cred, chat_request(native), native["model"])]

    return asyncio.run(collect())


def codex(fake_codex, account_id: str) -> PooledCredential:
    base = fake_codex.url + "/backend-api/codex"
    return PooledCredential(id=None, kind="codex", access_token="eyJ.fake.at", account_id=account_id, base_url=base)


def openai(fake_openai, key: str, wire_api: str = "responses") -> PooledCredential:
    return PooledCredential(id=None, kind="openai", base_url=fake_openai.url + "/v1", api_key=key, wire_api=wire_api)


def calls(deltas: list[Delta]) -> list[dict]:
    """The tool calls the deltas carry, their argument fragments joined."""
    found: dict[int, dict] = {}
    for part in (c for d in deltas for c in d.tool_calls or ()):
        call = found.setdefault(part["index"], {"id": part.get("id", ""), "name": "", "arguments": ""})
        call["name"] += part["function"].get("name", "")
        call["arguments"] += part["function"].get("arguments", "")
    return list(found.values())


def test_codex_native_body_keeps_only_what_the_backend_can_use(fake_codex):
    native = {
        "model": "gpt-5.5",
        "instructions": "Be kind.",
        "input": [
            {"type": "message", "id": "msg_sys", "role": "system", "content": [{"type": "input_text", "text": "Hi"}]},
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "reasoning", "id": "rs_plain", "summary": []},
            {"type": "reasoning", "id": "rs_enc", "summary": [], "encrypted_content": "gAAAA-old"},
            {"type": "item_reference", "id": "msg_old"},
            {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
            {"type": "function_call_output", "id": "fco_1", "call_id": "call_1", "output": "Sunny"},
        ],
        "tools": [FLAT_WEATHER, {"type": "custom", "name": "apply_patch"}, {"type": "web_search"}],
        "tool_choice": "auto",
        "reasoning": {"effort": "low", "summary": "auto"},
        "text": {"verbosity": "low"},
        "prompt_cache_key": "conversation-1",
        "user": "someone",
        **REFUSED,
    }
    deltas = run(Codex(), codex(fake_codex, "acc-ok-native"), native)
    body = fake_codex.requests[-1]["body"]
    assert not set(REFUSED) & set(body) and "user" not in body
    assert body["store"] is False and body["stream"] is True and body["instructions"] == "Be kind."
    assert body["include"] == ["reasoning.encrypted_content"] and body["reasoning"] == native["reasoning"]
    assert body["tools"] == [FLAT_WEATHER] and body["text"] == {"verbosity": "low"}
    assert body["prompt_cache_key"] == "conversation-1"
    items = body["input"]
    assert not any("id" in item for item in items)
    assert [i.get("type") for i in items] == ["message", None, "reasoning", "function_call", "function_call_output"]
    assert items[0]["role"] == "developer" and items[2]["encrypted_content"] == "gAAAA-old"
    assert "".join(d.content for d in deltas) == "The tool said: Sunny"
    assert "".join(d.reasoning for d in deltas) == "\n\n".join(SUMMARY)
    assert [d.encrypted_reasoning for d in deltas if d.encrypted_reasoning] == ["gAAAA-opaque"]
    assert deltas[-1].finish_reason == "stop" and deltas[-1].usage["prompt_tokens"] == 20


def test_codex_native_function_call_and_fetched_image(fake_codex, settings):
    url = fake_codex.url + "/pixel.png"
    image = {"type": "input_image", "image_url": url}
    native = {"model": "gpt-5.5", "input": [{"role": "user", "content": [image]}], "tools": [FLAT_WEATHER]}
    with pytest.raises(APIError) as err:  # a loopback address is refused by the safe fetcher
        run(Codex(), codex(fake_codex, "acc-ok-image"), native)
    assert err.value.status == 400 and err.value.param == "input[0].content[0].image_url"
    settings.FETCH_ALLOW_PRIVATE = True
    deltas = run(Codex(), codex(fake_codex, "acc-ok-image"), native)
    body = fake_codex.requests[-1]["body"]
    assert body["input"][0]["content"][0]["image_url"] == "data:image/png;base64," + base64.b64encode(PIXEL).decode()
    assert body["instructions"] == "" and body["include"] == [] and "reasoning" not in body
    assert calls(deltas) == [{"id": "call_get_weather_1", "name": "get_weather", "arguments": '{"city": "Paris"}'}]
    assert deltas[-1].finish_reason == "tool_calls"


def test_openai_responses_key_posts_to_responses(fake_openai):
    cred = openai(fake_openai, "sk-ok-responses")
    question = {"type": "message", "id": "msg_1", "role": "user", "content": "Weather in Paris?"}
    native = {"model": "fake-model", "input": [question], "tools": [FLAT_WEATHER], "temperature": 0.3}
    deltas = run(OpenAICompatible(), cred, {**native, "reasoning": {"effort": "low"}})
    body = fake_openai.requests[-1]
    assert "messages" not in body and body["temperature"] == 0.3
    assert body["store"] is False and body["stream"] is True and body["include"] == ["reasoning.encrypted_content"]
    assert body["input"] == [{k: v for k, v in question.items() if k != "id"}]
    assert calls(deltas) == [{"id": "call_get_weather_1", "name": "get_weather", "arguments": '{"city": "Paris"}'}]
    assert "".join(d.reasoning for d in deltas) == "Thinking it over."
    assert [d.encrypted_reasoning for d in deltas if d.encrypted_reasoning] == ["enc-fake-reasoning"]
    assert deltas[-1].finish_reason == "tool_calls" and deltas[-1].usage["total_tokens"] == 12

    call = {"type": "function_call", "call_id": "call_get_weather_1", "name": "get_weather", "arguments": "{}"}
    answer = {"type": "function_call_output", "call_id": "call_get_weather_1", "output": "Sunny"}
    deltas = run(OpenAICompatible(), cred, {**native, "input": [question, call, answer]})
    assert "".join(d.content for d in deltas) == "The tool said: Sunny"
    assert deltas[-1].finish_reason == "stop" and fake_openai.requests[-1]["include"] == []


@pytest.mark.parametrize(
    ("key", "action", "status"),
    [("sk-401-r", Action.INVALID, 502), ("sk-429-r", Action.COOLDOWN, 429), ("sk-err-r", Action.NEXT, 502)],
)
def test_openai_responses_failures_map_as_chat_does(fake_openai, key, action, status):
    with pytest.raises(UpstreamError) as err:
        run(OpenAICompatible(), openai(fake_openai, key), {"model": "fake-model", "input": []})
    assert err.value.action == action and err.value.status == status


def test_a_chat_only_key_answers_a_responses_request_through_chat(fake_openai):
    deltas = run(OpenAICompatible(), openai(fake_openai, "sk-ok-chat", "chat"), {"model": "fake-model", "input": []})
    assert "input" not in fake_openai.requests[-1] and fake_openai.requests[-1]["messages"]
    assert "".join(d.content for d in deltas).startswith("Hello from the fake upstream")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stream", [False, True])
def test_chat_tools_through_an_openai_key(gateway, fake_openai, stream):
    openai_key(fake_openai.url + "/v1", "sk-ok-tools", ["gpt-5.5"])
    settle()
    text, _ = tool_round(gateway, stream)
    assert text == "The tool said: 18 C and sunny"
    assert fake_openai.requests[0]["tools"] == [WEATHER]


@pytest.mark.django_db(transaction=True)
def test_tools_to_a_pool_of_only_chatgpt_accounts_are_refused(gateway, fake_chatgpt):
    chatgpt_account("at-ok-no-tools")
    settle()
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Weather?"}], "tools": [WEATHER]}
    raw = httpx.post(
        gateway.url + "/v1/chat/completions", json=body, headers={"Authorization": "Bearer test-code"}, timeout=30
    )
    assert raw.status_code == 400, raw.text
    error = raw.json()["error"]
    assert error["code"] == "tools_not_supported" and error["param"] == "tools"


@pytest.mark.django_db
def test_the_import_option_round_trip():
    line = "openai http://127.0.0.1:9/v1 sk-ok-import m1 api=responses"
    assert import_credentials(line).created == 1
    stored = Credential.objects.get()
    assert stored.wire_api == "responses" and stored.model_names == ["m1"]
    assert PooledCredential.from_model(stored).wire_api == "responses"
    assert import_credentials("openai http://127.0.0.1:9/v1 sk-ok-import m1").skipped == 1  # not given: kept
    assert import_credentials("openai http://127.0.0.1:9/v1 sk-ok-import m1 api=chat").updated == 1
    assert Credential.objects.get().wire_api == "chat"
    assert (
        import_credentials("openai http://127.0.0.1:9/v1 sk-ok-other api=soap")
        .errors[0][1]
        .startswith("unknown api=soap")
    )
