"""Turn an `Answer` into the Responses API: its typed stream events, or one `Response` object.

One `Builder` serves both: it turns `Delta`s into output items (reasoning, message, function calls) and the
events that announce them, in the order the SDK stream helpers and the Codex CLI need. Events get their
`sequence_number` only as they are sent, so an event decided late (a failure) still takes the next number.
"""

from __future__ import annotations

import copy
import itertools
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import orjson

from common.ids import unique_hex
from common.logs import current_request_id
from openai_compat.errors import APIError, fault
from openai_compat.lifecycle import Starting
from openai_compat.schema import ChatRequest
from openai_compat.services import Answer
from openai_compat.upstreams.base import Delta, UpstreamError
from openai_compat.usage import estimate_usage

if TYPE_CHECKING:
    from openai_compat.responses.request import ResponsesRequest

Event = dict[str, Any]
Finish = Callable[[dict[str, Any]], Awaitable[None]]
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}  # chat finish → Responses reason


def new_id(prefix: str) -> str:
    return f"{prefix}_{unique_hex()}"


def _given(body: dict[str, Any], key: str, default: Any) -> Any:
    value = body.get(key)
    return default if value is None else value


def response_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """Chat-form usage (what adapters report and the pool records) as a `ResponseUsage`."""
    prompt, completion = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
    cached = usage.get("prompt_tokens_details") or {}
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": cached.get("cached_tokens") or 0,
            "cache_write_tokens": cached.get("cache_write_tokens") or 0,
        },
        "output_tokens": completion,
        "output_tokens_details": {
            "reasoning_tokens": (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
        },
        "total_tokens": usage.get("total_tokens") or prompt + completion,
    }


