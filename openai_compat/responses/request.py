"""A Responses API request (`POST /v1/responses`) and its validation (its chat translation is `translate`).

The checks are OpenAI's `CreateResponse` as plain tables, in the style of `openai_compat.schema`: a request pays
only for the fields it sends, and every failure is a 400 naming the `param`. Item and tool kinds the gateway does
not use (hosted tools, namespaces, item kinds of other tools) are accepted unread: clients such as the Codex CLI
send them on every turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from openai_compat.errors import invalid
from openai_compat.schema import FIELDS as CHAT_FIELDS
from openai_compat.schema import model_of
from openai_compat.validation import (
    Check,
    any_object,
    anything,
    array,
    boolean,
    either,
    enum,
    fields,
    integer,
    json_object,
    nullable,
    short_string,
    string,
    tagged,
)


@dataclass(frozen=True, slots=True)
class ResponsesRequest:
    model: str
    input: list[dict[str, Any]]  # the new input items; a string input is one user message
    stream: bool
    store: bool  # the spec's default is true
    previous_response_id: str | None
    body: dict[str, Any]  # the whole request as sent


def with_one_of(shape: Check, *names: str) -> Check:
    """`shape`, carrying at least one of `names` (an image by URL or by file id)."""

    def check(value: Any, param: str) -> None:
        shape(value, param)
        if all(value.get(name) is None for name in names):
            message = "Missing required parameter: " + " or ".join(f"'{param}.{name}'" for name in names) + "."
            raise invalid(f"{param}.{names[0]}", message, code="missing_required_parameter")

    return check


def non_empty(value: Any, param: str) -> None:
    string(value, param)
    if not value:
        message = f"Invalid '{param}': empty string. Expected a string with minimum length 1, but got an empty string."
        raise invalid(param, message, code="empty_string")


STATUS = enum("in_progress", "completed", "incomplete")
TEXT = fields({"text": string})
DETAIL = enum("auto", "low", "high", "original")
IMAGE = with_one_of(
    fields(optional={"image_url": nullable(string), "file_id": nullable(string), "detail": nullable(DETAIL)}),
    "image_url",
    "file_id",
)
FILE = with_one_of(
    fields(optional={name: nullable(string) for name in ("file_data", "file_id", "file_url", "filename")}),
    "file_data",
    "file_id",
    "file_url",
)
PARTS: dict[str, Check] = {
    "input_text": TEXT,
    "output_text": TEXT,
    "refusal": fields({"refusal": string}),
    "input_image": IMAGE,
    "input_file": FILE,
}
ROLE = enum("user", "assistant", "system", "developer")
MESSAGE = fields(
    {"role": ROLE, "content": either((str, string), (list, array(tagged(PARTS), 1)), expected="a string or array")},
    {"id": string, "status": STATUS},
)
OUTPUT = either(
    (str, string),
    (list, array(tagged({"input_text": TEXT, "input_image": IMAGE, "input_file": FILE}))),
    expected="a string or array",
)
ITEMS: dict[str, Check] = {
    "message": MESSAGE,
    "function_call": fields({"call_id": string, "name": string, "arguments": string}, {"id": string, "status": STATUS}),
    "function_call_output": fields({"call_id": string, "output": OUTPUT}, {"id": nullable(string)}),
    "reasoning": fields(
        {"summary": array(tagged({"summary_text": TEXT}))},
        {"id": string, "encrypted_content": nullable(string), "content": nullable(array(any_object))},
    ),
    "item_reference": fields({"id": string}),
    "custom_tool_call": fields({"call_id": string, "name": string, "input": string}, {"id": string}),
    "custom_tool_call_output": fields(
        {"call_id": string, "output": either((str, string), (list, array(any_object)), expected="a string or array")}
    ),
}


def kind_of(item: dict[str, Any]) -> str:
    """An item's type; an `EasyInputMessage` and an `ItemReferenceParam` may leave it out."""
    if (kind := item.get("type")) is not None:
        return kind
    return "item_reference" if "id" in item and "role" not in item else "message"


