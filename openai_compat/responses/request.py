"""A Responses API request (`POST /v1/responses`): its validation, and its translation to a chat request.

The checks are OpenAI's `CreateResponse` as plain tables, in the style of `openai_compat.schema`: a request pays
only for the fields it sends, and every failure is a 400 naming the `param`. Item and tool kinds the gateway does
not use (hosted tools, namespaces, item kinds of other tools) are accepted unread: clients such as the Codex CLI
send them on every turn. The chat translation drops what a chat model cannot take (reasoning items, references,
custom and hosted tools) and refuses, naming the `param`, only content it would otherwise lose (an image given by
file id, a file by URL, an image outside a user message).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from openai_compat.errors import invalid
from openai_compat.schema import FIELDS as CHAT_FIELDS
from openai_compat.schema import ChatRequest
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
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model", "you must provide a model parameter (a non-empty string).")
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


# --- Translation to chat ---------------------------------------------------------------------------
# chat's `top_logprobs` needs `logprobs`, which has no Responses counterpart: it is left out
COPIED = ("safety_identifier", *(name for name in SAME_AS_CHAT if name != "top_logprobs"))
CHAT_DETAIL = ("auto", "low", "high")


def to_chat(request: ResponsesRequest, history: list[dict[str, Any]]) -> ChatRequest:
    """The request as chat, after `history` (the stored input and output items of earlier turns); `native` keeps
    it as a Responses body whose `input` holds the whole conversation, for upstreams that speak `/responses`."""
    items = [*history, *request.input]
    native = {**request.body, "input": items}
    native.pop("previous_response_id", None)
    messages = _messages(request.body.get("instructions"), items, len(history))
    body: dict[str, Any] = {"model": request.model, "messages": messages, "stream": request.stream}
    if request.stream:
        body["stream_options"] = {"include_usage": True}
    body |= _options(request.body)
    return ChatRequest(request.model, messages, request.stream, include_usage=True, body=body, native=native)


def _messages(instructions: str | None, items: list[dict[str, Any]], replayed: int) -> list[dict[str, Any]]:
    messages = [{"role": "system", "content": instructions}] if instructions else []
    paired = _paired(items)
    for i, entry in enumerate(items):
        kind = kind_of(entry)
        if kind == "message":
            # a stored item was checked when it was first sent; were it wrong, the history is what cannot be sent
            messages.append(_message(entry, f"input[{i - replayed}]" if i >= replayed else "previous_response_id"))
        elif kind == "function_call" and entry["call_id"] in paired:
            _add_call(messages, entry)
        elif kind == "function_call_output":
            messages.append(_output(entry, paired))
    if not messages:
        raise invalid("input", "The input holds no message or tool output that a model could answer.")
    return messages


def _paired(items: list[dict[str, Any]]) -> set[str]:
    """The call ids whose call comes before its output. Only these become chat tool calls and tool messages: chat
    upstreams refuse a call without its output and an output without its call (codex-protocol B5)."""
    called: set[str] = set()
    paired: set[str] = set()
    for entry in items:
        kind = kind_of(entry)
        if kind == "function_call":
            called.add(entry["call_id"])
        elif kind == "function_call_output" and entry["call_id"] in called:
            paired.add(entry["call_id"])
    return paired


def _add_call(messages: list[dict[str, Any]], call: dict[str, Any]) -> None:
    """Consecutive calls, and the assistant text right before them, make one assistant message."""
    if not messages or messages[-1]["role"] != "assistant":
        messages.append({"role": "assistant", "content": None})
    function = {"name": call["name"], "arguments": call["arguments"]}
    messages[-1].setdefault("tool_calls", []).append({"id": call["call_id"], "type": "function", "function": function})


def _output(output: dict[str, Any], paired: set[str]) -> dict[str, Any]:
    value = output["output"]
    text = value if isinstance(value, str) else "\n".join(p["text"] for p in value if p["type"] == "input_text")
    if output["call_id"] in paired:
        return {"role": "tool", "tool_call_id": output["call_id"], "content": text}
    # Its call is not in the input (a client that sends only the output, with no stored history): the model reads
    # it as a user message. Never an error, and nothing is lost.
    return {"role": "user", "content": f"Output of tool call {output['call_id']}: {text}"}


def _message(message: dict[str, Any], param: str) -> dict[str, Any]:
    role, content = message["role"], message["content"]
    if isinstance(content, str):
        return {"role": role, "content": content}
    parts = [_part(part, f"{param}.content[{j}]", role) for j, part in enumerate(content)]
    if role == "assistant":  # a chat assistant message takes text only
        return {"role": role, "content": "".join(part["text"] for part in parts)}
    return {"role": role, "content": parts}


def _part(part: dict[str, Any], param: str, role: str) -> dict[str, Any]:
    kind = part["type"]
    if kind in ("input_text", "output_text"):
        return {"type": "text", "text": part["text"]}
    if kind == "refusal":
        return {"type": "text", "text": part["refusal"]}
    if role != "user":
        message = f"A chat model takes images and files in user messages only, not in {role} messages."
        raise invalid(param, message, code="unsupported_value")
    return _image(part, param) if kind == "input_image" else _file(part, param)


def _image(part: dict[str, Any], param: str) -> dict[str, Any]:
    if part.get("image_url") is None:
        message = "An image given by 'file_id' cannot be sent on to a chat model, which takes images by URL only: "
        message += "send 'image_url' (a URL or a data URL)."
        raise invalid(f"{param}.file_id", message, code="unsupported_value")
    image = {"url": part["image_url"]}
    if part.get("detail") in CHAT_DETAIL:
        image["detail"] = part["detail"]
    return {"type": "image_url", "image_url": image}


def _file(part: dict[str, Any], param: str) -> dict[str, Any]:
    file = {name: part[name] for name in ("file_data", "file_id", "filename") if part.get(name) is not None}
    if "file_data" not in file and "file_id" not in file:
        message = "A file given by 'file_url' cannot be sent on to a chat model; send 'file_data' or 'file_id'."
        raise invalid(f"{param}.file_url", message, code="unsupported_value")
    return {"type": "file", "file": file}


def _options(body: dict[str, Any]) -> dict[str, Any]:
    """The chat fields of a Responses body; `metadata` is left out, as chat keeps it only for stored completions."""
    options = {name: body[name] for name in COPIED if body.get(name) is not None}
    if (effort := (body.get("reasoning") or {}).get("effort")) is not None:
        options["reasoning_effort"] = effort
    if body.get("max_output_tokens") is not None:
        options["max_completion_tokens"] = body["max_output_tokens"]
    text = body.get("text") or {}
    if text.get("verbosity") is not None:
        options["verbosity"] = text["verbosity"]
    if (fmt := text.get("format")) and fmt["type"] != "text":
        options["response_format"] = _response_format(fmt)
    return options | _tools(body)


def _response_format(fmt: dict[str, Any]) -> dict[str, Any]:
    if fmt["type"] == "json_object":
        return {"type": "json_object"}
    schema = {name: fmt[name] for name in ("name", "schema", "strict", "description") if fmt.get(name) is not None}
    return {"type": "json_schema", "json_schema": schema}


def _tools(body: dict[str, Any]) -> dict[str, Any]:
    """Function tools only: a chat upstream cannot run hosted, custom or namespaced tools, so those are dropped."""
    tools = [_function(tool) for tool in body.get("tools") or () if tool["type"] == "function"]
    if not tools:
        return {}
    options: dict[str, Any] = {"tools": tools}
    if (choice := body.get("tool_choice")) is not None:
        options["tool_choice"] = _tool_choice(choice)
    if body.get("parallel_tool_calls") is not None:
        options["parallel_tool_calls"] = body["parallel_tool_calls"]
    return options


def _function(tool: dict[str, Any]) -> dict[str, Any]:
    names = ("name", "description", "parameters", "strict")
    return {"type": "function", "function": {name: tool[name] for name in names if tool.get(name) is not None}}


def _tool_choice(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(choice, str):
        return choice
    if choice["type"] == "function":
        return {"type": "function", "function": {"name": choice["name"]}}
    return "auto"  # a hosted tool or an allowed-tools list: the chat model may call any of its function tools
