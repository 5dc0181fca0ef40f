"""The chat page's work: conversations of the logged-in identity, and sending a message through the one
chat pipeline (`openai_compat.services.start_answer`), in process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from django.core.exceptions import ValidationError

from mirror.identity import Identity, caller_for
from mirror.models import Conversation
from openai_compat import catalog, render, sse
from openai_compat.errors import APIError, invalid
from openai_compat.lifecycle import StreamBody
from openai_compat.schema import ChatRequest, text_of
from openai_compat.services import Answer, available_models, start_answer
from openai_compat.upstreams.base import Delta
from tokens.pool import pool

TITLE_LENGTH = 60


def summary(conv: Conversation) -> dict[str, Any]:
    return {"id": str(conv.id), "title": conv.title or "New chat", "model": conv.model, "updated_at": conv.updated_at}


def detail(conv: Conversation) -> dict[str, Any]:
    return {**summary(conv), "messages": conv.messages}


async def models_for(identity: Identity) -> list[str]:
    if identity.kind == "own":
        return catalog.chatgpt_model_names()
    await pool.ready()
    return list(available_models())


async def conversations(identity: Identity) -> list[dict[str, Any]]:
    return [summary(c) async for c in Conversation.objects.owned_by(identity.owner).defer("messages")]


async def conversation(identity: Identity, conversation_id: str) -> Conversation:
    try:
        return await Conversation.objects.owned_by(identity.owner).aget(pk=conversation_id)
    except (Conversation.DoesNotExist, ValidationError):
        raise APIError(404, "No such conversation.", code="conversation_not_found") from None


async def create(identity: Identity, model: str = "") -> Conversation:
    return await Conversation.objects.acreate(owner=identity.owner, model=model[:100])


async def rename(identity: Identity, conversation_id: str, title: str) -> Conversation:
    conv = await conversation(identity, conversation_id)
    conv.title = title.strip()[:200]
    await conv.asave(update_fields=["title", "updated_at"])
    return conv


async def delete(identity: Identity, conversation_id: str) -> None:
    conv = await conversation(identity, conversation_id)
    await conv.adelete()


async def send(identity: Identity, conversation_id: str, payload: dict[str, Any]) -> StreamBody:
    """Add the user's message (or drop the last answer to regenerate it), start the answer, and return
    the OpenAI SSE stream of it; the answer is appended to the conversation however the stream ends."""
    conv = await conversation(identity, conversation_id)
    model = payload.get("model") or conv.model
    history = _next_history(conv.messages, payload)
    wire = [{"role": m["role"], "content": m["content"]} for m in history]
    chat = ChatRequest.of(model, wire, stream=True)
    conv.messages, conv.model = history, model[:100]
    conv.title = conv.title or _title(history)
    await conv.asave()
    answer = await start_answer(chat, caller_for(identity))
    return StreamBody(_stream(conv, _Recorder(answer), chat), answer.close)  # closed even if never iterated


def _next_history(messages: list[dict[str, Any]], payload: dict[str, Any]) -> list[dict[str, Any]]:
    history = list(messages)
    if payload.get("regenerate"):
        while history and history[-1].get("role") == "assistant":
            history.pop()
        if not history:
            raise invalid("regenerate", "There is no message to answer again.")
        return history
    return [*history, {"role": "user", "content": _content(payload.get("content"))}]


def _content(content: Any) -> str | list[dict[str, Any]]:
    """A user message: text, or text and images as `image_url` parts with `data:image/…` URLs."""
    if isinstance(content, str) and content.strip():
        return content
    if isinstance(content, list) and content and all(_valid_part(p) for p in content):
        return content
    raise invalid("content", "Write a message or attach an image.")


def _valid_part(part: Any) -> bool:
    if not isinstance(part, dict):
        return False
    if part.get("type") == "text":
        return isinstance(part.get("text"), str)
    url = (part.get("image_url") or {}).get("url") if part.get("type") == "image_url" else None
    return isinstance(url, str) and url.startswith("data:image/")


def _title(history: list[dict[str, Any]]) -> str:
    text = " ".join(text_of(history[0]["content"]).split()) if history else ""
    return text[:TITLE_LENGTH] or "Image"


class _Recorder:
    """The answer as `render.sse_stream` reads it, keeping the text that went by for the conversation."""

    def __init__(self, answer: Answer) -> None:
        self.answer, self.finished = answer, False
        self.content: list[str] = []
        self.reasoning: list[str] = []

    async def __aiter__(self) -> AsyncIterator[Delta]:
        async for delta in self.answer:
            self.content.append(delta.content)
            self.reasoning.append(delta.reasoning)
            yield delta
        self.finished = True

    @property
    def usage(self) -> dict[str, int] | None:
        return self.answer.usage

    @usage.setter
    def usage(self, used: dict[str, int] | None) -> None:
        """The renderer sets the usage on what it reads; the answer records it (per credential) when it closes."""
        self.answer.usage = used

    async def close(self) -> None:
        await self.answer.close()


async def _stream(conv: Conversation, recorder: _Recorder, chat: ChatRequest) -> AsyncGenerator[bytes, None]:
    kept = False
    try:
        async for frame in render.sse_stream(recorder, chat):  # type: ignore[arg-type]
            if frame == sse.DONE:  # stored before the page hears the end, so a reload right after shows it
                await _keep_answer(conv.pk, recorder)
                kept = True
            yield frame
    finally:
        if not kept:  # stopped, failed or cut: keep what went by
            # Shielded: when the client stops the answer this runs while the request is being cancelled.
            await asyncio.shield(_keep_answer(conv.pk, recorder))


async def _keep_answer(conversation_id: Any, recorder: _Recorder) -> None:
    content, reasoning = "".join(recorder.content), "".join(recorder.reasoning)
    if not content and not reasoning:
        return
    message = {"role": "assistant", "content": content, "reasoning": reasoning, "stopped": not recorder.finished}
    conv = await Conversation.objects.filter(pk=conversation_id).afirst()
    if conv is not None:
        conv.messages = [*conv.messages, message]
        await conv.asave(update_fields=["messages", "updated_at"])
