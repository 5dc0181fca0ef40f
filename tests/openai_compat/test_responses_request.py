"""Responses API requests: each field checked as OpenAI's `CreateResponse` states it (a 400 naming the `param`), and
the chat request a chat upstream receives instead (a valid chat body, every tool call paired with its output)."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings

from openai_compat.errors import APIError
from openai_compat.responses.request import ResponsesRequest, parse_responses_request
from openai_compat.responses.translate import to_chat
from openai_compat.schema import ChatRequest, parse_chat_request
from tests.fuzz import broken, request_body
from tests.spec import assert_valid, document, errors


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "gpt-5.4", "input": "Hi", **fields}


def assert_valid_request(request: dict[str, Any]) -> None:
    """Valid by the spec's `CreateResponse`, each input item valid as one of the `InputItem` kinds. Its `oneOf`
    cannot be checked as written: a user message with a parts list is both an `EasyInputMessage` and an `Item`
    (`InputMessage`), so a strict validator refuses every such message."""
    items = request["input"] if isinstance(request["input"], list) else []
    assert_valid("CreateResponse", {**request, "input": "Hi"})
    for i, entry in enumerate(items):
        kinds = ("EasyInputMessage", "Item", "ItemReferenceParam")
        assert any(not errors(kind, entry) for kind in kinds), (i, errors("Item", entry))


def parse(request: dict[str, Any]) -> ResponsesRequest:
    return parse_responses_request(orjson.dumps(request))


def refusal(request: dict[str, Any], history: list[dict[str, Any]] | None = None) -> APIError:
    with pytest.raises(APIError) as caught:
        to_chat(parse(request), history or [])
    assert caught.value.status == 400
    return caught.value


def chat_of(request: dict[str, Any], history: list[dict[str, Any]] | None = None) -> ChatRequest:
    """The translation, checked to be a chat body this gateway (and so the spec) accepts."""
    chat = to_chat(parse(request), history or [])
    assert parse_chat_request(orjson.dumps(chat.body)).messages == chat.messages
    return chat


def user(*parts: dict[str, Any], role: str = "user") -> dict[str, Any]:
    return {"role": role, "content": list(parts)}


def text(value: str, kind: str = "input_text") -> dict[str, Any]:
    return {"type": kind, "text": value}


def call(call_id: str, name: str = "get_weather") -> dict[str, Any]:
    return {"type": "function_call", "id": f"fc_{call_id}", "call_id": call_id, "name": name, "arguments": "{}"}


def output(call_id: str, value: Any = "sunny") -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": value}


FUNCTION = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}, "strict": True}
IMAGE = {"type": "input_image", "image_url": "https://x.test/a.png", "detail": "low"}
FILE = {"type": "input_file", "file_data": "data:application/pdf;base64,JVBER", "filename": "a.pdf"}
REASONING = {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "hm"}]}

REFUSED = [
    (body(model=""), "model", None),
    ({"model": "gpt-5.4"}, "input", "missing_required_parameter"),
    (body(input=""), "input", "empty_string"),
    (body(input=[]), "input", "empty_array"),
    (body(input=5), "input", "invalid_type"),
    (body(input=[5]), "input[0]", "invalid_type"),
    (body(input=[{"type": 7, "role": "user", "content": "Hi"}]), "input[0].type", "invalid_type"),
    (body(input=[{"role": "robot", "content": "Hi"}]), "input[0].role", "invalid_value"),
    (body(input=[{"content": "Hi"}]), "input[0].role", "missing_required_parameter"),
    (body(input=[{"type": "message", "role": "user"}]), "input[0].content", "missing_required_parameter"),
    (body(input=[user()]), "input[0].content", "empty_array"),
    (body(input=[user({"type": "input_text"})]), "input[0].content[0].text", "missing_required_parameter"),
    (body(input=[user(text("a"), text(5))]), "input[0].content[1].text", "invalid_type"),
    (body(input=[user({"type": "text", "text": "a"})]), "input[0].content[0].type", "invalid_value"),
    (body(input=[user({"type": "input_image"})]), "input[0].content[0].image_url", "missing_required_parameter"),
    (body(input=[user({**IMAGE, "detail": "huge"})]), "input[0].content[0].detail", "invalid_value"),
    (body(input=[user({"type": "input_file"})]), "input[0].content[0].file_data", "missing_required_parameter"),
    (body(input=[{**call("c1"), "call_id": None}]), "input[0].call_id", "invalid_type"),
    (
        body(input=[user(text("a")), user(text("b")), {"type": "function_call", "name": "f", "arguments": "{}"}]),
        "input[2].call_id",
        "missing_required_parameter",
    ),
    (body(input=[{**call("c1"), "arguments": {}}]), "input[0].arguments", "invalid_type"),
    (body(input=[{**call("c1"), "status": "done"}]), "input[0].status", "invalid_value"),
    (body(input=[output("c1", 5)]), "input[0].output", "invalid_type"),
    (body(input=[output("c1", [{"type": "output_text", "text": "x"}])]), "input[0].output[0].type", "invalid_value"),
    (body(input=[{"type": "function_call_output", "output": "x"}]), "input[0].call_id", "missing_required_parameter"),
    (body(input=[{"type": "reasoning", "id": "rs_1"}]), "input[0].summary", "missing_required_parameter"),
    (body(input=[{**REASONING, "summary": [{"type": "summary_text"}]}]), "input[0].summary[0].text", None),
    (body(input=[{"type": "item_reference"}]), "input[0].id", "missing_required_parameter"),
    (body(instructions=5), "instructions", "invalid_type"),
    (body(stream="yes"), "stream", "invalid_type"),
    (body(store=1), "store", "invalid_type"),
    (body(parallel_tool_calls="x"), "parallel_tool_calls", "invalid_type"),
    (body(previous_response_id=5), "previous_response_id", "invalid_type"),
    (body(background=True), "background", "unsupported_parameter"),
    (body(background="no"), "background", "invalid_type"),
    (body(conversation="conv_1"), "conversation", "unsupported_parameter"),
    (body(tools={}), "tools", "invalid_type"),
    (body(tools=[{"name": "f"}]), "tools[0].type", "invalid_value"),
    (body(tools=[FUNCTION, {"type": "function"}]), "tools[1].name", "missing_required_parameter"),
    (body(tools=[{**FUNCTION, "parameters": "x"}]), "tools[0].parameters", "invalid_type"),
    (body(tools=[{**FUNCTION, "strict": "yes"}]), "tools[0].strict", "invalid_type"),
    (body(tools=[{**FUNCTION, "description": 5}]), "tools[0].description", "invalid_type"),
    (body(tool_choice="sometimes"), "tool_choice", "invalid_value"),
    (body(tool_choice=5), "tool_choice", "invalid_type"),
    (body(tool_choice={"type": "function"}), "tool_choice.name", "missing_required_parameter"),
    (body(reasoning={"effort": "extreme"}), "reasoning.effort", "invalid_value"),
    (body(reasoning={"summary": "long"}), "reasoning.summary", "invalid_value"),
    (body(text={"format": {"type": "xml"}}), "text.format.type", "invalid_value"),
    (body(text={"format": {"type": "json_schema", "name": "x"}}), "text.format.schema", "missing_required_parameter"),
    (body(text={"format": {"type": "json_schema", "schema": {}}}), "text.format.name", "missing_required_parameter"),
    (body(text={"verbosity": "loud"}), "text.verbosity", "invalid_value"),
    (body(max_output_tokens=15), "max_output_tokens", "integer_below_min_value"),
    (body(max_output_tokens="100"), "max_output_tokens", "invalid_type"),
    (body(temperature=2.5), "temperature", "decimal_above_max_value"),
    (body(top_p=-0.1), "top_p", "decimal_below_min_value"),
    (body(top_logprobs=21), "top_logprobs", "integer_above_max_value"),
    (body(metadata={f"k{i}": "v" for i in range(17)}), "metadata", "object_above_max_properties"),
    (body(metadata={"k" * 65: "v"}), "metadata", "string_above_max_length"),
    (body(metadata={"k": "v" * 513}), "metadata.k", "string_above_max_length"),
    (body(metadata={"k": 5}), "metadata.k", "invalid_type"),
    (body(include="reasoning.encrypted_content"), "include", "invalid_type"),
    (body(include=[5]), "include[0]", "invalid_type"),
    (body(truncation="sometimes"), "truncation", "invalid_value"),
    (body(user=5), "user", "invalid_type"),
    (body(prompt_cache_key=5), "prompt_cache_key", "invalid_type"),
    (body(safety_identifier=5), "safety_identifier", "invalid_type"),
    (body(safety_identifier="s" * 65), "safety_identifier", "string_above_max_length"),
    (body(prompt_cache_retention="forever"), "prompt_cache_retention", "invalid_value"),
    (body(service_tier="gold"), "service_tier", "invalid_value"),
]


@pytest.mark.parametrize(("request_body", "param", "code"), REFUSED)
def test_a_wrong_field_is_a_400_naming_it(request_body, param, code):
    with pytest.raises(APIError) as caught:
        parse(request_body)
    error = caught.value
    assert (error.status, error.param, error.type) == (400, param, "invalid_request_error"), error.message
    assert code is None or error.code == code, error.code


@pytest.mark.parametrize("raw", [b"{", b"[]", b'"text"'])
def test_a_body_that_is_not_a_json_object_is_a_400(raw):
    with pytest.raises(APIError) as caught:
        parse_responses_request(raw)
    assert (caught.value.status, caught.value.param) == (400, None)


CODEX = {  # the Codex CLI's second turn after a tool call (codex-protocol.md C2)
    "model": "gpt-5.5",
    "instructions": None,
    "input": [
        {"type": "message", "role": "developer", "id": "msg_1", "content": [text("You are Codex.")]},
        {"type": "message", "role": "developer", "id": "msg_2", "content": [text("<permissions>")]},
        {"type": "message", "role": "user", "id": "msg_3", "content": [text("<environment_context/>")]},
        {"type": "message", "role": "user", "id": "msg_4", "content": [text("Run echo probe")]},
        {**REASONING, "encrypted_content": "gAAAA", "content": None},
        {**call("call_1", "exec_command"), "status": "completed", "arguments": '{"cmd": "echo probe"}'},
        {**output("call_1", "Process exited with code 0\nOutput:\nprobe\n"), "id": "fco_1"},
        {"type": "custom_tool_call", "id": "ctc_1", "call_id": "call_2", "name": "apply_patch", "input": "*** Begin"},
        {"type": "custom_tool_call_output", "call_id": "call_2", "output": "Done"},
        {"type": "ghost_snapshot", "ghost_commit": {"id": "abc"}},  # a kind no spec lists: passed over
    ],
    "tools": [
        {"type": "function", "name": "exec_command", "description": "Run", "strict": False, "parameters": {}},
        {
            "type": "namespace",
            "name": "multi_agent_v1",
            "description": "Sub-agents",
            "tools": [{"type": "function", "name": "spawn", "strict": False, "parameters": {}}],
        },
        {"type": "custom", "name": "apply_patch", "format": {"type": "text"}},
        {"type": "web_search", "external_web_access": False},
        {"type": "tool_search"},
    ],
    "tool_choice": "auto",
    "parallel_tool_calls": True,
    "reasoning": {"effort": "high", "summary": "auto"},
    "text": {"verbosity": "low"},
    "store": False,
    "stream": True,
    "include": ["reasoning.encrypted_content"],
    "prompt_cache_key": "0199-session",
    "client_metadata": {"turn_id": "t1"},
}


def test_the_codex_cli_body_parses_and_becomes_a_chat_request_of_function_tools():
    request = parse(CODEX)
    assert (request.stream, request.store, request.previous_response_id) == (True, False, None)
    chat = chat_of(CODEX)
    assert [m["role"] for m in chat.messages] == ["developer", "developer", "user", "user", "assistant", "tool"]
    assert chat.messages[4]["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "exec_command", "arguments": '{"cmd": "echo probe"}'}}
    ]
    assert chat.messages[5] == {"role": "tool", "tool_call_id": "call_1", "content": CODEX["input"][6]["output"]}
    assert chat.body["tools"] == [
        {
            "type": "function",
            "function": {"name": "exec_command", "description": "Run", "parameters": {}, "strict": False},
        }
    ]
    assert (chat.body["tool_choice"], chat.body["parallel_tool_calls"]) == ("auto", True)
    assert (chat.body["reasoning_effort"], chat.body["verbosity"], chat.body["prompt_cache_key"]) == (
        "high",
        "low",
        "0199-session",
    )
    assert "client_metadata" not in chat.body and "include" not in chat.body
    assert chat.native == CODEX  # nothing to add or remove: no history, no previous_response_id


def spec_examples() -> list[dict[str, Any]]:
    """The request bodies of the spec's own `createResponse` examples (the JSON after `curl ... -d`)."""
    examples = document()["paths"]["/responses"]["post"]["x-oaiMeta"]["examples"]
    return [json.loads(re.search(r"-d '(.*)'", e["request"]["curl"], re.S).group(1)) for e in examples]


