"""Each field the gateway or an upstream reads is checked by type and range: a 400 naming the `param`."""

from __future__ import annotations

import httpx
import orjson
import pytest

from openai_compat.errors import APIError
from openai_compat.schema import ChatRequest, parse_chat_request
from tests.spec import assert_valid

USER = [{"role": "user", "content": "Hi"}]


def body(**fields) -> dict:
    return {"model": "gpt-4o", "messages": USER, **fields}


REFUSED = [
    (body(messages=[{"role": {}, "content": "Hi"}]), "messages[0].role", "invalid_value"),
    (body(messages=[{"role": "user", "content": [{"type": "text", "text": 5}]}]), "messages[0].content[0].text", None),
    (
        body(messages=[{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": None}]}]),
        "messages[0].content[1].text",
        "invalid_type",
    ),
    (
        body(messages=[{"role": "user", "content": [{"type": "text", "text": ["a"]}]}]),
        "messages[0].content[0].text",
        None,
    ),
    (
        body(messages=[{"role": "user", "content": [{"type": "refusal", "refusal": "no"}]}]),
        "messages[0].content[0].type",
        None,
    ),
    (body(messages=[{"role": "user", "content": []}]), "messages[0].content", "empty_array"),
    (body(messages=[{"role": "tool", "content": "42"}]), "messages[0].tool_call_id", "missing_required_parameter"),
    (
        body(
            messages=[{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f"}}]}]
        ),
        "messages[0].tool_calls[0].function.arguments",
        "missing_required_parameter",
    ),
    (body(temperature=9), "temperature", "decimal_above_max_value"),
    (body(temperature=True), "temperature", "invalid_type"),
    (body(top_p=-0.1), "top_p", "decimal_below_min_value"),
    (body(presence_penalty=2.5), "presence_penalty", None),
    (body(max_tokens="lots"), "max_tokens", "invalid_type"),
    (body(max_completion_tokens=0), "max_completion_tokens", "integer_below_min_value"),
    (body(n=2), "n", None),
    (body(top_logprobs=21), "top_logprobs", None),
    (body(logprobs="yes"), "logprobs", None),
    (body(stop=["a", "b", "c", "d", "e"]), "stop", "array_above_max_length"),
    (body(response_format={"type": "xml"}), "response_format.type", "invalid_value"),
    (body(tools=[{"type": "function", "function": {"description": "no name"}}]), "tools[0].function.name", None),
    (body(tool_choice="sometimes"), "tool_choice", "invalid_value"),
    (body(parallel_tool_calls=1), "parallel_tool_calls", None),
    (body(user=7), "user", None),
    (body(stream="yes"), "stream", None),
    (body(stream_options={"include_usage": True}), "stream_options", None),
    (body(seed=2**63), "seed", None),
]


@pytest.mark.parametrize(("request_body", "param", "code"), REFUSED)
def test_a_wrong_field_is_a_400_naming_it(gateway, request_body, param, code):
    response = httpx.post(
        gateway.url + "/v1/chat/completions", json=request_body, headers={"Authorization": "Bearer test-code"}
    )
    assert response.status_code == 400, response.text
    assert_valid("ErrorResponse", response.json())
    error = response.json()["error"]
    assert (error["param"], error["type"]) == (param, "invalid_request_error")
    assert code is None or error["code"] == code


ACCEPTED = [
    body(temperature=0, top_p=1, presence_penalty=-2, frequency_penalty=2.0, max_tokens=1, seed=-5, n=1),
    body(stop="END", logprobs=True, top_logprobs=20, user="u", parallel_tool_calls=False, temperature=None),
    body(stream=True, stream_options={"include_usage": True}, response_format={"type": "json_object"}),
    body(
        messages=[
            {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
        ],
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        tool_choice={"type": "function", "function": {"name": "f"}},
        top_k=5,  # an extension some OpenAI-compatible servers take: passed on
    ),
]


@pytest.mark.parametrize("request_body", ACCEPTED)
def test_what_the_spec_allows_is_accepted(request_body):
    chat = parse_chat_request(orjson.dumps(request_body))
    assert chat.body == request_body


def made_in_process(request_body: dict) -> ChatRequest:
    """`ChatRequest.of`, as the web page calls it."""
    fields = dict(request_body)
    return ChatRequest.of(fields.pop("model"), fields.pop("messages"), stream=fields.pop("stream", False), **fields)


@pytest.mark.parametrize("request_body", [*ACCEPTED, body(stream=True, stream_options={"include_usage": True})])
def test_a_request_made_in_process_is_the_one_its_body_would_parse_to(request_body):
    assert made_in_process(request_body) == parse_chat_request(orjson.dumps({"stream": False, **request_body}))


@pytest.mark.parametrize(("request_body", "param", "code"), REFUSED)
def test_a_request_made_in_process_is_refused_as_its_body_would_be(request_body, param, code):
    with pytest.raises(APIError) as refused:
        made_in_process(request_body)
    error = refused.value.body()["error"]
    assert (refused.value.status, error["param"]) == (400, param)
    assert code is None or error["code"] == code