class Builder:
    """The output items of one answer and the events announcing them. A reasoning or message item stays open
    until an item of another kind starts; function calls stay open to the end (upstreams interleave them)."""

    def __init__(self, request: ResponsesRequest, response_id: str) -> None:
        self.request, self.id, self.created_at = request, response_id, int(time.time())
        self.output: list[dict[str, Any]] = []
        self.open: dict[str, Any] | None = None  # the open reasoning or message item
        self.calls: dict[int, dict[str, Any]] = {}  # function-call items by their chat fragments' `index`
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None  # chat form, when the upstream reported it
        self.generated: list[str] = []  # every generated text, for an estimate when it did not

    def feed(self, delta: Delta) -> list[Event]:
        events: list[Event] = []
        if delta.reasoning:
            events += self._reasoning(delta.reasoning)
        if delta.encrypted_reasoning:
            events += self._encrypted(delta.encrypted_reasoning)
        if delta.content:
            events += self._text(delta.content)
        for part in delta.tool_calls or ():
            events += self._call(part)
        self.finish_reason = delta.finish_reason or self.finish_reason
        self.usage = delta.usage or self.usage
        return events

    def start(self) -> list[Event]:
        response = self.response("in_progress")
        return [{"type": f"response.{kind}", "response": response} for kind in ("created", "in_progress")]

    def close(self, status: str = "") -> list[Event]:
        """Close every item still open: `completed`, or `incomplete` when the answer was cut short."""
        status = status or ("incomplete" if self.finish_reason in INCOMPLETE else "completed")
        events = self._close_open(status)
        for item in self.calls.values():
            if item["status"] == "in_progress":
                events += self._close_call(item, status)
        return events

    def final(self, usage: dict[str, Any]) -> dict[str, Any]:
        """The `Response` of a finished answer (completed, or incomplete with its reason)."""
        reason = INCOMPLETE.get(self.finish_reason or "")
        if reason is None:
            return self.response("completed", usage=response_usage(usage))
        return self.response("incomplete", usage=response_usage(usage), incomplete={"reason": reason})

    def failed(self, status: int, message: str) -> list[Event]:
        """The events ending an answer that failed: its open items cut short, then `response.failed`."""
        events = self.close("incomplete")
        code = "rate_limit_exceeded" if status == 429 else "server_error"
        return [*events, terminal(self.response("failed", error={"code": code, "message": message}))]

    def response(
        self, status: str, *, usage: dict | None = None, error: dict | None = None, incomplete: dict | None = None
    ) -> dict[str, Any]:
        body, request = self.request.body, self.request
        obj = {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "completed_at": int(time.time()) if status == "completed" else None,
            "error": error,
            "incomplete_details": incomplete,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "model": request.model,
            "output": copy.deepcopy(self.output),
            "parallel_tool_calls": _given(body, "parallel_tool_calls", True),
            "previous_response_id": request.previous_response_id,
            "reasoning": {"effort": None, "summary": None, **(body.get("reasoning") or {})},
            "service_tier": "default",
            "store": request.store,
            "temperature": _given(body, "temperature", 1.0),
            "text": {"format": {"type": "text"}, **(body.get("text") or {})},
            "tool_choice": _given(body, "tool_choice", "auto"),
            "tools": [_echoed(tool) for tool in body.get("tools") or ()],
            "top_p": _given(body, "top_p", 1.0),
            "truncation": _given(body, "truncation", "disabled"),
            "metadata": body.get("metadata") or {},
        }
        if isinstance(body.get("user"), str):  # a string or absent in the spec, never null
            obj["user"] = body["user"]
        if usage is not None:
            obj["usage"] = usage
        return obj

    def _reasoning(self, text: str) -> list[Event]:
        events, item = self._switch("reasoning")
        if not item["summary"]:
            item["summary"].append({"type": "summary_text", "text": ""})
            part = {"type": "summary_text", "text": ""}
            events.append(self._of(item, "response.reasoning_summary_part.added", summary_index=0, part=part))
        item["summary"][0]["text"] += text
        self.generated.append(text)
        return [*events, self._of(item, "response.reasoning_summary_text.delta", summary_index=0, delta=text)]

    def _encrypted(self, content: str) -> list[Event]:
        """Attach to the open reasoning item, else to the last one (already sent as done: only the final object
        carries it then), and with none to an empty one of its own."""
        if self.open is None or self.open["type"] != "reasoning":
            earlier = [item for item in self.output if item["type"] == "reasoning"]
            if earlier:
                earlier[-1]["encrypted_content"] = content
                return []
        events, item = self._switch("reasoning")
        item["encrypted_content"] = content
        return events

    def _text(self, text: str) -> list[Event]:
        events, item = self._switch("message")
        if not item["content"]:
            item["content"].append({"type": "output_text", "text": "", "annotations": [], "logprobs": []})
            part = copy.deepcopy(item["content"][0])
            events.append(self._of(item, "response.content_part.added", content_index=0, part=part))
        item["content"][0]["text"] += text
        self.generated.append(text)
        delta = self._of(item, "response.output_text.delta", content_index=0, delta=text, logprobs=[])
        return [*events, delta]

    def _call(self, part: dict[str, Any]) -> list[Event]:
        """One chat-style fragment: the first of an index opens the call, later ones add to its arguments."""
        function, index, events = part.get("function") or {}, part.get("index", 0), []
        item = self.calls.get(index)
        if item is None:
            events = self._close_open("completed")
            item = {"type": "function_call", "id": new_id("fc"), "call_id": part.get("id") or new_id("call")}
            item |= {"name": function.get("name") or "", "arguments": "", "status": "in_progress"}
            self.calls[index] = item
            events.append(self._add(item))
        elif function.get("name"):
            item["name"] += function["name"]
        if arguments := function.get("arguments"):
            item["arguments"] += arguments
            self.generated.append(arguments)
            events.append(self._of(item, "response.function_call_arguments.delta", delta=arguments))
        return events

    def _switch(self, kind: str) -> tuple[list[Event], dict[str, Any]]:
        """Make the open item one of `kind`, closing an open item of another kind: the events, and the item."""
        if self.open is not None and self.open["type"] == kind:
            return [], self.open
        events = self._close_open("completed")
        if kind == "reasoning":
            item = {"type": "reasoning", "id": new_id("rs"), "summary": [], "status": "in_progress"}
        else:
            head = {"type": "message", "id": new_id("msg"), "status": "in_progress", "role": "assistant"}
            item = {**head, "content": []}
        self.open = item
        return [*events, self._add(item)], item

    def _close_open(self, status: str) -> list[Event]:
        item, self.open = self.open, None
        if item is None:
            return []
        events: list[Event] = []
        if item["type"] == "reasoning" and item["summary"]:
            part = copy.deepcopy(item["summary"][0])
            events.append(self._of(item, "response.reasoning_summary_text.done", summary_index=0, text=part["text"]))
            events.append(self._of(item, "response.reasoning_summary_part.done", summary_index=0, part=part))
        if item["type"] == "message":
            part = copy.deepcopy(item["content"][0])
            done = self._of(item, "response.output_text.done", content_index=0, text=part["text"], logprobs=[])
            events += [done, self._of(item, "response.content_part.done", content_index=0, part=part)]
        return [*events, self._done(item, status)]

    def _close_call(self, item: dict[str, Any], status: str) -> list[Event]:
        fields = {"name": item["name"], "arguments": item["arguments"]}
        return [self._of(item, "response.function_call_arguments.done", **fields), self._done(item, status)]

    def _add(self, item: dict[str, Any]) -> Event:
        self.output.append(item)
        return {"type": "response.output_item.added", "output_index": len(self.output) - 1, "item": copy.deepcopy(item)}

    def _done(self, item: dict[str, Any], status: str) -> Event:
        item["status"] = status
        return {"type": "response.output_item.done", "output_index": self._index(item), "item": copy.deepcopy(item)}

    def _of(self, item: dict[str, Any], kind: str, **fields: Any) -> Event:
        return {"type": kind, "item_id": item["id"], "output_index": self._index(item), **fields}

    def _index(self, item: dict[str, Any]) -> int:
        return next(i for i, known in enumerate(self.output) if known is item)


