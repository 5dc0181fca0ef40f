"""A fake OAuth token endpoint: RefreshToken → AccessToken (an unsigned JWT with an `exp`).

`rt-bad…` is refused with `invalid_grant`, `rt-expired…` with the nested `{"error": {"code", "message"}}`
of auth.openai.com, `rt-gone…` answers 404, `rt-down…` 503; any other token gets a fresh
AccessToken `eyJ…` whose payload names the RefreshToken's scenario (so the fake ChatGPT server can
tell the caller apart), valid for `expires_in` seconds (default 3600; `rt-short…`: 5 s).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time

from aiohttp import web

from tests.fakes import codex_issuer
from tests.fakes.base import FakeServer


def _b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


def access_token(subject: str, lifetime: int = 3600) -> str:
    """`eyJ…` like a real one; the fake ChatGPT server reads the scenario from the `sub` claim."""
    header = _b64({"alg": "none", "typ": "JWT"})
    return f"{header}.{_b64({'sub': subject, 'exp': int(time.time()) + lifetime})}.sig"


def make_app(server_ref: list[FakeServer], delay: float = 0.0) -> web.Application:
    async def token(request: web.Request) -> web.Response:
        form = request.content_type == "application/x-www-form-urlencoded"
        body = dict(await request.post()) if form else await request.json()
        refresh = body.get("refresh_token", "")
        server_ref[0].calls[refresh or body.get("code", "")] += 1
        server_ref[0].requests.append(body)
        if delay:
            await asyncio.sleep(delay)
        if body.get("client_id") == codex_issuer.CLIENT_ID:
            return codex_issuer.token(request.app[codex_issuer.ISSUER], body)
        if refresh.startswith("rt-bad"):
            error = {"error": "invalid_grant", "error_description": "Unknown or invalid refresh token."}
            return web.json_response(error, status=403)
        if refresh.startswith("rt-gone"):  # as auth0.openai.com has answered since mid-2025
            return web.Response(status=404, text="Not Found")
        if refresh.startswith("rt-expired"):  # auth.openai.com's nested shape
            error = {"code": "refresh_token_expired", "message": "Your refresh token has expired."}
            return web.json_response({"error": error}, status=401)
        if refresh.startswith("rt-down"):
            return web.Response(status=503, text="upstream down")
        lifetime = 5 if refresh.startswith("rt-short") else 3600
        subject = refresh.removeprefix("rt-").removeprefix("rt_")
        return web.json_response(
            {"access_token": access_token(subject, lifetime), "expires_in": lifetime, "token_type": "Bearer"}
        )

    app = web.Application()
    app.router.add_post("/oauth/token", token)
    codex_issuer.mount(app)
    return app


def start(delay: float = 0.0) -> FakeServer:
    return FakeServer.launch(make_app, delay)
