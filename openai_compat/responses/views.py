"""Views of the Responses API: one translation in (`to_chat`), the one chat pipeline, one renderer out."""

from __future__ import annotations

import functools
from typing import Any

from django.http import HttpRequest, HttpResponse

from openai_compat.auth import api_view
from openai_compat.responses import render, store
from openai_compat.responses.request import parse_responses_request
from openai_compat.responses.translate import to_chat
from openai_compat.services import Caller, start_answer
from openai_compat.views import begin_stream, event_stream, json_response, request_body


@api_view(("POST",))
async def create(request: HttpRequest, caller: Caller) -> HttpResponse:
    """`POST /v1/responses`; with `previous_response_id` the stored conversation is replayed first, and unless
    `store` is false the finished response is stored (before its last event, so a follow-up always finds it)."""
    ask = parse_responses_request(request_body(request))
    history = await store.history(ask.previous_response_id, caller.scope) if ask.previous_response_id else []
    chat = to_chat(ask, history)
    assert chat.native is not None, "to_chat keeps the Responses request"
    response_id = render.new_id("resp")
    finish = functools.partial(store.save, caller.scope, chat.native["input"]) if ask.store else _keep_nothing
    if not ask.stream:
        answer = await start_answer(chat, caller)
        return json_response(await render.response_object(answer, ask, chat, response_id, finish))
    starting, _ = await begin_stream(chat, caller)
    return event_stream(render.stream_events(starting, ask, chat, response_id, finish), starting, {})


async def _keep_nothing(response: dict[str, Any]) -> None:
    """`store: false`: nothing of the conversation stays on the gateway."""


@api_view(("GET", "DELETE"))
async def retrieve_or_delete(request: HttpRequest, caller: Caller, response_id: str) -> HttpResponse:
    """A stored response of this caller, or its deletion; any other id is 404."""
    if request.method == "DELETE":
        return json_response(await store.delete(response_id, caller.scope))
    return json_response(await store.get(response_id, caller.scope))
