"""Parsing and validation of a chat-completion request, with errors that name the offending `param`.

The tables below are OpenAI's `CreateChatCompletionRequest` (spec of 2026-05-31) as plain checks; ranges the
spec gives only in prose (`logit_bias` -100..100) or that this gateway narrows (`n` is 1) are noted inline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from openai_compat.errors import APIError, invalid
from openai_compat.validation import (
    Check,
    any_object,
    array,
    boolean,
    either,
    enum,
    fields,
    integer,
    json_object,
    nullable,
    number,
    string,
    tagged,
    wrong_type,
    wrong_value,
)


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]
    stream: bool
    include_usage: bool
    body: dict[str, Any]  # the whole request, for adapters that forward it as it is
    # A Responses API request (`POST /v1/responses`) as its own body, `input` holding the replayed history too:
    # upstreams that speak `/responses` build their call from it; the fields above are its chat translation.
    native: dict[str, Any] | None = None

    @classmethod
    def of(cls, model: str, messages: list[dict[str, Any]], *, stream: bool = False, **options: Any) -> ChatRequest:
        """A request made in process (the web page): checked and completed as `parse_chat_request` does a client's,
        without a trip through JSON."""
        return chat_request({"model": model, "messages": messages, "stream": stream, **options})

    @property
    def calls_tools(self) -> bool:
        """Whether the answer may be a tool call, so only an upstream that can call tools may serve it."""
        return bool(self.body.get("tools") or self.body.get("functions"))


PARTS: dict[str, Check] = {
    "text": fields({"text": string}),
    "refusal": fields({"refusal": string}),
    "image_url": fields({"image_url": fields({"url": string}, {"detail": enum("auto", "low", "high")})}),
    "input_audio": fields({"input_audio": fields({"data": string, "format": enum("wav", "mp3")})}),
    "file": fields({"file": fields(optional={"filename": string, "file_data": string, "file_id": string})}),
}


def parts(*types: str) -> Check:
    """A message's content: a string, or a non-empty array of the parts its role allows."""
    return either((str, string), (list, array(tagged({t: PARTS[t] for t in types}), 1)), expected="a string or array")


TEXT_CONTENT = parts("text")
NAMED_FUNCTION = fields({"name": string})
TOOL_CALL = tagged(
    {
        "function": fields({"id": string, "function": fields({"name": string, "arguments": string})}),
        "custom": fields({"id": string, "custom": fields({"name": string, "input": string})}),
    }
)
ROLES: dict[str, Check] = {
    "system": fields({"content": TEXT_CONTENT}, {"name": string}),
    "developer": fields({"content": TEXT_CONTENT}, {"name": string}),
    "user": fields({"content": parts("text", "image_url", "input_audio", "file")}, {"name": string}),
    "assistant": fields(
        optional={
            "content": nullable(parts("text", "refusal")),
            "refusal": nullable(string),
            "name": string,
            "audio": nullable(fields({"id": string})),
            "tool_calls": array(TOOL_CALL),
            "function_call": nullable(fields({"name": string, "arguments": string})),
        }
    ),
    "tool": fields({"content": TEXT_CONTENT, "tool_call_id": string}),
    "function": fields({"content": nullable(string), "name": string}),
}
FUNCTION = fields({"name": string}, {"description": string, "parameters": any_object, "strict": nullable(boolean)})
TOOLS = array(
    tagged(
        {
            "function": fields({"function": FUNCTION}),
            "custom": fields({"custom": fields({"name": string}, {"description": string, "format": any_object})}),
        }
    )
)
TOOL_CHOICE = either(
    (str, enum("none", "auto", "required")),
    (
        dict,
        tagged(
            {
                "function": fields({"function": NAMED_FUNCTION}),
                "custom": fields({"custom": NAMED_FUNCTION}),
                "allowed_tools": fields(
                    {"allowed_tools": fields({"mode": enum("auto", "required"), "tools": array(any_object)})}
                ),
            }
        ),
    ),
    expected="a string or object",
)
RESPONSE_FORMAT = tagged(
    {
        "text": fields(),
        "json_object": fields(),
        "json_schema": fields(
            {
                "json_schema": fields(
                    {"name": string}, {"description": string, "schema": any_object, "strict": nullable(boolean)}
                )
            }
        ),
    }
)