def test_the_spec_examples_are_accepted():
    examples = spec_examples()
    assert len(examples) >= 5
    for example in examples:  # not all valid by the schema: the image example leaves out the required `detail`
        parse(example)
        if "file_url" in str(example):  # a file by URL, which a chat model cannot take
            assert refusal(example).param == "input[0].content[1].file_url"
        else:
            assert chat_of(example).messages[-1]["role"] == "user"


ACCEPTED = [
    body(input=[user(text("a"), IMAGE, FILE), {"role": "assistant", "content": "b"}, {"id": "msg_9"}]),
    body(
        instructions=None,
        stream=None,
        store=None,
        previous_response_id=None,
        background=False,
        conversation=None,
        reasoning=None,
        metadata={"k" * 64: "v" * 512},
        include=None,
        truncation="auto",
        max_output_tokens=16,
        temperature=0,
        top_p=1,
        top_logprobs=0,
        service_tier="flex",
        safety_identifier="s",
        prompt_cache_key="k",
        prompt_cache_retention="24h",
    ),
    body(tools=[{"type": "file_search", "vector_store_ids": ["vs_1"]}], tool_choice={"type": "file_search"}),
    body(text={"format": {"type": "json_object"}}, stream_options={"include_obfuscation": False}),
    body(input=[{"type": "item_reference", "id": "msg_1"}, {"type": "message", "role": "user", "content": "x"}]),
]


