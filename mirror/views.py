"""The web front: the chat page when `ENABLE_GATEWAY` is on, otherwise a landing page that explains the
server. Login by form or by `/?token=…`; the work is in `identity` and `services`."""

from __future__ import annotations

import functools

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from mirror import identity
from mirror.forms import LoginForm
from mirror.identity import LoginRefused
from mirror.security import AsyncView, hardened


def gateway_only(view: AsyncView) -> AsyncView:
    @functools.wraps(view)
    async def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not settings.ENABLE_GATEWAY:
            raise Http404("The web chat page is off.")
        return await view(request, *args, **kwargs)

    return wrapper


def landing(request: HttpRequest) -> HttpResponse:
    prefix = f"/{settings.API_PREFIX}" if settings.API_PREFIX else ""
    api_base = request.build_absolute_uri(f"{prefix}/v1")
    return render(request, "mirror/landing.html", {"api_base": api_base, "gateway": settings.ENABLE_GATEWAY})


@require_http_methods(["GET", "HEAD"])
@hardened
async def index(request: HttpRequest) -> HttpResponse:
    if not settings.ENABLE_GATEWAY:
        return landing(request)
    if "token" in request.GET:
        return await _login_by_link(request, request.GET["token"])
    who = await identity.from_session(request.session)
    if who is None:
        return redirect("mirror-login")
    return render(request, "mirror/chat.html", {"identity": who})


async def _login_by_link(request: HttpRequest, token: str) -> HttpResponse:
    """`/?token=…`: log in, then leave the address with the token in it by a redirect either way."""
    try:
        await identity.log_in(request, token)
    except LoginRefused as refused:
        messages.error(request, refused.message)
        return redirect("mirror-login")
    return redirect("landing")


@require_http_methods(["GET", "HEAD", "POST"])
@gateway_only
@hardened
async def login(request: HttpRequest) -> HttpResponse:
    form, status = LoginForm(request.POST if request.method == "POST" else None), 200
    if request.method == "POST" and form.is_valid():
        try:
            await identity.log_in(request, form.cleaned_data["token"])
        except LoginRefused as refused:
            form.add_error("token", refused.message)
            status = refused.status
        else:
            return redirect("landing")
    elif form.errors:
        status = 400
    return render(request, "mirror/login.html", {"form": form}, status=status)


@require_http_methods(["GET", "POST"])
@gateway_only
@hardened
async def logout(request: HttpRequest) -> HttpResponse:
    await identity.log_out(request)
    return redirect("mirror-login")