def string_map(value: Any, param: str) -> None:
    any_object(value, param)
    for key, item in value.items():
        string(item, f"{param}.{key}")


def logit_bias(value: Any, param: str) -> None:
    any_object(value, param)
    bias = integer(-100, 100)  # the range is in the spec's prose
    for key, item in value.items():
        bias(item, f"{param}.{key}")


FIELDS: dict[str, Check] = {
    "stream": nullable(boolean),
    "stream_options": nullable(fields(optional={"include_usage": boolean, "include_obfuscation": boolean})),
    "temperature": nullable(number(0, 2)),
    "top_p": nullable(number(0, 1)),
    "presence_penalty": nullable(number(-2, 2)),
    "frequency_penalty": nullable(number(-2, 2)),
    "max_tokens": nullable(integer(1)),
    "max_completion_tokens": nullable(integer(1)),
    "n": nullable(integer(1, 1)),  # the spec allows up to 128; one answer is all an upstream here gives
    "logprobs": nullable(boolean),
    "top_logprobs": nullable(integer(0, 20)),
    "seed": nullable(integer(-(2**63), 2**63 - 1)),
    "stop": nullable(either((str, string), (list, array(string, 1, 4)), expected="a string or array")),
    "logit_bias": nullable(logit_bias),
    "response_format": RESPONSE_FORMAT,
    "tools": TOOLS,
    "tool_choice": TOOL_CHOICE,
    "parallel_tool_calls": boolean,
    "functions": array(FUNCTION, 1, 128),
    "function_call": either((str, enum("none", "auto")), (dict, NAMED_FUNCTION), expected="a string or object"),
    "user": string,
    "safety_identifier": string,
    "prompt_cache_key": string,
    "prompt_cache_retention": nullable(enum("in_memory", "24h")),
    "metadata": nullable(string_map),
    "store": nullable(boolean),
    "modalities": nullable(array(enum("text", "audio"))),
    "reasoning_effort": nullable(enum("none", "minimal", "low", "medium", "high", "xhigh")),
    "verbosity": nullable(enum("low", "medium", "high")),
    "service_tier": nullable(enum("auto", "default", "flex", "scale", "priority")),
    "audio": nullable(
        fields(
            {
                "voice": either((str, string), (dict, fields({"id": string})), expected="a string or object"),
                "format": enum("wav", "aac", "mp3", "flac", "opus", "pcm16"),
            }
        )
    ),
    "prediction": nullable(tagged({"content": fields({"content": TEXT_CONTENT})})),
    "web_search_options": fields(
        optional={
            "user_location": nullable(fields({"type": enum("approximate"), "approximate": string_map})),
            "search_context_size": enum("low", "medium", "high"),
        }
    ),
}


def model_of(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model", "you must provide a model parameter (a non-empty string).")
    return model


def parse_chat_request(raw: bytes) -> ChatRequest:
    return chat_request(json_object(raw))


def chat_request(body: dict[str, Any]) -> ChatRequest:
    """The request a decoded body asks for; `APIError` (400, naming the `param`) when the spec refuses it."""
    model = model_of(body)
    messages = _messages(body.get("messages"))
    for name, value in body.items():
        if (rule := FIELDS.get(name)) is not None:
            rule(value, name)
    stream = body.get("stream") or False
    options = body.get("stream_options")
    if options is not None and not stream:
        raise invalid("stream_options", "'stream_options' is only allowed when 'stream' is true.")
    include_usage = bool(options and options.get("include_usage"))
    return ChatRequest(model=model, messages=messages, stream=stream, include_usage=include_usage, body=body)


def _messages(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise invalid("messages", "'messages' must be a non-empty array.")
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            wrong_type(f"messages[{i}]", "an object", message)
        role = message.get("role")
        rule = ROLES.get(role) if isinstance(role, str) else None
        if rule is None:
            wrong_value(f"messages[{i}].role", role, tuple(ROLES))
        rule(message, f"messages[{i}]")
    return value


def text_of(content: str | list[dict[str, Any]] | None) -> str:
    """The plain text of a message's content, whichever form it came in."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text")


def too_large(limit: int) -> APIError:
    return APIError(
        413, f"The request body is larger than the {limit} bytes this server accepts.", code="request_too_large"
    )
