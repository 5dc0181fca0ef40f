"""Adapter for the Codex backend of ChatGPT plans (`POST {CODEX_BASE_URL}/responses`, protocol A2 to A5).

The backend speaks only the streamed Responses API; a non-stream client is served by collecting the same
stream (read by `responses_events`). A chat request's body is translated (`codex_body`); a Responses API
request's is built from its own fields under the same rules (`native_body`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator
from typing import Any

from django.conf import settings

from common.http import USER_AGENT
from openai_compat.schema import ChatRequest
from openai_compat.upstreams.base import Delta, UpstreamCredential, UpstreamError
from openai_compat.upstreams.codex_body import codex_body, native_body
from openai_compat.upstreams.codex_limits import failure, quota_from_event, quota_from_headers, stream_failure
from openai_compat.upstreams.responses_events import Translator, relay
from openai_compat.upstreams.transport import open_stream


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

    async def stream(self, cred: UpstreamCredential, request: ChatRequest, slug: str) -> AsyncGenerator[Delta, None]:
        build = codex_body if request.native is None else native_body
        body = await build(request, slug, cred)
        response = await open_stream(responses_url(cred), cred, headers_for(cred), body)
        read_to_end = False
        try:
            if response.status_code != 200:
                raise failure(response.status_code, await response.acontent(), response.headers, cred)
            if quota := quota_from_headers(response.headers):
                yield Delta(quota=quota)
            async for delta in relay(response, CodexTranslator(cred)):
                yield delta
            read_to_end = True
        finally:
            await response.aclose(finished=read_to_end)


class CodexTranslator(Translator):
    """The Codex backend's stream: its failure codes (protocol A3) and its `codex.rate_limits` quota events."""

    def failure(self, error: dict[str, Any]) -> UpstreamError:
        return stream_failure(error, self.cred)

    def other(self, event: dict[str, Any]) -> Iterator[Delta]:
        if event.get("type") == "codex.rate_limits" and (quota := quota_from_event(event)):
            yield Delta(quota=quota)
