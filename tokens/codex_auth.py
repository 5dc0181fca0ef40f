"""The Codex OAuth client (codex-protocol A1): refresh, device-code sign-in, and the id token's claims.

Every call goes to `CODEX_AUTH_URL` with `CODEX_CLIENT_ID`, a public client without a secret. Refresh
tokens are single-use: each refresh answers a new one, which the caller must store before anything else
may refresh again (`tokens.refreshing` does, inside its single-flight claim).
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from curl_cffi import requests
from curl_cffi.requests.exceptions import RequestException
from django.conf import settings

from chat2api_site import __version__
from tokens.refresh import FATAL_ERRORS, RefreshFailed, jwt_expiry, oauth_error

AUTH_CLAIM = "https://api.openai.com/auth"
REFRESH_SCOPE = "openid profile email"
DEVICE_PENDING = frozenset({403, 404})  # the device-code poll's "not approved yet"
DEVICE_LIFETIME = 15 * 60  # a user code expires after 15 minutes


@dataclass(frozen=True, slots=True)
class Claims:
    """Who a token belongs to: the ChatGPT workspace (`ChatGPT-Account-ID`), its plan and the user."""

    account_id: str = ""
    plan: str = ""
    user_id: str = ""
    email: str = ""


@dataclass(frozen=True, slots=True)
class Tokens:
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    id_token: str = field(default="", repr=False)
    expires_at: datetime | None = None

    @property
    def claims(self) -> Claims:
        return claims(self.id_token, self.access_token)


@dataclass(frozen=True, slots=True)
class DeviceLogin:
    """A started device-code sign-in: the operator enters `user_code` at `verification_url`."""

    device_auth_id: str = field(repr=False)
    user_code: str
    interval: int
    expires_at: float

    @property
    def verification_url(self) -> str:
        return f"{settings.CODEX_AUTH_URL}/codex/device"


def claims(*tokens: str) -> Claims:
    """The claims of the first JWT among `tokens` that names a ChatGPT account (read unverified, as Codex does)."""
    for token in tokens:
        payload = _payload(token)
        auth = payload.get(AUTH_CLAIM)
        if isinstance(auth, dict) and auth.get("chatgpt_account_id"):
            profile = payload.get("https://api.openai.com/profile")
            email = payload.get("email") or (profile.get("email") if isinstance(profile, dict) else "")
            user = auth.get("chatgpt_user_id") or auth.get("user_id") or ""
            return Claims(
                str(auth["chatgpt_account_id"]), str(auth.get("chatgpt_plan_type") or ""), str(user), str(email or "")
            )
    return Claims()


def _payload(token: str) -> dict[str, Any]:
    try:
        part = token.split(".")[1]
        doc = orjson.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError, orjson.JSONDecodeError):
        return {}
    return doc if isinstance(doc, dict) else {}


def refresh(refresh_token: str, proxy: str = "") -> Tokens:
    """Spend `refresh_token` (once: it is single-use) for new tokens; raises `RefreshFailed`."""
    form = {
        "client_id": settings.CODEX_CLIENT_ID,
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "scope": REFRESH_SCOPE,
    }
    status, doc = _post("/oauth/token", proxy, data=form)
    return _tokens(status, doc, old_refresh_token=refresh_token)


def start_device_login() -> DeviceLogin:
    """Ask for a user code; raises `RefreshFailed` when the issuer refuses (404: device login not enabled)."""
    status, doc = _post("/api/accounts/deviceauth/usercode", json={"client_id": settings.CODEX_CLIENT_ID})
    code = doc.get("user_code") or doc.get("usercode")
    if status == 404:
        raise RefreshFailed("device code sign-in is not enabled at CODEX_AUTH_URL", permanent=True)
    if status != 200 or not doc.get("device_auth_id") or not code:
        raise RefreshFailed(_reason(status, doc, "the issuer gave no user code"), permanent=True)
    try:
        interval = max(1, int(doc.get("interval") or 5))  # a string of seconds
    except ValueError:
        interval = 5
    return DeviceLogin(str(doc["device_auth_id"]), str(code), interval, time.time() + DEVICE_LIFETIME)


def poll_device_login(login: DeviceLogin) -> Tokens | None:
    """One poll: None while the user has not approved the code, the account's tokens once they have."""
    body = {"device_auth_id": login.device_auth_id, "user_code": login.user_code}
    status, doc = _post("/api/accounts/deviceauth/token", json=body)
    if status in DEVICE_PENDING:
        return None
    if status != 200 or not doc.get("authorization_code") or not doc.get("code_verifier"):
        raise RefreshFailed(_reason(status, doc, "the device login failed"), permanent=True)
    form = {
        "grant_type": "authorization_code",
        "code": doc["authorization_code"],
        "redirect_uri": f"{settings.CODEX_AUTH_URL}/deviceauth/callback",
        "client_id": settings.CODEX_CLIENT_ID,
        "code_verifier": doc["code_verifier"],
    }
    status, doc = _post("/oauth/token", data=form)
    return _tokens(status, doc, old_refresh_token="")


def _post(path: str, proxy: str = "", **body: Any) -> tuple[int, dict[str, Any]]:
    try:
        response = requests.post(
            settings.CODEX_AUTH_URL + path,
            headers={"User-Agent": f"chat2api/{__version__}", "Accept": "application/json"},
            timeout=(settings.UPSTREAM_CONNECT_TIMEOUT, 30),  # well inside a refresh claim's 60 s
            proxy=proxy or None,
            **body,
        )
    except RequestException as exc:
        raise RefreshFailed(f"{path} unreachable ({type(exc).__name__})", permanent=False) from None
    try:
        doc = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        doc = {}
    return response.status_code, doc if isinstance(doc, dict) else {}


def _tokens(status: int, doc: dict[str, Any], old_refresh_token: str) -> Tokens:
    access = doc.get("access_token")
    if status == 200 and isinstance(access, str) and access:
        expires = jwt_expiry(access)
        if expires is None and doc.get("expires_in"):
            expires = datetime.now(UTC) + timedelta(seconds=int(doc["expires_in"]))
        return Tokens(access, doc.get("refresh_token") or old_refresh_token, doc.get("id_token") or "", expires)
    code, _ = oauth_error(doc)
    # A 401 is the refresh token's own failure, whatever its code (reused, expired, invalidated): final, as in Codex.
    raise RefreshFailed(_reason(status, doc, ""), permanent=code in FATAL_ERRORS or status == 401)


def _reason(status: int, doc: dict[str, Any], fallback: str) -> str:
    code, message = oauth_error(doc)
    return f"{code}: {message}".strip(": ") or fallback or f"the token endpoint answered {status}"
