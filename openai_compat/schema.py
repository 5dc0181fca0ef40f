"""Parsing and validation of a chat-completion request, with errors that name the offending `param`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from openai_compat.errors import APIError, invalid

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]
    stream: bool
    include_usage: bool
    body: dict[str, Any]  # the whole request, for adapters that forward it as it is


def parse_chat_request(raw: bytes) -> ChatRequest:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise invalid(None, "We could not parse the JSON body of your request. It must be a JSON object.") from None
    if not isinstance(body, dict):
        raise invalid(None, "The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model", "you must provide a model parameter (a non-empty string).")
    messages = _messages(body.get("messages"))
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise invalid("stream", "'stream' must be a boolean.")
    options = body.get("stream_options")
    if options is not None and (not isinstance(options, dict) or not stream):
        raise invalid("stream_options", "'stream_options' must be an object and is only allowed when stream is true.")
    if body.get("n", 1) not in (1, None):
        raise invalid("n", "Only n=1 is supported.")
    include_usage = bool(options and options.get("include_usage"))
    return ChatRequest(model=model, messages=messages, stream=stream, include_usage=include_usage, body=body)


def _messages(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise invalid("messages", "'messages' must be a non-empty array.")
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            raise invalid(f"messages[{i}]", f"messages[{i}] must be an object.")
        if message.get("role") not in ROLES:
            raise invalid(f"messages[{i}].role", f"messages[{i}].role must be one of {', '.join(sorted(ROLES))}.")
        content = message.get("content")
        if content is None and message["role"] != "assistant":
            raise invalid(f"messages[{i}].content", f"messages[{i}].content is required.")
        if content is not None and not isinstance(content, str | list):
            raise invalid(f"messages[{i}].content", f"messages[{i}].content must be a string or an array of parts.")
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