def _echoed(tool: dict[str, Any]) -> dict[str, Any]:
    """A tool as the response repeats it: a function tool always says `parameters` and `strict` (null when unsent)."""
    return {"parameters": None, "strict": None, **tool} if tool.get("type") == "function" else tool


def terminal(response: dict[str, Any]) -> Event:
    return {"type": f"response.{response['status']}", "response": response}


class Numbered:
    """SSE frames of a stream's events, numbered from 0 in the order they are sent."""

    def __init__(self) -> None:
        self._next = itertools.count()

    def __call__(self, events: Iterable[Event]) -> bytes:
        return b"".join(self._frame({**event, "sequence_number": next(self._next)}) for event in events)

    @staticmethod
    def _frame(event: Event) -> bytes:
        return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def stream_events(
    starting: Starting, request: ResponsesRequest, chat: ChatRequest, response_id: str, finish: Finish
) -> AsyncGenerator[bytes, None]:
    """The whole SSE body, kept alive until the answer starts (`Starting.frames`), then its events. A start that
    failed still gets `response.created`, then `response.failed` (clients expect created first)."""
    return starting.frames(
        lambda answer: _answer_events(answer, request, chat, response_id, finish),
        lambda err: _failed_start(request, response_id, err),
    )


def _failed_start(request: ResponsesRequest, response_id: str, err: APIError) -> bytes:
    builder = Builder(request, response_id)
    return Numbered()([*builder.start(), *builder.failed(err.status, err.message)])


async def _answer_events(
    answer: Answer, request: ResponsesRequest, chat: ChatRequest, response_id: str, finish: Finish
) -> AsyncIterator[bytes]:
    builder, numbered = Builder(request, response_id), Numbered()
    try:
        yield numbered(builder.start())
        async for delta in answer:
            if events := builder.feed(delta):
                yield numbered(events)
        answer.usage = builder.usage or estimate_usage(chat, "".join(builder.generated))
        yield numbered(builder.close())
        response = builder.final(answer.usage)
        await finish(response)
        yield numbered([terminal(response)])
    except UpstreamError as err:
        yield numbered(builder.failed(err.status, f"The upstream failed mid-answer: {err.message}"))
    except Exception as exc:  # the headers are out: a fault can only end the stream with `response.failed`
        failure = fault(exc, current_request_id(), "a stream")
        yield numbered(builder.failed(failure.status, failure.message))
    finally:
        await answer.close()


async def response_object(
    answer: Answer, request: ResponsesRequest, chat: ChatRequest, response_id: str, finish: Finish
) -> dict[str, Any]:
    """The non-stream reply: the same builder, its events unused. The pipeline read a non-stream answer whole
    before handing it over (failing over until then), so nothing here can fail any more."""
    builder = Builder(request, response_id)
    try:
        async for delta in answer:
            builder.feed(delta)
        answer.usage = builder.usage or estimate_usage(chat, "".join(builder.generated))
    finally:
        await answer.close()
    builder.close()
    response = builder.final(answer.usage)
    await finish(response)
    return response
