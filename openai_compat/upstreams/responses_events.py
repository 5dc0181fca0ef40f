"""What the upstreams that speak the Responses API (the Codex backend, an OpenAI-compatible `/responses`) share:
their streams as chat `Delta`s, and the rules for the items a client replays to them.

The answer is built from the `output_item.done` items (deltas are relayed as they come, and each finished
item adds whatever its deltas left out), because `response.completed` may carry `output: []`. A stream that
closes without `response.completed` (or `response.incomplete`) is a failure. A finished reasoning item's
`encrypted_content` is relayed once, so that a Responses client can replay it on its next turn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
from django.conf import settings

from common.transfer import Transfer
from openai_compat.upstreams.base import Action, Delta, UpstreamCredential, UpstreamError
from openai_compat.upstreams.transport import scrub, sse_data

INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}
REQUEST_FAULTS = {"context_length_exceeded", "invalid_prompt"}  # another credential would fail the same way
LIMITED = {"rate_limit_exceeded", "insufficient_quota"}


class Translator:
    """Responses events in, chat `Delta`s out; remembers what each output item has sent so far.

    Subclasses map an upstream's own failures (`failure`) and events (`other`)."""

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
            raise self.failure((event.get("response") or {}).get("error") or {})
        elif kind == "error":
            error = event.get("error")
            raise self.failure(error if isinstance(error, dict) else event)
        else:
            yield from self.other(event)

    def failure(self, error: dict[str, Any]) -> UpstreamError:
        """A `response.failed` (or `error`) event after the 200."""
        code = str(error.get("code") or error.get("type") or "")
        message = scrub(str(error.get("message") or code or "no reason given"), self.cred)
        if code in REQUEST_FAULTS:
            return UpstreamError(message, status=400, action=Action.FATAL, type="invalid_request_error", code=code)
        if code in LIMITED:
            wait = settings.DEFAULT_COOLDOWN_SECONDS
            return UpstreamError(message, status=429, action=Action.COOLDOWN, retry_after=wait, code=code)
        return UpstreamError(f"The upstream failed the answer: {message}", code=code or None)

    def other(self, event: dict[str, Any]) -> Iterator[Delta]:
        """An event this class does not know: ignored."""
        return iter(())

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
            if encrypted := item.get("encrypted_content"):
                yield Delta(encrypted_reasoning=encrypted)
        elif kind == "function_call" and index not in self.calls:
            yield self._call(index, item, item.get("arguments") or "")
        elif kind == "function_call":
            yield from self._arguments(index, _rest(item.get("arguments") or "", self.sent[index]))

    def _end(self, response: dict[str, Any], incomplete: bool) -> Iterator[Delta]:
        for index, item in enumerate(response.get("output") or ()):
            if index not in self.done_items and isinstance(item, dict):
                yield from self._done(index, item)
        self.finished = True
        reason = (response.get("incomplete_details") or {}).get("reason") or ""
        finish = INCOMPLETE.get(reason, "length") if incomplete else None
        usage = response.get("usage")
        yield Delta(
            finish_reason=finish or ("tool_calls" if self.calls else "stop"),
            usage=chat_usage(usage) if isinstance(usage, dict) else None,
        )


def replayable(item: dict[str, Any]) -> dict[str, Any] | None:
    """An input item as an upstream that stores nothing (`store: false`) can take it: without our ids (they name
    nothing there); None for a reference to a stored item, or a reasoning item it cannot decrypt."""
    kind = item.get("type")
    if kind == "item_reference" or (kind == "reasoning" and not item.get("encrypted_content")):
        return None
    return {key: value for key, value in item.items() if key != "id"}


def with_encrypted_reasoning(include: list[str], reasoning: dict[str, Any] | None) -> list[str]:
    """With `store: false` a reasoning item is only replayable encrypted: ask for it whenever reasoning is asked."""
    wanted = "reasoning.encrypted_content"
    return [*include, wanted] if reasoning and wanted not in include else list(include)


async def relay(response: Transfer, answer: Translator) -> AsyncIterator[Delta]:
    """The deltas of an upstream's 200 Responses stream, to its end (a `[DONE]` line some servers add is skipped)."""
    async for data in sse_data(response):
        if data and data != b"[DONE]":
            for delta in answer.feed(orjson.loads(data)):
                yield delta
    if not answer.finished:
        raise UpstreamError("The upstream closed the stream before response.completed.")


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
