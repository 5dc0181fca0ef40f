"""Turn an `Answer` into the OpenAI wire format: an SSE body or one `chat.completion` object."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import replace
from typing import Any

from django.conf import settings

from common.ids import unique_hex
from common.logs import current_request_id
from openai_compat import sse
from openai_compat.errors import APIError, fault
from openai_compat.lifecycle import Starting
from openai_compat.schema import ChatRequest
from openai_compat.services import Answer
from openai_compat.upstreams.base import Delta, UpstreamError
from openai_compat.usage import estimate_usage


def new_id() -> str:
    return "chatcmpl-" + unique_hex()


async def deltas(answer: Answer) -> AsyncIterator[Delta]:
    """The answer's deltas; with `REASONING_INLINE`, reasoning moves into `content` as `<think>…</think>`
    for clients that cannot show a `reasoning_content` field."""
    if not settings.REASONING_INLINE:
        async for delta in answer:
            yield delta
        return
    thinking = False
    async for delta in answer:
        prefix = ""
        if delta.reasoning and not thinking:
            prefix, thinking = "<think>\n", True
        if thinking and (delta.content or delta.finish_reason):
            prefix, thinking = prefix + delta.reasoning + "\n</think>\n\n", False
            yield replace(delta, reasoning="", content=prefix + delta.content)
            continue
        yield replace(delta, reasoning="", content=prefix + delta.reasoning + delta.content)


def _delta_body(delta: Delta) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if delta.reasoning:
        body["reasoning_content"] = delta.reasoning
    if delta.content:
        body["content"] = delta.content
    if delta.tool_calls:
        body["tool_calls"] = delta.tool_calls
    return body


async def sse_stream(answer: Answer, request: ChatRequest) -> AsyncIterator[bytes]:
    """Chunks with one id, `role` in the first delta only, a finish chunk, an optional usage chunk, [DONE]."""
    cid, created, model = new_id(), int(time.time()), request.model
    role_sent, finish, usage, text = False, "stop", None, []
    try:
        async for delta in deltas(answer):
            usage = delta.usage or usage
            finish = delta.finish_reason or finish
            body = _delta_body(delta)
            if not body:
                continue
            if not role_sent:
                body = {"role": "assistant", **body}
                role_sent = True
            text.append(delta.content)
            yield sse.frame(sse.chunk(cid, created, model, body))
        yield sse.frame(sse.chunk(cid, created, model, {}, finish))
        answer.usage = usage or estimate_usage(request, "".join(text))
        if request.include_usage:
            yield sse.frame(sse.usage_chunk(cid, created, model, answer.usage))
        yield sse.DONE
    except UpstreamError as err:
        yield sse.frame(APIError(502, f"The upstream failed mid-answer: {err.message}", type=err.type).body())
    except Exception as exc:  # the headers are out: a fault can only end the stream with an error event
        yield sse.frame(fault(exc, current_request_id(), "a stream").body())
    finally:
        await answer.close()


def sse_events(starting: Starting, request: ChatRequest) -> AsyncGenerator[bytes, None]:
    """The whole SSE body, kept alive until the answer starts (`Starting.frames`); a failure before the first
    chunk becomes an error event."""
    return starting.frames(lambda answer: sse_stream(answer, request), lambda err: sse.frame(err.body()))


async def completion(answer: Answer, request: ChatRequest) -> dict[str, Any]:
    """Collect the same stream into one `chat.completion`; the pipeline read a non-stream answer whole
    before handing it over (failing over until then), so nothing here can fail any more."""
    content: list[str] = []
    reasoning: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    finish, usage = "stop", None
    try:
        async for delta in deltas(answer):
            content.append(delta.content)
            reasoning.append(delta.reasoning)
            for call in delta.tool_calls or ():
                _merge_tool_call(calls, call)
            finish = delta.finish_reason or finish
            usage = delta.usage or usage
        text = "".join(content)
        answer.usage = usage or estimate_usage(request, text)
    finally:
        await answer.close()
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None, "refusal": None}
    if any(reasoning):
        message["reasoning_content"] = "".join(reasoning)
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return sse.completion(new_id(), int(time.time()), request.model, message, finish, answer.usage)


def _merge_tool_call(calls: dict[int, dict[str, Any]], part: dict[str, Any]) -> None:
    """Stream tool-call fragments arrive by index; names and arguments are concatenated."""
    call = calls.setdefault(
        part.get("index", 0), {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
    )
    call["id"] = part.get("id") or call["id"]
    function = part.get("function") or {}
    call["function"]["name"] += function.get("name") or ""
    call["function"]["arguments"] += function.get("arguments") or ""