def item(value: Any, param: str) -> None:
    any_object(value, param)
    nullable(string)(value.get("type"), f"{param}.type")
    ITEMS.get(kind_of(value), anything)(value, param)  # other kinds (hosted tools' calls, compaction, ...) pass


METADATA_VALUE = short_string(512)


def metadata(value: Any, param: str) -> None:
    """The spec's `Metadata`: at most 16 pairs, keys up to 64 characters, values up to 512."""
    any_object(value, param)
    if len(value) > 16:
        message = f"Invalid '{param}': too many properties. Expected at most 16 properties, but got {len(value)}."
        raise invalid(param, message, code="object_above_max_properties")
    for key, text in value.items():
        if len(key) > 64:
            message = f"Invalid '{param}': key too long. Expected keys of at most 64 characters, but got {len(key)}."
            raise invalid(param, message, code="string_above_max_length")
        METADATA_VALUE(text, f"{param}.{key}")


def foreground(value: Any, param: str) -> None:
    boolean(value, param)
    if value:
        message = "Background responses are not supported: this server answers in the foreground only."
        raise invalid(param, message, code="unsupported_parameter")


def no_conversation(value: Any, param: str) -> None:
    message = "The Conversations API is not supported here: chain responses with 'previous_response_id' instead."
    raise invalid(param, message, code="unsupported_parameter")


FUNCTION_TOOL = fields(
    {"name": string}, {"description": nullable(string), "parameters": nullable(any_object), "strict": nullable(boolean)}
)
FORMAT = tagged(
    {
        "text": fields(),
        "json_object": fields(),
        "json_schema": fields(
            {"name": string, "schema": any_object}, {"strict": nullable(boolean), "description": string}
        ),
    }
)
SAME_AS_CHAT = (  # checked as chat checks them, since the chat request carries them on
    "temperature",
    "top_p",
    "top_logprobs",
    "user",
    "prompt_cache_key",
    "prompt_cache_retention",
    "service_tier",
)
FIELDS: dict[str, Check] = {
    "instructions": nullable(string),
    "stream": nullable(boolean),
    "store": nullable(boolean),
    "background": nullable(foreground),
    "conversation": nullable(no_conversation),
    "previous_response_id": nullable(string),
    "tools": array(tagged({"function": FUNCTION_TOOL}, others=anything)),
    "tool_choice": either(
        (str, enum("none", "auto", "required")),
        (dict, tagged({"function": fields({"name": string})}, others=anything)),
        expected="a string or object",
    ),
    "parallel_tool_calls": nullable(boolean),
    "reasoning": nullable(
        fields(
            optional={
                "effort": CHAT_FIELDS["reasoning_effort"],
                "summary": nullable(enum("auto", "concise", "detailed")),
            }
        )
    ),
    "text": fields(optional={"format": FORMAT, "verbosity": CHAT_FIELDS["verbosity"]}),
    "max_output_tokens": nullable(integer(16)),
    "metadata": nullable(metadata),
    "include": nullable(array(string)),
    "truncation": nullable(enum("auto", "disabled")),
    "safety_identifier": short_string(64),
    **{name: CHAT_FIELDS[name] for name in SAME_AS_CHAT},
}
INPUT = either((str, non_empty), (list, array(item, 1)), expected="a string or array")


def parse_responses_request(raw: bytes) -> ResponsesRequest:
    body = json_object(raw)
    model = model_of(body)
    items = body.get("input")
    if items is None:
        raise invalid("input", "Missing required parameter: 'input'.", code="missing_required_parameter")
    INPUT(items, "input")
    for name, value in body.items():
        if (rule := FIELDS.get(name)) is not None:
            rule(value, name)
    return ResponsesRequest(
        model=model,
        input=[user_message(items)] if isinstance(items, str) else items,
        stream=bool(body.get("stream")),
        store=body.get("store") is not False,
        previous_response_id=body.get("previous_response_id"),
        body=body,
    )


def user_message(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