@pytest.mark.parametrize("request_body", ACCEPTED)
def test_what_the_spec_allows_is_accepted(request_body):
    assert_valid_request(request_body)
    assert parse(request_body).body == request_body
    chat_of(request_body)


def test_a_string_input_is_one_user_message_after_the_instructions():
    request = parse(body(input="Hello", instructions="Be brief."))
    assert request.input == [{"type": "message", "role": "user", "content": [text("Hello")]}]
    assert (request.stream, request.store) == (False, True)
    assert chat_of(body(input="Hello", instructions="Be brief.")).messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello"},
    ]


def test_message_parts_become_chat_parts_and_an_assistant_message_plain_text():
    items = [
        user(text("sys"), role="system"),
        user(text("see"), {**IMAGE, "detail": "original"}, FILE, {"type": "input_file", "file_id": "file-1"}),
        user(text("I see ", "output_text"), {"type": "refusal", "refusal": "no more"}, role="assistant"),
    ]
    assert chat_of(body(input=items)).messages == [
        {"role": "system", "content": "sys"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "see"},
                {"type": "image_url", "image_url": {"url": IMAGE["image_url"]}},  # chat has no "original" detail
                {"type": "file", "file": {"file_data": FILE["file_data"], "filename": "a.pdf"}},
                {"type": "file", "file": {"file_id": "file-1"}},
            ],
        },
        {"role": "assistant", "content": "I see no more"},
    ]


