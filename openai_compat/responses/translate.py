"""A Responses request as a chat request, for the one chat pipeline and the upstreams that speak only chat.

It drops what a chat model cannot take (reasoning items, references, custom and hosted tools) and refuses, naming
the `param`, only content it would otherwise lose (an image given by file id, a file by URL, an image outside a user
message). `ChatRequest.native` keeps the Responses body for upstreams that speak `/responses` themselves.
"""

from __future__ import annotations

from typing import Any

from openai_compat.errors import invalid
from openai_compat.responses.request import SAME_AS_CHAT, ResponsesRequest, kind_of
from openai_compat.schema import ChatRequest

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
    if all(part["type"] == "text" for part in parts):  # a plain string: servers that take no parts take this
        # an assistant's parts are pieces of one answer; a user's or developer's are separate texts
        return {"role": role, "content": ("" if role == "assistant" else "\n").join(p["text"] for p in parts)}
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
