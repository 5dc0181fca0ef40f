"""Who a request comes from, and the one decorator every API view wears (CORS, auth, error shape)."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from openai_compat.errors import APIError, error_response
from openai_compat.services import Caller
from tokens.models import Kind
from tokens.pool import PooledCredential

View = Callable[..., Awaitable[HttpResponse]]


def caller_from(request: HttpRequest) -> Caller:
    """A Bearer equal to an `AUTHORIZATION` code uses the pool; any other is the caller's own token."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise APIError(
            401, "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.", code="invalid_api_key"
        )
    if any(hmac.compare_digest(token, code) for code in settings.AUTHORIZATION):
        return Caller()
    secret, _, account_id = token.partition(",")
    account_id = account_id.strip() or request.headers.get("ChatGPT-Account-ID", "")
    is_access_token = secret.startswith("eyJ")  # a JWT; anything else is taken for a RefreshToken
    return Caller(
        own=PooledCredential(
            id=None,
            kind=Kind.CHATGPT,
            access_token=secret if is_access_token else "",
            refresh_token="" if is_access_token else secret,
            account_id=account_id,
        )
    )


def cors_headers(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    response["Access-Control-Allow-Origin"] = request.headers.get("Origin", "*")
    response["Access-Control-Expose-Headers"] = "X-Conversation-Id, Retry-After"
    response["Vary"] = "Origin"
    return response


def preflight(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(status=204)
    response["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
    response["Access-Control-Allow-Headers"] = request.headers.get(
        "Access-Control-Request-Headers", "Authorization, Content-Type"
    )
    response["Access-Control-Max-Age"] = "86400"
    return cors_headers(request, response)


def api_view(methods: tuple[str, ...]) -> Callable[[View], View]:
    """Answer CORS preflights, authenticate, and turn every `APIError` into the OpenAI error shape."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        async def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if request.method == "OPTIONS":
                return preflight(request)
            try:
                if request.method not in methods:
                    raise APIError(405, f"Method {request.method} is not allowed here.", code="method_not_allowed")
                response = await view(request, caller_from(request), *args, **kwargs)
            except APIError as err:
                response = error_response(err)
            return cors_headers(request, response)

        return wrapper

    return decorate
