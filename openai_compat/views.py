"""Thin async views of the OpenAI-compatible API; the work is in `services` and `render`."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

from openai_compat import catalog, render
from openai_compat.auth import api_view
from openai_compat.errors import model_not_found
from openai_compat.schema import parse_chat_request, too_large
from openai_compat.services import Caller, available_models, start_answer
from tokens.pool import pool

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@api_view(("POST",))
async def chat_completions(request: HttpRequest, caller: Caller) -> HttpResponse:
    try:
        raw = request.body
    except RequestDataTooBig:
        raise too_large(settings.MAX_REQUEST_BYTES) from None
    chat = parse_chat_request(raw)
    answer = await start_answer(chat, caller)
    if chat.stream:
        return StreamingHttpResponse(
            render.sse_stream(answer, chat), content_type="text/event-stream", headers=STREAM_HEADERS
        )
    return JsonResponse(await render.completion(answer, chat))


async def _models(caller: Caller) -> list[str]:
    if caller.own is not None:
        return catalog.chatgpt_model_names()
    await pool.ready()
    return available_models()


def _model_object(name: str) -> dict:
    return {"id": name, "object": "model", "created": 0, "owned_by": "chat2api"}


@api_view(("GET",))
async def list_models(request: HttpRequest, caller: Caller) -> HttpResponse:
    return JsonResponse({"object": "list", "data": [_model_object(m) for m in await _models(caller)]})


@api_view(("GET",))
async def retrieve_model(request: HttpRequest, caller: Caller, model: str) -> HttpResponse:
    if model not in await _models(caller):
        raise model_not_found(model)
    return JsonResponse(_model_object(model))
