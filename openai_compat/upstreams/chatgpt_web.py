"""Adapter for the ChatGPT web backend: the sentinel check, the conversation request, the answer parsed.

Challenges (proof-of-work, Turnstile, Arkose, a forced login) are never solved: the credential fails with
`upstream_challenge_required` and the pipeline moves on to the next one. An answer cut at the token limit
is continued (`action: continue`) up to `MAX_CONTINUES` times, so the client reads one whole answer.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from curl_cffi.requests.exceptions import RequestException, Timeout
from django.conf import settings

from common.http import proxy_for, session_for
from common.transfer import Transfer
from openai_compat import catalog
from openai_compat.schema import ChatRequest
from openai_compat.upstreams import chatgpt_files
from openai_compat.upstreams.base import Action, Delta, UpstreamCredential, UpstreamError
from openai_compat.upstreams.chatgpt_files import Method, Prepared
from openai_compat.upstreams.chatgpt_markdown import Asset
from openai_compat.upstreams.chatgpt_stream import ChatGPTStream, StreamError
from openai_compat.upstreams.transport import (
    error_text,
    open_stream,
    retry_after,
    scrub,
    sse_data,
    transport_reason,
)

DEVICE_NAMESPACE = uuid.UUID("5f1d8c1e-3c56-4f0e-9a43-6d2b7c0f4a11")
ROLES = {"developer": "system", "function": "tool"}
CHALLENGES = {"proofofwork": "proof-of-work", "turnstile": "Turnstile", "arkose": "Arkose"}
CLOUDFLARE = (b"cf_chl_opt", b"cf-spinner-please-wait")
DETERMINISTIC = {400, 404, 413, 422}


class ChatGPTWeb:
    calls_tools = False  # the web backend has no function calling

    def __init__(self, links: Callable[[UpstreamCredential], Callable[[Asset], str]]) -> None:
        """`links(cred)`, called as an answer starts, gives where each generated file of it is linked to
        (the pipeline signs a gateway URL that downloads it with `cred`)."""
        self.links = links

    async def stream(self, cred: UpstreamCredential, request: ChatRequest, slug: str) -> AsyncGenerator[Delta, None]:
        prepared = await chatgpt_files.prepare(request.messages)  # a refused file fails before any upstream call
        backend = Backend.of(cred)
        body = conversation_body(request, slug, await messages_of(backend, prepared))
        parser = ChatGPTStream(link=self.links(cred))
        for continues in range(settings.MAX_CONTINUES + 1):
            async for delta in turn(backend, body, parser):
                if delta.finish_reason == "length" and continues < settings.MAX_CONTINUES and can_continue(parser):
                    continue  # held back: the continuation decides how the answer ends
                yield delta
            if parser.finish != "length" or not can_continue(parser):
                return
            body = continue_body(body, parser)
            parser.resume()


@dataclass(frozen=True, slots=True)
class Backend:
    """One credential's view of the backend API: its root URL and the headers every call carries."""

    cred: UpstreamCredential
    api: str
    headers: dict[str, str]

    @classmethod
    def of(cls, cred: UpstreamCredential) -> Backend:
        return cls(cred, api_root(cred), request_headers(cred))

    async def json(self, method: Method, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One JSON call; an HTTP error becomes the `UpstreamError` it means for the credential."""
        url = self.api + path
        data = orjson.dumps(body) if body is not None else None
        try:
            response = await session_for(url, proxy_for(self.cred.id)).request(
                method, url, data=data, headers=self.headers
            )
        except RequestException as exc:
            raise UpstreamError(transport_reason(exc), status=504 if isinstance(exc, Timeout) else 502) from None
        if response.status_code != 200:
            raise failure(response.status_code, response.content, response.headers, self.cred)
        doc = json_doc(response.content)
        if not isinstance(doc, dict):
            raise UpstreamError(f"ChatGPT answered {path.split('?')[0]} with something other than a JSON object.")
        return doc


async def turn(backend: Backend, body: dict[str, Any], parser: ChatGPTStream) -> AsyncIterator[Delta]:
    """One conversation request (after its sentinel check) read into `parser`."""
    headers = dict(backend.headers)
    if not settings.CONVERSATION_ONLY:
        headers["openai-sentinel-chat-requirements-token"] = await chat_requirements(backend.api, backend.cred, headers)
    headers["accept"] = "text/event-stream"
    response = await open_stream(f"{backend.api}/conversation", backend.cred, headers, body)
    finished = False
    try:
        # A 200 that is not an event stream (a 2024 WebSocket handoff, say) is a failure too.
        if response.status_code != 200 or not is_event_stream(response):
            raise failure(response.status_code, await response.acontent(), response.headers, backend.cred)
        async for delta in answer(response, backend.cred, parser):
            yield delta
        finished = True
    finally:
        await response.aclose(finished=finished)


def can_continue(parser: ChatGPTStream) -> bool:
    return bool(parser.conversation_id and parser.message_id and not parser.blocked)


def continue_body(body: dict[str, Any], parser: ChatGPTStream) -> dict[str, Any]:
    """`action: continue` under the cut answer, in its conversation; no messages (protocol §3.4)."""
    rest = {k: v for k, v in body.items() if k != "messages"}
    thread = {"conversation_id": parser.conversation_id, "parent_message_id": parser.message_id}
    return {**rest, "action": "continue", **thread}


def is_event_stream(response: Transfer) -> bool:
    return response.headers.get("content-type", "").startswith("text/event-stream")


def api_root(cred: UpstreamCredential) -> str:
    base = (cred.base_url or settings.CHATGPT_BASE_URL).rstrip("/")
    return base if base.endswith("/backend-api") else base + "/backend-api"


def request_headers(cred: UpstreamCredential) -> dict[str, str]:
    if not cred.access_token:
        raise UpstreamError("This ChatGPT credential has no access token; it needs a refresh.", action=Action.REFRESH)
    headers = {
        "authorization": f"Bearer {cred.access_token}",
        "oai-device-id": device_id(cred),
        "oai-language": "en-US",
        "accept": "*/*",
        "content-type": "application/json",
    }
    if cred.account_id:
        headers["chatgpt-account-id"] = cred.account_id
    if settings.AUTH_KEY:
        headers["authkey"] = settings.AUTH_KEY
    return headers


def device_id(cred: UpstreamCredential) -> str:
    """A device id that sticks to the credential (its refresh token outlives access tokens); never the secret."""
    secret = cred.refresh_token or cred.access_token
    return str(uuid.uuid5(DEVICE_NAMESPACE, hashlib.sha256(secret.encode()).hexdigest()))


async def chat_requirements(api: str, cred: UpstreamCredential, headers: dict[str, str]) -> str:
    """The sentinel token for the conversation call; a demanded challenge fails the credential instead."""
    response = await open_stream(f"{api}/sentinel/chat-requirements", cred, headers, {})
    try:
        raw = await response.acontent()
    finally:
        await response.aclose()
    if response.status_code != 200:
        raise sentinel_failure(response.status_code, raw, response.headers, cred)
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict):
        raise UpstreamError("The ChatGPT sentinel answered with something other than a JSON object.")
    challenge = required_challenge(doc)
    if challenge:
        # Cooled on every node, so that later requests do not each spend a sentinel call on this account.
        rest = settings.CHALLENGE_COOLDOWN_SECONDS
        raise UpstreamError(
            f"ChatGPT demands {challenge} for this account; chat2api never solves challenges, so it was skipped.",
            action=Action.COOLDOWN if rest else Action.NEXT,
            retry_after=rest or None,
            type="upstream_challenge_required",
            code="upstream_challenge_required",
        )
    if not isinstance(doc.get("token"), str) or not doc["token"]:
        raise UpstreamError("The ChatGPT sentinel answered without a chat-requirements token.")
    return doc["token"]


def sentinel_failure(status: int, raw: bytes, headers: Any, cred: UpstreamCredential) -> UpstreamError:
    """The sentinel's body is ours and always the same, so nothing the client sent can make it fail: a 404
    (a moved sentinel path), another request error or a 5xx there is the account's or the backend's, never
    the client's, and the next credential is tried."""
    err = failure(status, raw, headers, cred)
    if err.action not in (Action.FATAL, Action.NEXT):
        return err  # an expired token, a block or a rate limit means the same as on the conversation
    return UpstreamError(f"The ChatGPT sentinel answered {status}: {reason_of(raw, cred)}")


def required_challenge(doc: dict[str, Any]) -> str | None:
    if doc.get("force_login"):
        return "a fresh login (force_login)"
    for key, name in CHALLENGES.items():
        if isinstance(doc.get(key), dict) and doc[key].get("required"):
            return f"a {name} challenge"
    return None


def conversation_body(request: ChatRequest, slug: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """A new thread replaying the whole OpenAI history, as c2a does (protocol §3.4)."""
    gizmo = catalog.gizmo_id(request.model)
    mode = {"kind": "gizmo_interaction", "gizmo_id": gizmo} if gizmo else {"kind": "primary_assistant"}
    effort = catalog.thinking_effort(request.body.get("reasoning_effort"))
    return {
        "action": "next",
        "messages": messages,
        "parent_message_id": str(uuid.uuid4()),
        "model": slug,
        "conversation_mode": mode,
        "history_and_training_disabled": settings.HISTORY_DISABLED,
        "force_use_sse": True,
        "supported_encodings": ["v1"],
        "system_hints": [],
        "websocket_request_id": str(uuid.uuid4()),
        "timezone": settings.TIME_ZONE,
        "timezone_offset_min": chatgpt_files.timezone_offset_min(),
        "conversation_origin": None,
        "force_paragen": False,
        "force_rate_limit": False,
        "reset_rate_limits": False,
        "suggestions": [],
        **({"thinking_effort": effort} if effort else {}),
    }


async def messages_of(backend: Backend, prepared: list[Prepared]) -> list[dict[str, Any]]:
    """The ChatGPT messages, each file uploaded with this credential and attached."""
    messages = []
    for message in prepared:
        files = [(blob, await chatgpt_files.upload(backend, blob)) for blob in message.blobs]
        content, metadata = chatgpt_files.content_of(message.text, files)
        role = ROLES.get(message.role, message.role)
        messages.append({"id": str(uuid.uuid4()), "author": {"role": role}, "content": content, "metadata": metadata})
    return messages


async def answer(response: Transfer, cred: UpstreamCredential, parser: ChatGPTStream) -> AsyncIterator[Delta]:
    """The parsed answer; the conversation id first, when history is kept, for the `X-Conversation-Id` header."""
    announce = not settings.HISTORY_DISABLED and not parser.conversation_id
    try:
        async for data in sse_data(response):
            deltas = parser.feed(data)
            if announce and parser.conversation_id:
                announce = False
                yield Delta(conversation_id=parser.conversation_id)
            for delta in deltas:
                yield delta
            if parser.done:
                return
        for delta in parser.end():
            yield delta
    except StreamError as exc:
        raise UpstreamError(scrub(f"ChatGPT reported an error: {exc}", cred)) from None


# --- HTTP errors ----------------------------------------------------------------------------------
def reason_of(raw: bytes, cred: UpstreamCredential) -> str:
    return "an HTML page" if raw.lstrip()[:1] == b"<" else error_text(raw, cred)


def failure(status: int, raw: bytes, headers: Any, cred: UpstreamCredential) -> UpstreamError:
    reason = reason_of(raw, cred)
    if status == 401:
        return UpstreamError(f"ChatGPT refused the access token: {reason}", action=Action.REFRESH)
    if status == 403:
        return forbidden(raw, reason)
    if status == 429:
        return rate_limited(raw, headers, reason)
    if status in DETERMINISTIC:
        return UpstreamError(reason, status=status, action=Action.FATAL, type="invalid_request_error")
    return UpstreamError(f"ChatGPT answered {status}: {reason}")


def forbidden(raw: bytes, reason: str) -> UpstreamError:
    if any(marker in raw for marker in CLOUDFLARE):
        why = "upstream blocked this account (Cloudflare challenge)"
    elif b"unusual activity" in raw.lower():
        why = f"upstream blocked this account (unusual activity): {reason}"
    else:
        return UpstreamError(f"ChatGPT refused the request (403): {reason}")
    return UpstreamError(why, action=Action.COOLDOWN, retry_after=settings.DEFAULT_COOLDOWN_SECONDS)


def rate_limited(raw: bytes, headers: Any, reason: str) -> UpstreamError:
    detail = error_detail(raw)
    clears_in = detail.get("clears_in") if isinstance(detail, dict) else None
    if isinstance(clears_in, int | float) and not isinstance(clears_in, bool):
        scoped = detail.get("code") == "model_cap_exceeded"
        message = f"ChatGPT usage cap reached: {reason}"
        return UpstreamError(
            message, status=429, action=Action.COOLDOWN, retry_after=max(1.0, clears_in), model_scoped=scoped
        )
    wait = retry_after(headers, settings.DEFAULT_COOLDOWN_SECONDS)
    return UpstreamError(
        f"ChatGPT rate limited this account: {reason}", status=429, action=Action.COOLDOWN, retry_after=wait
    )


def error_detail(raw: bytes) -> Any:
    doc = json_doc(raw)
    return doc.get("detail") if isinstance(doc, dict) else None


def json_doc(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
