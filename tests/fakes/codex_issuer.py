"""The Codex side of the fake OAuth issuer (codex-protocol A1), mounted on `oauth_server`'s application.

- `/oauth/token` for the Codex client id: single-use refresh tokens. Each refresh answers a new `rt_…` and
  spends the old one; spending it again answers 401 `{"error": {"code": "refresh_token_reused", …}}`.
  `rt_expired…` / `rt_invalidated…` answer the other nested codes. A refresh token the fake never issued is
  taken as issued before it started, for `DEFAULT_ACCOUNT`. `authorization_code` exchanges a device login.
- The device flow: `/api/accounts/deviceauth/usercode` announces a code and an `interval` (a string), the
  token poll answers 403 until the user approves the code on `/codex/device` (a page with a form), then
  once the authorization code; polls are timed so a test can check the announced interval was kept.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

CLIENT_ID = "app_EMoamEEZ73f0CkXaXp7hrann"
AUTH_CLAIM = "https://api.openai.com/auth"
LIFETIME = 864000  # ten days, as the real access tokens
DEFAULT_ACCOUNT = ("acc-codex-1", "plus", "user-fake")


def _b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


def codex_jwt(account_id: str, plan: str = "plus", user_id: str = "user-fake", lifetime: int = LIFETIME) -> str:
    """A Codex access or id token: the ChatGPT account, plan and user under `https://api.openai.com/auth`."""
    claims = {
        "iss": "https://auth.openai.com",
        "aud": ["https://api.openai.com/v1"],
        "exp": int(time.time()) + lifetime,
        "email": f"{user_id}@example.com",
        AUTH_CLAIM: {"chatgpt_account_id": account_id, "chatgpt_plan_type": plan, "chatgpt_user_id": user_id},
    }
    return f"{_b64({'alg': 'RS256', 'typ': 'JWT'})}.{_b64(claims)}.c2lnbmF0dXJl"


@dataclass
class Device:
    user_code: str
    approved: bool = False


@dataclass
class Issuer:
    """What the fake issuer remembers: live and spent refresh tokens, device logins, unspent codes."""

    interval: int = 1
    device_account: tuple[str, str, str] = ("acc-device-1", "pro", "user-device")
    live: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    spent: set[str] = field(default_factory=set)
    devices: dict[str, Device] = field(default_factory=dict)
    codes: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    polls: list[float] = field(default_factory=list)  # when each device-token poll came (monotonic)

    def grant(self, account: tuple[str, str, str]) -> dict[str, Any]:
        refresh_token = f"rt_{secrets.token_urlsafe(32)}"
        self.live[refresh_token] = account
        return {
            "id_token": codex_jwt(*account),
            "access_token": codex_jwt(*account),
            "refresh_token": refresh_token,
            "expires_in": LIFETIME,
            "token_type": "Bearer",
        }

    def approve(self, user_code: str) -> bool:
        device = next((d for d in self.devices.values() if d.user_code == user_code.strip().upper()), None)
        if device is not None:
            device.approved = True
        return device is not None


ISSUER = web.AppKey("codex_issuer", Issuer)


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message, "type": "invalid_request_error"}}, status=status
    )


def token(issuer: Issuer, body: dict[str, Any]) -> web.Response:
    if body.get("grant_type") == "authorization_code":
        account = issuer.codes.pop(body.get("code", ""), None)
        if account is None or not body.get("code_verifier"):
            return web.json_response({"error": "invalid_grant", "error_description": "bad code"}, status=400)
        return web.json_response(issuer.grant(account))
    refresh = body.get("refresh_token", "")
    if refresh in issuer.spent:
        return _error(401, "refresh_token_reused", "Your refresh token has already been used to generate a new one.")
    for kind in ("expired", "invalidated"):
        if refresh.startswith(f"rt_{kind}"):
            return _error(401, f"refresh_token_{kind}", f"Your refresh token has been {kind}.")
    issuer.spent.add(refresh)
    return web.json_response(issuer.grant(issuer.live.pop(refresh, DEFAULT_ACCOUNT)))


async def usercode(request: web.Request) -> web.Response:
    issuer = request.app[ISSUER]
    if (await request.json()).get("client_id") != CLIENT_ID:
        return web.Response(status=404)
    device_id = f"deviceauth_{secrets.token_hex(8)}"
    code = f"{secrets.token_hex(2)}-{secrets.token_hex(3)}".upper()
    issuer.devices[device_id] = Device(code)
    return web.json_response({"device_auth_id": device_id, "user_code": code, "interval": str(issuer.interval)})


async def device_token(request: web.Request) -> web.Response:
    issuer, body = request.app[ISSUER], await request.json()
    device = issuer.devices.get(body.get("device_auth_id", ""))
    if device is None or device.user_code != body.get("user_code"):
        return web.json_response({"error": {"code": "invalid_device"}}, status=400)
    issuer.polls.append(time.monotonic())
    if not device.approved:
        return web.json_response({"error": {"code": "deviceauth_authorization_pending"}}, status=403)
    del issuer.devices[body["device_auth_id"]]
    code = secrets.token_urlsafe(16)
    issuer.codes[code] = issuer.device_account
    return web.json_response({"authorization_code": code, "code_challenge": "x", "code_verifier": "v" * 43})


async def device_page(request: web.Request) -> web.Response:
    if request.method == "POST":
        approved = request.app[ISSUER].approve(str((await request.post()).get("user_code", "")))
        return web.Response(text="Approved" if approved else "Unknown code", content_type="text/html")
    form = '<form method="post"><input name="user_code" id="user_code"><button type="submit">Continue</button></form>'
    return web.Response(text=f"<!doctype html><title>Device sign-in</title>{form}", content_type="text/html")


def mount(app: web.Application) -> None:
    app[ISSUER] = Issuer()
    app.router.add_post("/api/accounts/deviceauth/usercode", usercode)
    app.router.add_post("/api/accounts/deviceauth/token", device_token)
    app.router.add_route("*", "/codex/device", device_page)
