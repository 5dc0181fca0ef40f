"""Who a request comes from, and the one decorator every API view wears (CORS, auth, error shape)."""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Awaitable, Callable

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from common.logs import bind_request_id
from openai_compat import accounting
from openai_compat.errors import APIError, error_response, unexpected
from openai_compat.services import Caller
from tokens import clients
from tokens import services as token_services
from tokens.oauth import RefreshFailed
from tokens.pool import PooledCredential
from tokens.shapes import is_access_token, is_refresh_token
from tokens.throttle import Throttle, by_address, client_address

View = Callable[..., Awaitable[HttpResponse]]
EXPOSED = ", ".join(("X-Conversation-Id", "Retry-After", "X-Request-Id", *accounting.LIMIT_HEADERS))
# Refused RefreshTokens per client address: the server must not become a free oracle for guessing them.
OWN_TOKEN_THROTTLE = Throttle("own-token")


async def caller_from(request: HttpRequest) -> Caller:
    """A Bearer equal to an `AUTHORIZATION` code, or an enabled client key, uses the pool; one shaped like a ChatGPT
    AccessToken or RefreshToken (`token` or `token,account_id`) is the caller's own, when `ALLOW_OWN_TOKENS`;
    else 401."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise APIError(
            401, "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.", code="invalid_api_key"
        )
    if any(hmac.compare_digest(token, code) for code in settings.AUTHORIZATION):
        return Caller(scope=scope_of(token))
    if token.startswith(clients.KEY_PREFIX):
        key = await clients.lookup(token)
        if key is None:
            raise wrong_key()
        return Caller(key=key, scope=scope_of(token))
    secret, _, account_id = token.partition(",")
    secret, account_id = secret.strip(), account_id.strip() or request.META.get("HTTP_CHATGPT_ACCOUNT_ID", "")
    if not settings.ALLOW_OWN_TOKENS:
        raise wrong_key()
    if is_access_token(secret):
        access_token = ""
    elif is_refresh_token(secret):
        access_token = await exchange_own(secret, by_address(client_address(request)))
    else:
        raise wrong_key()
    return Caller(own=PooledCredential.own(secret, account_id, access_token), scope=scope_of(secret))


@functools.lru_cache(maxsize=1024)
def scope_of(key: str) -> str:
    """Who owns a stored response: a digest of the caller's key (the key itself is never stored). Cached: most
    requests come with one of a few keys."""
    return hashlib.sha256(f"chat2api-scope:{key}".encode()).hexdigest()[:32]


def wrong_key() -> APIError:
    return APIError(401, "Incorrect API key provided.", code="invalid_api_key")


async def exchange_own(refresh_token: str, address: str) -> str:
    """The AccessToken for a caller's RefreshToken (cached); refused tokens lock their address out for a while."""
    wait = await OWN_TOKEN_THROTTLE.alocked_for(address)
    if wait:
        message = f"Too many refused RefreshTokens from your address. Try again in {wait} s."
        raise APIError(429, message, "requests", code="rate_limit_exceeded", headers={"Retry-After": str(wait)})
    try:
        return await sync_to_async(token_services.own_access_token, thread_sensitive=False)(refresh_token)
    except RefreshFailed as exc:
        if not exc.permanent:
            message = "Your RefreshToken could not be checked right now; try again later."
            raise APIError(503, message, "server_error", code="refresh_unavailable") from None
        await OWN_TOKEN_THROTTLE.arecord_failure(address)
        raise APIError(401, f"Your RefreshToken was refused: {exc.reason}", code="invalid_api_key") from None


def cors_headers(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """What every API reply carries, preflights included: its request id, and CORS."""
    response["X-Request-Id"] = request.request_id
    response["Access-Control-Allow-Origin"] = request.META.get("HTTP_ORIGIN", "*")
    response["Access-Control-Expose-Headers"] = EXPOSED
    response["Vary"] = "Origin"
    return response


def preflight(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(status=204)
    response["Access-Control-Allow-Methods"] = "GET, POST, DELETE, OPTIONS"
    response["Access-Control-Allow-Headers"] = request.META.get(
        "HTTP_ACCESS_CONTROL_REQUEST_HEADERS", "Authorization, Content-Type"
    )
    response["Access-Control-Max-Age"] = "86400"
    return cors_headers(request, response)


def api_view(methods: tuple[str, ...]) -> Callable[[View], View]:
    """Answer CORS preflights, authenticate, and turn every `APIError` into the OpenAI error shape.

    Request headers are read from `request.META` (`HTTP_<NAME>`, as Django files them): `request.headers`
    would build a case-insensitive copy of them all on first use, about 20 µs of every request."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        async def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            request.request_id = bind_request_id(request.META.get("HTTP_X_REQUEST_ID"))
            if request.method == "OPTIONS":
                return preflight(request)
            ticket = accounting.open_ticket(request)
            try:
                if request.method not in methods:
                    raise APIError(405, f"Method {request.method} is not allowed here.", code="method_not_allowed")
                caller = await caller_from(request)
                accounting.identify(ticket, caller.key, caller.own is not None)
                response = await view(request, caller, *args, **kwargs)
            except APIError as err:
                ticket.error_code = err.code or ""
                response = error_response(err)
            except Exception as exc:
                response = unexpected(request, exc)
            except BaseException:  # cancelled: the client left before a response was made
                accounting.abandoned(ticket)
                raise
            accounting.finish_on_close(response, ticket)
            return cors_headers(request, response)

        return wrapper

    return decorate
