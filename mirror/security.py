"""Response hardening of the mirror pages: a strict Content-Security-Policy, no caching, secure cookies.

Why a middleware for `Secure` cookies rather than `SESSION_COOKIE_SECURE`/`CSRF_COOKIE_SECURE`: those
are global switches, so they either break plain-http use (local runs, the tests) or must be remembered
for every https deployment. Marking the cookies of each https response is right in both cases with no
setting. Behind a TLS-terminating proxy, `request.is_secure()` needs `SECURE_PROXY_SSL_HEADER`.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import sync_and_async_middleware

# No inline script or style anywhere; images may be data:/blob: (attachments) or https (generated ones).
CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob: https:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

AsyncView = Callable[..., Awaitable[HttpResponse]]


def harden(response: HttpResponse) -> HttpResponse:
    response["Content-Security-Policy"] = CSP
    response["Cache-Control"] = "no-store"
    # A `/?token=` address never leaves the site in a Referer; not "no-referrer", which makes browsers
    # send `Origin: null` with the page's own POSTs, and Django's CSRF check refuses those.
    response["Referrer-Policy"] = "same-origin"
    return response


def hardened(view: AsyncView) -> AsyncView:
    @functools.wraps(view)
    async def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        return harden(await view(request, *args, **kwargs))

    return wrapper


def _mark_secure(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    if request.is_secure():
        for morsel in response.cookies.values():
            morsel["secure"] = True
    return response


@sync_and_async_middleware
def secure_cookies(get_response: Callable) -> Callable:
    """Mark every cookie of an https response `Secure`. List it above SessionMiddleware, so that it sees
    the cookies the session, CSRF and messages middleware set."""
    if iscoroutinefunction(get_response):

        async def async_middleware(request: HttpRequest) -> HttpResponse:
            return _mark_secure(request, await get_response(request))

        return async_middleware

    def middleware(request: HttpRequest) -> HttpResponse:
        return _mark_secure(request, get_response(request))

    return middleware
