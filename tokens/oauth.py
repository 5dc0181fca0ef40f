"""The OAuth token endpoints: ChatGPT's RefreshToken → AccessToken exchange (protocol notes §3.10), and the Codex
client (codex-protocol A1): refresh and device-code sign-in.

Codex's calls go to `CODEX_AUTH_URL` with `CODEX_CLIENT_ID`, a public client without a secret. Its refresh
tokens are single-use: each refresh answers a new one, which the caller must store before anything else may
refresh again (`tokens.refreshing` does, inside its single-flight claim).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from curl_cffi import requests
from curl_cffi.requests.exceptions import RequestException
from django.conf import settings

from common import jwt
from common.http import USER_AGENT

REDIRECT_URI = "com.openai.chat://auth0.openai.com/ios/com.openai.chat/callback"
REFRESH_SCOPE = "openid profile email"
FATAL_ERRORS = frozenset(
    {
        "invalid_grant",
        "access_denied",
        "invalid_request",
        "unauthorized_client",
        # auth.openai.com's nested codes for a refresh token that will never work again (codex-protocol A1)
        "refresh_token_reused",
        "refresh_token_expired",
        "refresh_token_invalidated",
    }
)
GONE = 404  # auth0.openai.com has answered 404 since mid-2025: retrying there never helps
DEVICE_PENDING = frozenset({403, 404})  # the device-code poll's "not approved yet"
DEVICE_LIFETIME = 15 * 60  # a user code expires after 15 minutes


class RefreshFailed(Exception):
    """`permanent` when the endpoint refused the token itself (it will never work again)."""

    def __init__(self, reason: str, permanent: bool) -> None:
        super().__init__(reason)
        self.reason, self.permanent = reason, permanent


@dataclass(frozen=True, slots=True)
class Tokens:
    """What a token endpoint answered; `refresh_token` is the rotated one, else the one spent."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    id_token: str = field(default="", repr=False)
    expires_at: datetime | None = None

    @property
    def account(self) -> jwt.Account:
        return jwt.account(self.id_token, self.access_token)


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


# -- ChatGPT ----------------------------------------------------------------------------------------------------
def exchange(refresh_token: str, proxy: str = "") -> Tokens:
    """A ChatGPT RefreshToken for an AccessToken; raises `RefreshFailed` with the endpoint's reason."""
    newer = refresh_token.startswith("rt_")
    body = {
        "client_id": settings.OAUTH_RT_CLIENT_ID if newer else settings.OAUTH_CLIENT_ID,
        "grant_type": "refresh_token",
        "redirect_uri": REDIRECT_URI,
        "refresh_token": refresh_token,
    }
    url = settings.OAUTH_RT_TOKEN_URL if newer else settings.OAUTH_TOKEN_URL
    status, doc = _post(url, proxy, json=body)
    if granted := _granted(status, doc, refresh_token):
        return granted
    code, detail = oauth_error(doc)
    reason = f"{code}: {detail}".strip(": ") or f"token endpoint answered {status}"
    if status == GONE:
        said = f" ({reason})" if code or detail else ""
        raise RefreshFailed(f"the token endpoint answered 404{said}: it does not serve this token", permanent=True)
    raise RefreshFailed(reason, permanent=code in FATAL_ERRORS)


# -- Codex ------------------------------------------------------------------------------------------------------
def refresh(refresh_token: str, proxy: str = "") -> Tokens:
    """Spend a Codex `refresh_token` (once: it is single-use) for new tokens; raises `RefreshFailed`."""
    form = {
        "client_id": settings.CODEX_CLIENT_ID,
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "scope": REFRESH_SCOPE,
    }
    status, doc = _post(settings.CODEX_AUTH_URL + "/oauth/token", proxy, data=form)
    return _codex_tokens(status, doc, old_refresh_token=refresh_token)


def start_device_login() -> DeviceLogin:
    """Ask for a user code; raises `RefreshFailed` when the issuer refuses (404: device login not enabled)."""
    status, doc = _post_codex("/api/accounts/deviceauth/usercode", json={"client_id": settings.CODEX_CLIENT_ID})
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
    status, doc = _post_codex("/api/accounts/deviceauth/token", json=body)
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
    status, doc = _post_codex("/oauth/token", data=form)
    return _codex_tokens(status, doc, old_refresh_token="")


def _post_codex(path: str, **body: Any) -> tuple[int, dict[str, Any]]:
    return _post(settings.CODEX_AUTH_URL + path, "", **body)


def _codex_tokens(status: int, doc: dict[str, Any], old_refresh_token: str) -> Tokens:
    if granted := _granted(status, doc, old_refresh_token):
        return granted
    code, _ = oauth_error(doc)
    # A 401 is the refresh token's own failure, whatever its code (reused, expired, invalidated): final, as in Codex.
    raise RefreshFailed(_reason(status, doc, ""), permanent=code in FATAL_ERRORS or status == 401)


# -- both -------------------------------------------------------------------------------------------------------
def _post(url: str, proxy: str, **body: Any) -> tuple[int, dict[str, Any]]:
    """One POST to a token endpoint: (status, its JSON object or {}); raises `RefreshFailed` when unreachable."""
    try:
        response = requests.post(
            url,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            timeout=(settings.UPSTREAM_CONNECT_TIMEOUT, 30),  # well inside a refresh claim's 60 s
            proxy=proxy or None,
            **body,
        )
    except RequestException as exc:
        raise RefreshFailed(f"token endpoint unreachable ({type(exc).__name__})", permanent=False) from None
    try:
        doc = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        doc = {}
    return response.status_code, doc if isinstance(doc, dict) else {}


def _granted(status: int, doc: dict[str, Any], old_refresh_token: str) -> Tokens | None:
    """The tokens of a successful answer (expiry from the JWT, else `expires_in`); None for any other."""
    access = doc.get("access_token")
    if status != 200 or not isinstance(access, str) or not access:
        return None
    expires = jwt.expiry(access)
    if expires is None and doc.get("expires_in"):
        expires = datetime.now(UTC) + timedelta(seconds=int(doc["expires_in"]))
    return Tokens(access, doc.get("refresh_token") or old_refresh_token, doc.get("id_token") or "", expires)


def oauth_error(doc: object) -> tuple[str, str]:
    """(code, message) of an OAuth error body, flat (`{"error": "invalid_grant", "error_description": …}`) or
    nested as auth.openai.com answers (`{"error": {"code" | "type", "message"}}`); empty strings when absent."""
    if not isinstance(doc, dict):
        return "", ""
    error, detail = doc.get("error"), doc.get("error_description")
    if isinstance(error, dict):
        detail = error.get("message") or detail
        error = error.get("code") or error.get("type")
    return (error if isinstance(error, str) else ""), (detail if isinstance(detail, str) else "")


def _reason(status: int, doc: dict[str, Any], fallback: str) -> str:
    code, message = oauth_error(doc)
    return f"{code}: {message}".strip(": ") or fallback or f"the token endpoint answered {status}"
