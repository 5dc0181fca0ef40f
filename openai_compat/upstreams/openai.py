"""Adapter for any OpenAI-compatible server (OpenAI, vLLM, llama.cpp, Ollama): streams straight through.

A chat request goes to `/chat/completions`. A Responses API request goes to the server's own `/responses` when
the credential says it speaks it (`wire_api == "responses"`), else it goes to chat as its chat translation.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any
from urllib.parse import urlsplit

import orjson
from django.conf import settings

from openai_compat.schema import ChatRequest
from openai_compat.upstreams.base import Action, Delta, UpstreamCredential, UpstreamError
from openai_compat.upstreams.responses_events import Translator, relay, replayable, with_encrypted_reasoning
from openai_compat.upstreams.transport import error_text, open_stream, retry_after, sse_data

# Status codes that say the request itself is wrong: another key would get the same answer.
DETERMINISTIC = {400, 404, 413, 422}


def api_url(base_url: str, path: str) -> str:
    """`base_url` is the API root (`https://api.openai.com/v1`); a bare origin gets `/v1`."""
    base = base_url.rstrip("/")
    if urlsplit(base).path in ("", "/"):
        base += "/v1"
    return base + path


def headers_for(cred: UpstreamCredential) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {cred.api_key}",
        "Content-Type": "application/json",
        "Accept": "text/event-stream",
    }


class OpenAICompatible:
    calls_tools = True

    def stream(self, cred: UpstreamCredential, request: ChatRequest, slug: str) -> AsyncGenerator[Delta, None]:
        if request.native is not None and cred.wire_api == "responses":
            return self._responses(cred, request.native, slug)
        return self._chat(cred, request, slug)

    async def _responses(
        self, cred: UpstreamCredential, native: dict[str, Any], slug: str
    ) -> AsyncGenerator[Delta, None]:
        """The client's own Responses request; nothing is stored upstream (this gateway keeps the history)."""
        items = [replayable(item) for item in native.get("input") or ()]
        body = {
            **native,
            "model": slug,
            "input": [item for item in items if item is not None],
            "stream": True,
            "store": False,
            "include": with_encrypted_reasoning(native.get("include") or [], native.get("reasoning")),
        }
        response = await open_stream(api_url(cred.base_url, "/responses"), cred, headers_for(cred), body)
        read_to_end = False
        try:
            if response.status_code != 200:
                raise failure(response.status_code, await response.acontent(), response.headers, cred)
            async for delta in relay(response, Translator(cred)):
                yield delta
            read_to_end = True
        finally:
            await response.aclose(finished=read_to_end)

    async def _chat(self, cred: UpstreamCredential, request: ChatRequest, slug: str) -> AsyncGenerator[Delta, None]:
        body = {**request.body, "model": slug, "stream": True, "stream_options": {"include_usage": True}}
        response = await open_stream(api_url(cred.base_url, "/chat/completions"), cred, headers_for(cred), body)
        finished_body = False
        try:
            if response.status_code != 200:
                raise failure(response.status_code, await response.acontent(), response.headers, cred)
            finished = False
            async for data in sse_data(response):
                if data == b"[DONE]":
                    finished_body = True
                    return
                chunk = orjson.loads(data)
                if chunk.get("error"):
                    raise UpstreamError(error_text(data, cred))
                delta = to_delta(chunk)
                finished = finished or delta.finish_reason is not None
                yield delta
            finished_body = True
            if not finished:
                raise UpstreamError("The upstream closed the stream before the answer was complete.")
        finally:
            await response.aclose(finished=finished_body)


def to_delta(chunk: dict) -> Delta:
    usage = chunk.get("usage")
    choices = chunk.get("choices") or [{}]
    choice = choices[0]
    delta = choice.get("delta") or {}
    return Delta(
        content=delta.get("content") or "",
        reasoning=delta.get("reasoning_content") or delta.get("reasoning") or "",
        tool_calls=delta.get("tool_calls"),
        finish_reason=choice.get("finish_reason"),
        usage={k: usage[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens") if k in usage}
        if usage
        else None,
    )


def failure(status: int, raw: bytes, headers, cred: UpstreamCredential) -> UpstreamError:
    reason = error_text(raw, cred)
    if status in DETERMINISTIC:
        return UpstreamError(reason, status=status, action=Action.FATAL, type="invalid_request_error")
    if status == 401:
        return UpstreamError(reason, status=502, action=Action.INVALID)
    if status == 429:
        wait = retry_after(headers, settings.DEFAULT_COOLDOWN_SECONDS)
        return UpstreamError(reason, status=429, action=Action.COOLDOWN, retry_after=wait)
    return UpstreamError(f"Upstream answered {status}: {reason}", status=502)
