"""Adapter for the Codex backend of ChatGPT plans (`POST {CODEX_BASE_URL}/responses`, protocol A2 to A5).

The backend speaks only the streamed Responses API; a non-stream client is served by collecting the same
stream. The answer is built from the `output_item.done` items (deltas are relayed as they come, and each
finished item adds whatever its deltas left out), because `response.completed` may carry `output: []`. A
stream that closes without `response.completed` (or `response.incomplete`) is a failure.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
from django.conf import settings

from openai_compat.http import USER_AGENT
from openai_compat.schema import ChatRequest
from openai_compat.upstreams.base import Delta, UpstreamCredential, UpstreamError
from openai_compat.upstreams.codex_body import codex_body
from openai_compat.upstreams.codex_limits import failure, quota_from_event, quota_from_headers, stream_failure
from openai_compat.upstreams.transport import close_stream, open_stream, sse_data

INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}


def responses_url(cred: UpstreamCredential) -> str:
    return (cred.base_url or settings.CODEX_BASE_URL).rstrip("/") + "/responses"


def headers_for(cred: UpstreamCredential) -> dict[str, str]:
    """An honest client identity: chat2api's own User-Agent and originator, never Codex CLI's."""
    return {
        "Authorization": f"Bearer {cred.access_token}",
        "ChatGPT-Account-ID": cred.account_id,
        "User-Agent": USER_AGENT,
        "originator": "chat2api",
        "Content-Type": "application/json",
        "Accept": "text/event-stream",
    }


class Codex:
    calls_tools = True

    async def stream(self, cred: UpstreamCredential, request: ChatRequest, slug: str) -> AsyncIterator[Delta]:
        body = await codex_body(request, slug, cred)
        response = await open_stream(responses_url(cred), cred, headers_for(cred), body)
        read_to_end = False
        try:
            if response.status_code != 200:
                raise failure(response.status_code, await response.acontent(), response.headers, cred)
            if quota := quota_from_headers(response.headers):
                yield Delta(quota=quota)
            answer = Translator(cred)
            async for data in sse_data(response):
                for delta in answer.feed(orjson.loads(data)):
                    yield delta
            read_to_end = True
            if not answer.finished:
                raise UpstreamError("The Codex backend closed the stream before response.completed.")
        finally:
            await close_stream(response, finished=read_to_end)


class Translator:
    """Responses events in, chat `Delta`s out; remembers what each output item has sent so far."""

    def __init__(self, cred: UpstreamCredential) -> None:
        self.cred = cred
        self.sent: dict[int, str] = {}  # output_index → text, reasoning or arguments relayed so far
        self.calls: dict[int, int] = {}  # output_index of a function call → its tool_calls index
        self.parts: dict[int, int] = {}  # output_index of a reasoning item → its last summary_index
        self.done_items: set[int] = set()
        self.reasoned = False
        self.finished = False

    def feed(self, event: dict[str, Any]) -> Iterator[Delta]:
        kind, index = event.get("type"), event.get("output_index", 0)
        if self.finished:
            return
        if kind == "response.output_text.delta":
            yield from self._text(index, event.get("delta") or "")
        elif kind == "response.reasoning_summary_text.delta":
            yield from self._reasoning(index, event.get("summary_index", 0), event.get("delta") or "")
        elif kind == "response.output_item.added" and (event.get("item") or {}).get("type") == "function_call":
            yield self._call(index, event["item"], "")
        elif kind == "response.function_call_arguments.delta" and index in self.calls:
            yield from self._arguments(index, event.get("delta") or "")
        elif kind == "response.output_item.done":
            yield from self._done(index, event.get("item") or {})
        elif kind in ("response.completed", "response.incomplete"):
            yield from self._end(event.get("response") or {}, kind == "response.incomplete")
        elif kind == "response.failed":
            raise stream_failure((event.get("response") or {}).get("error") or {}, self.cred)
        elif kind == "error":
            raise stream_failure(event.get("error") if isinstance(event.get("error"), dict) else event, self.cred)
        elif kind == "codex.rate_limits" and (quota := quota_from_event(event)):
            yield Delta(quota=quota)

    def _text(self, index: int, text: str) -> Iterator[Delta]:
        if text:
            self.sent[index] = self.sent.get(index, "") + text
            yield Delta(content=text)

    def _reasoning(self, index: int, part: int, text: str) -> Iterator[Delta]:
        """Summary parts of one item are separated by a blank line, and so are reasoning items."""
        if not text:
            return
        gap = ""
        if self.parts.get(index, part) != part:
            gap = "\n\n"
            self.sent[index] = self.sent.get(index, "") + gap
        elif index not in self.parts and self.reasoned:
            gap = "\n\n"  # a new item: the gap belongs to neither item's own text
        self.parts[index], self.reasoned = part, True
        self.sent[index] = self.sent.get(index, "") + text
        yield Delta(reasoning=gap + text)

    def _call(self, index: int, item: dict[str, Any], arguments: str) -> Delta:
        self.calls[index] = len(self.calls)
        self.sent[index] = arguments
        function = {"name": item.get("name") or "", "arguments": arguments}
        call = {"index": self.calls[index], "id": item.get("call_id") or "", "type": "function", "function": function}
        return Delta(tool_calls=[call])

    def _arguments(self, index: int, text: str) -> Iterator[Delta]:
        if text:
            self.sent[index] += text
            yield Delta(tool_calls=[{"index": self.calls[index], "function": {"arguments": text}}])

    def _done(self, index: int, item: dict[str, Any]) -> Iterator[Delta]:
        """The complete item: whatever its deltas did not carry is sent now."""
        self.done_items.add(index)
        kind = item.get("type")
        if kind == "message":
            parts = item.get("content") or ()
            full = "".join(p.get("text") or p.get("refusal") or "" for p in parts if isinstance(p, dict))
            yield from self._text(index, _rest(full, self.sent.get(index, "")))
        elif kind == "reasoning":
            texts = [s.get("text") or "" for s in item.get("summary") or () if isinstance(s, dict)]
            rest = _rest("\n\n".join(t for t in texts if t), self.sent.get(index, ""))
            yield from self._reasoning(index, self.parts.get(index, 0), rest)
        elif kind == "function_call" and index not in self.calls:
            yield self._call(index, item, item.get("arguments") or "")
        elif kind == "function_call":
            yield from self._arguments(index, _rest(item.get("arguments") or "", self.sent[index]))

    def _end(self, response: dict[str, Any], incomplete: bool) -> Iterator[Delta]:
        for index, item in enumerate(response.get("output") or ()):
            if index not in self.done_items and isinstance(item, dict):
                yield from self._done(index, item)
        self.finished = True
        reason = (response.get("incomplete_details") or {}).get("reason")
        finish = INCOMPLETE.get(reason, "length") if incomplete else None
        usage = response.get("usage")
        yield Delta(
            finish_reason=finish or ("tool_calls" if self.calls else "stop"),
            usage=chat_usage(usage) if isinstance(usage, dict) else None,
        )


def _rest(full: str, sent: str) -> str:
    """What of an item's full text has not been relayed; nothing when the deltas said something else."""
    return full[len(sent) :] if full.startswith(sent) else ""


def chat_usage(usage: dict[str, Any]) -> dict[str, Any]:
    prompt, completion = usage.get("input_tokens") or 0, usage.get("output_tokens") or 0
    cached = (usage.get("input_tokens_details") or {}).get("cached_tokens") or 0
    reasoning = (usage.get("output_tokens_details") or {}).get("reasoning_tokens") or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": usage.get("total_tokens") or prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }
