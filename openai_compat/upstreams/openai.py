"""Adapter for any OpenAI-compatible server (OpenAI, vLLM, llama.cpp, Ollama): streams straight through."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import orjson
from django.conf import settings

from openai_compat.schema import ChatRequest
from openai_compat.upstreams.base import Action, Delta, UpstreamCredential, UpstreamError
from openai_compat.upstreams.transport import close_stream, error_text, open_stream, retry_after, sse_data

# Status codes that say the request itself is wrong: another key would get the same answer.
DETERMINISTIC = {400, 404, 413, 422}


def chat_url(base_url: str) -> str:
    """`base_url` is the API root (`https://api.openai.com/v1`); a bare origin gets `/v1`."""
    base = base_url.rstrip("/")
    if urlsplit(base).path in ("", "/"):
        base += "/v1"
    return base + "/chat/completions"


class OpenAICompatible:
    calls_tools = True

    async def stream(self, cred: UpstreamCredential, request: ChatRequest, slug: str) -> AsyncIterator[Delta]:
        body = {**request.body, "model": slug, "stream": True, "stream_options": {"include_usage": True}}
        headers = {
            "Authorization": f"Bearer {cred.api_key}",
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
        }
        response = await open_stream(chat_url(cred.base_url), cred, headers, body)
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
            await close_stream(response, finished=finished_body)


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
