"""The Codex adapter on its own: events to deltas, quota, failures, the request body (the fake over HTTP)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass

import pytest

from openai_compat.errors import APIError
from openai_compat.schema import parse_chat_request
from openai_compat.upstreams.base import Action, Delta, UpstreamError
from openai_compat.upstreams.codex import Codex, CodexTranslator
from openai_compat.upstreams.codex_body import codex_body
from openai_compat.upstreams.codex_limits import quota_from_event, quota_from_headers, stream_failure
from tests.fakes.codex_server import ANSWER, PIXEL, rate_headers


@dataclass
class Account:
    account_id: str
    base_url: str = ""
    id: int | None = 1
    kind: str = "codex"
    access_token: str = "eyJ.fake.at"
    refresh_token: str = ""
    api_key: str = ""


def feed(events: list[dict]) -> list[Delta]:
    translator = CodexTranslator(Account("acc-x"))
    return [d for event in events for d in translator.feed(event)]


def test_the_answer_is_built_from_done_items_when_no_delta_came():
    message = {"type": "message", "content": [{"type": "output_text", "text": "Hi there"}]}
    reasoning = {"type": "reasoning", "summary": [{"type": "summary_text", "text": t} for t in ("a", "b")]}
    call = {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": '{"x": 1}'}
    deltas = feed(
        [
            {"type": "response.output_item.done", "output_index": i, "item": item}
            for i, item in enumerate([reasoning, message])
        ]
        + [{"type": "response.completed", "response": {"output": [reasoning, message, call]}}]
    )
    assert "".join(d.reasoning for d in deltas) == "a\n\nb"
    assert "".join(d.content for d in deltas) == "Hi there"
    assert [c for d in deltas for c in d.tool_calls or ()] == [
        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
    ]
    assert deltas[-1].finish_reason == "tool_calls"


def test_a_done_item_adds_what_its_deltas_left_out():
    item = {"type": "message", "content": [{"type": "output_text", "text": "Hello world"}]}
    deltas = feed(
        [
            {"type": "response.output_text.delta", "output_index": 0, "delta": "Hello"},
            {"type": "response.output_item.done", "output_index": 0, "item": item},
            {
                "type": "response.completed",
                "response": {"output": [], "usage": {"input_tokens": 3, "output_tokens": 2}},
            },
        ]
    )
    assert [d.content for d in deltas if d.content] == ["Hello", " world"]
    assert deltas[-1].finish_reason == "stop"
    assert deltas[-1].usage == {
        "prompt_tokens": 3,
        "completion_tokens": 2,
        "total_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def test_quota_from_headers_and_events():
    now = time.time()
    quota = quota_from_headers(rate_headers(), now)
    assert quota.plan == "plus"
    assert quota.primary.used_percent == 37.0 and quota.primary.window_minutes == 300
    assert quota.primary.resets_at == pytest.approx(now + 1800)
    assert quota.secondary.window_minutes == 10080 and quota.secondary.resets_at > now + 86000
    assert quota_from_headers({}) is None
    event = {
        "plan_type": "pro",
        "rate_limits": {"secondary": {"used_percent": 5, "window_minutes": 10080, "reset_at": 9}},
    }
    found = quota_from_event(event)
    assert found.plan == "pro" and found.primary is None and found.secondary.resets_at == 9


def test_stream_failures_map_to_actions():
    cred = Account("acc-x")
    limited = stream_failure({"code": "rate_limit_exceeded", "message": "Slow down; try again in 1.5s."}, cred)
    assert limited.action == Action.COOLDOWN and limited.retry_after == 1.5
    assert stream_failure({"code": "context_length_exceeded", "message": "Too long"}, cred).action == Action.FATAL
    assert stream_failure({"code": "usage_not_included"}, cred).action == Action.INVALID
    assert stream_failure({"code": "server_error", "message": "x"}, cred).action == Action.NEXT


def run_stream(account: Account) -> list[Delta]:
    async def collect() -> list[Delta]:
        request = parse_chat_request(b'{"model": "gpt-5.5", "messages": [{"role": "user", "content": "Hi"}]}')
        return [d async for d in Codex().stream(account, request, "gpt-5.5")]

    return asyncio.run(collect())


def test_quota_is_reported_before_the_first_output_and_with_errors(fake_codex):
    base = fake_codex.url + "/backend-api/codex"
    deltas = run_stream(Account("acc-ok-direct", base))
    assert deltas[0].quota.primary.used_percent == 37.0 and not deltas[0].has_output
    assert "".join(d.content for d in deltas) == ANSWER
    assert any(d.quota and d.quota.primary.used_percent == 38.0 for d in deltas)  # the codex.rate_limits event
    with pytest.raises(UpstreamError) as err:
        run_stream(Account("acc-usage-direct", base))
    assert err.value.code == "usage_limit_reached" and not err.value.model_scoped
    assert err.value.quota.secondary.window_minutes == 10080


def body_for(content: list[dict]) -> dict:
    raw = f'{{"model": "m", "messages": [{{"role": "user", "content": {json.dumps(content)}}}]}}'
    return asyncio.run(codex_body(parse_chat_request(raw.encode()), "m", Account("acc-x")))


def test_images_are_sent_as_data_urls_fetched_through_the_safe_fetcher(fake_codex, settings):
    data_url = "data:image/png;base64," + base64.b64encode(PIXEL).decode()
    part = {"type": "image_url", "image_url": {"url": data_url, "detail": "low"}}
    item = body_for([{"type": "text", "text": "What is it?"}, part])["input"][0]
    assert item["content"][1] == {"type": "input_image", "image_url": data_url, "detail": "low"}
    url_part = {"type": "image_url", "image_url": {"url": fake_codex.url + "/pixel.png"}}
    with pytest.raises(APIError) as err:  # a loopback address is refused
        body_for([url_part])
    assert err.value.status == 400 and err.value.param == "messages[0].content[0].image_url.url"
    settings.FETCH_ALLOW_PRIVATE = True
    assert body_for([url_part])["input"][0]["content"][0]["image_url"] == data_url