@pytest.mark.parametrize(
    ("items", "param"),
    [
        ([user(text("a"), {"type": "input_image", "file_id": "file-1"})], "input[0].content[1].file_id"),
        ([user({"type": "input_file", "file_url": "https://x.test/a.pdf"})], "input[0].content[0].file_url"),
        ([user(text("a"), IMAGE, role="developer")], "input[0].content[1]"),
    ],
)
def test_what_a_chat_model_cannot_take_is_a_400_naming_it(items, param):
    error = refusal(body(input=items))
    assert (error.param, error.code) == (param, "unsupported_value")


def test_a_function_call_round_trip_gives_paired_tool_calls():
    items = [
        user(text("Weather in Paris and Rome?")),
        REASONING,
        user(text("Let me check.", "output_text"), role="assistant"),
        call("c1"),
        call("c2"),
        output("c1", "sunny"),
        output("c2", [text("rain"), IMAGE, text("cold")]),
        user(text("Thanks")),
    ]
    chat = chat_of(body(input=items, tools=[FUNCTION]))
    assert chat.messages[1] == {
        "role": "assistant",
        "content": "Let me check.",
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
            {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
        ],
    }
    assert chat.messages[2:4] == [
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": "rain\ncold"},
    ]
    assert len(chat.messages) == 5


def test_a_call_without_output_is_dropped_and_an_output_without_call_is_read_as_user_text():
    items = [user(text("Go")), call("lost"), output("orphan", "42"), call("c1"), output("c1")]
    messages = chat_of(body(input=items, tools=[FUNCTION])).messages
    assert messages[1] == {"role": "user", "content": "Output of tool call orphan: 42"}
    assert [c["id"] for m in messages for c in m.get("tool_calls", ())] == ["c1"]
    assert messages[-1] == {"role": "tool", "tool_call_id": "c1", "content": "sunny"}


def test_items_a_chat_model_cannot_use_are_dropped():
    items = [
        REASONING,
        {"type": "item_reference", "id": "msg_0"},
        {"type": "custom_tool_call", "call_id": "x", "name": "apply_patch", "input": "p"},
        {"type": "custom_tool_call_output", "call_id": "x", "output": "ok"},
        {"type": "web_search_call", "id": "ws_1", "status": "completed"},
        user(text("Hi")),
    ]
    assert chat_of(body(input=items)).messages == [{"role": "user", "content": "Hi"}]


