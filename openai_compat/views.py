"""Thin async views of the OpenAI-compatible API; the work is in `services` and `render`."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import orjson
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from openai_compat import catalog, render
from openai_compat.auth import api_view
from openai_compat.errors import model_not_found
from openai_compat.files import link_origin
from openai_compat.lifecycle import Starting, StreamBody
from openai_compat.schema import ChatRequest, parse_chat_request, too_large
from openai_compat.services import Answer, Caller, available_models, start_answer
from tokens.pool import pool

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def json_response(data: dict, headers: dict[str, str] | None = None) -> HttpResponse:
    """`JsonResponse` encodes with the stdlib `json`; orjson is ~60 µs cheaper per reply."""
    return HttpResponse(orjson.dumps(data), content_type="application/json", headers=headers)


def request_body(request: HttpRequest) -> bytes:
    """The raw body; generated files of the answer link back to the server it was sent to."""
    try:
        raw = request.body
    except RequestDataTooBig:
        raise too_large(settings.MAX_REQUEST_BYTES) from None
    link_origin.set(f"{request.scheme}://{request.get_host()}")
    return raw


async def begin_stream(chat: ChatRequest, caller: Caller) -> tuple[Starting, Answer | None]:
    """Start a streamed answer; the answer once it started, None while still preparing (`Starting.opened`)."""
    starting = Starting(start_answer(chat, caller))
    return starting, await starting.opened()


def event_stream(
    frames: AsyncGenerator[bytes, None], starting: Starting, headers: dict[str, str]
) -> StreamingHttpResponse:
    body = StreamBody(frames, starting.aclose)
    return StreamingHttpResponse(body, content_type="text/event-stream", headers={**STREAM_HEADERS, **headers})


@api_view(("POST",))
async def chat_completions(request: HttpRequest, caller: Caller) -> HttpResponse:
    chat = parse_chat_request(request_body(request))
    if not chat.stream:
        answer = await start_answer(chat, caller)
        return json_response(await render.completion(answer, chat), headers=conversation_header(answer))
    starting, started = await begin_stream(chat, caller)
    headers = conversation_header(started) if started is not None else {}
    return event_stream(render.sse_events(starting, chat), starting, headers)


def conversation_header(answer: Answer) -> dict[str, str]:
    return {"X-Conversation-Id": answer.conversation_id} if answer.conversation_id else {}


async def _models(caller: Caller) -> dict[str, int]:
    """name → `created` of what this caller can be served."""
    if caller.own is not None:
        return dict.fromkeys(catalog.chatgpt_model_names(), 0)
    await pool.ready()
    served = available_models()
    return served if caller.key is None else {name: c for name, c in served.items() if caller.key.allows(name)}


def _model_object(name: str, created: int) -> dict:
    return {"id": name, "object": "model", "created": created, "owned_by": "chat2api"}


@api_view(("GET",))
async def list_models(request: HttpRequest, caller: Caller) -> HttpResponse:
    data = [_model_object(name, created) for name, created in (await _models(caller)).items()]
    return json_response({"object": "list", "data": data})


@api_view(("GET",))
async def retrieve_model(request: HttpRequest, caller: Caller, model: str) -> HttpResponse:
    created = (await _models(caller)).get(model)
    if created is None:
        raise model_not_found(model)
    return json_response(_model_object(model, created))
