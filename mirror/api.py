"""The chat page's own JSON endpoints: session-authenticated, CSRF-protected (Django's middleware checks
every unsafe method), errors in the API's one shape. Thin: the work is in `mirror.services`."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

from mirror import identity, services
from mirror.identity import Identity
from mirror.security import harden
from openai_compat.errors import APIError, error_response, invalid
from openai_compat.schema import too_large

STREAM_HEADERS = {"X-Accel-Buffering": "no"}
PageView = Callable[..., Awaitable[HttpResponse]]


def page_api(*methods: str) -> Callable[[PageView], PageView]:
    """404 while the page is off; 401 without a live login; every `APIError` in the API's error shape."""

    def decorate(view: PageView) -> PageView:
        @functools.wraps(view)
        async def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not settings.ENABLE_GATEWAY:
                raise Http404("The web chat page is off.")
            try:
                if request.method not in methods:
                    raise APIError(405, f"Method {request.method} is not allowed here.", code="method_not_allowed")
                who = await identity.from_session(request.session)
                if who is None:
                    raise APIError(401, "You are not logged in (or your token was revoked).", code="not_logged_in")
                response = await view(request, who, *args, **kwargs)
            except APIError as err:
                response = error_response(err)
            return harden(response)  # Cache-Control: no-store, for the answer stream too

        return wrapper

    return decorate


def _json_body(request: HttpRequest) -> dict[str, Any]:
    try:
        body = orjson.loads(request.body or b"{}")
    except RequestDataTooBig:
        raise too_large(settings.MAX_REQUEST_BYTES) from None
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise invalid(None, "The request body must be a JSON object.")
    return body


@page_api("GET")
async def models(request: HttpRequest, who: Identity) -> HttpResponse:
    return JsonResponse({"models": await services.models_for(who)})


@page_api("GET", "POST")
async def conversations(request: HttpRequest, who: Identity) -> HttpResponse:
    if request.method == "POST":
        conv = await services.create(who, str(_json_body(request).get("model") or ""))
        return JsonResponse(services.detail(conv), status=201)
    return JsonResponse({"conversations": await services.conversations(who)})


@page_api("GET", "PATCH", "DELETE")
async def conversation(request: HttpRequest, who: Identity, conversation_id: str) -> HttpResponse:
    if request.method == "DELETE":
        await services.delete(who, conversation_id)
        return HttpResponse(status=204)
    if request.method == "PATCH":
        title = _json_body(request).get("title")
        if not isinstance(title, str):
            raise invalid("title", "'title' must be a string.")
        return JsonResponse(services.summary(await services.rename(who, conversation_id, title)))
    return JsonResponse(services.detail(await services.conversation(who, conversation_id)))


@page_api("POST")
async def send(request: HttpRequest, who: Identity, conversation_id: str) -> HttpResponse:
    stream = await services.send(who, conversation_id, _json_body(request))
    return StreamingHttpResponse(stream, content_type="text/event-stream", headers=STREAM_HEADERS)