def test_an_input_with_nothing_a_chat_model_reads_is_a_400():
    assert refusal(body(input=[REASONING])).param == "input"


def test_only_function_tools_reach_chat_and_without_them_no_tool_fields():
    hosted = [{"type": "web_search"}, {"type": "custom", "name": "apply_patch"}]
    chat = chat_of(body(tools=hosted, tool_choice="required", parallel_tool_calls=False))
    assert not {"tools", "tool_choice", "parallel_tool_calls"} & chat.body.keys()
    assert not chat.calls_tools
    named = chat_of(body(tools=[*hosted, FUNCTION], tool_choice={"type": "function", "name": "get_weather"}))
    assert named.calls_tools
    assert named.body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert named.body["tools"] == [
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}, "strict": True}}
    ]
    hosted_choice = chat_of(body(tools=[FUNCTION], tool_choice={"type": "web_search_preview"}))
    assert hosted_choice.body["tool_choice"] == "auto"


def test_the_other_fields_become_their_chat_equivalents():
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    request = body(
        stream=True,
        text={"format": {"type": "json_schema", "name": "out", "schema": schema, "strict": True}, "verbosity": "high"},
        reasoning={"effort": "minimal", "summary": "concise"},
        max_output_tokens=64,
        temperature=0.5,
        top_p=0.9,
        user="u1",
        safety_identifier="s1",
        service_tier="priority",
        metadata={"k": "v"},
        top_logprobs=3,
        truncation="auto",
    )
    assert_valid_request(request)
    chat = chat_of(request)
    assert {k: v for k, v in chat.body.items() if k != "messages"} == {
        "model": "gpt-5.4",
        "stream": True,
        "stream_options": {"include_usage": True},
        "response_format": {"type": "json_schema", "json_schema": {"name": "out", "schema": schema, "strict": True}},
        "verbosity": "high",
        "reasoning_effort": "minimal",
        "max_completion_tokens": 64,
        "temperature": 0.5,
        "top_p": 0.9,
        "user": "u1",
        "safety_identifier": "s1",
        "service_tier": "priority",
    }
    assert (chat.stream, chat.include_usage) == (True, True)
    plain = chat_of(body(text={"format": {"type": "text"}}))
    assert "response_format" not in plain.body and "stream_options" not in plain.body
    assert (plain.stream, plain.include_usage) == (False, True)
    assert chat_of(body(text={"format": {"type": "json_object"}})).body["response_format"] == {"type": "json_object"}


def test_native_holds_history_then_input_without_previous_response_id():
    history = [
        user(text("What is 2+2?")),
        {
            "type": "message",
            "id": "msg_1",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "4", "annotations": []}],
        },
    ]
    request = body(input="And 3+3?", previous_response_id="resp_1", instructions="Math.", store=True)
    parsed = parse(request)
    chat = to_chat(parsed, history)
    sent = {name: value for name, value in request.items() if name != "previous_response_id"}
    assert chat.native == {**sent, "input": [*history, *parsed.input]}
    assert parsed.body["previous_response_id"] == "resp_1"  # the request itself is left as sent
    assert [m["role"] for m in chat.messages] == ["system", "user", "assistant", "user"]
    assert chat.messages[2] == {"role": "assistant", "content": "4"}


FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    phases=[Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CREATE = request_body("createResponse")


def translated_or_refused(request: Any) -> None:
    """A body is either refused with a 400 that names what is wrong, or becomes a chat body the gateway accepts."""
    try:
        raw = json.dumps(request)  # the stdlib also writes integers past 64 bits
        chat = to_chat(parse_responses_request(raw.encode()), [])
    except APIError as error:
        unreadable = not isinstance(request, dict) or "Infinity" in raw or "NaN" in raw  # not JSON, only Python's
        assert error.status == 400 and (error.param or unreadable), error.message
        return
    parse_chat_request(orjson.dumps(chat.body))


@FUZZ
@given(request=CREATE)
def test_bodies_generated_from_the_spec_translate_or_are_refused_by_name(request):
    # the fields this gateway always refuses are left out, and an input put in: so most bodies reach the translation
    request = {k: v for k, v in request.items() if k not in ("conversation", "background")}
    translated_or_refused({**request, "model": "gpt-5.4", "input": request.get("input") or "Hi"})


@FUZZ
@given(request=broken(CREATE))
def test_broken_bodies_are_refused_by_name_never_a_crash(request):
    translated_or_refused(request)
