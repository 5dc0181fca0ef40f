"""RefreshToken → AccessToken exchange with the OAuth token endpoint (protocol notes §3.10)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson
from curl_cffi import requests
from curl_cffi.requests.exceptions import RequestException
from django.conf import settings

from chat2api_site import __version__

REDIRECT_URI = "com.openai.chat://auth0.openai.com/ios/com.openai.chat/callback"
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


@dataclass(frozen=True, slots=True)
class Refreshed:
    access_token: str = field(repr=False)
    expires_at: datetime | None
    refresh_token: str = field(default="", repr=False)  # set when the endpoint rotated it


class RefreshFailed(Exception):
    """`permanent` when the endpoint refused the token itself (it will never work again)."""

    def __init__(self, reason: str, permanent: bool) -> None:
        super().__init__(reason)
        self.reason, self.permanent = reason, permanent


def jwt_expiry(token: str) -> datetime | None:
    """The `exp` claim of a JWT, read without verifying it (we only schedule refreshes with it)."""
    try:
        payload = token.split(".")[1]
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return datetime.fromtimestamp(int(claims["exp"]), tz=UTC)
    except (IndexError, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        return None


def exchange(refresh_token: str, proxy: str = "") -> Refreshed:
    """One call to the token endpoint; raises `RefreshFailed` with the endpoint's reason."""
    newer = refresh_token.startswith("rt_")
    url = settings.OAUTH_RT_TOKEN_URL if newer else settings.OAUTH_TOKEN_URL
    body = {
        "client_id": settings.OAUTH_RT_CLIENT_ID if newer else settings.OAUTH_CLIENT_ID,
        "grant_type": "refresh_token",
        "redirect_uri": REDIRECT_URI,
        "refresh_token": refresh_token,
    }
    try:
        response = requests.post(
            url,
            json=body,
            headers={"User-Agent": f"chat2api/{__version__}"},
            timeout=(settings.UPSTREAM_CONNECT_TIMEOUT, 30),
            proxy=proxy or None,
        )
    except RequestException as exc:
        raise RefreshFailed(f"token endpoint unreachable ({type(exc).__name__})", permanent=False) from None
    return _parse(response.status_code, response.content)


def _parse(status: int, raw: bytes) -> Refreshed:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        doc = {}
    if status == 200 and isinstance(doc, dict) and doc.get("access_token"):
        token = doc["access_token"]
        expires = jwt_expiry(token)
        if expires is None and doc.get("expires_in"):
            expires = datetime.now(UTC) + timedelta(seconds=int(doc["expires_in"]))
        return Refreshed(token, expires, doc.get("refresh_token") or "")
    code, detail = oauth_error(doc)
    reason = f"{code}: {detail}".strip(": ") or f"token endpoint answered {status}"
    if status == GONE:
        said = f" ({reason})" if code or detail else ""
        raise RefreshFailed(f"the token endpoint answered 404{said}: it does not serve this token", permanent=True)
    raise RefreshFailed(reason, permanent=code in FATAL_ERRORS)


def oauth_error(doc: object) -> tuple[str, str]:
    """(code, message) of an OAuth error body, flat (`{"error": "invalid_grant", "error_description": …}`) or
    nested as auth.openai.com answers (`{"error": {"code" | "type", "message"}}`); empty strings when absent."""
    if not isinstance(doc, dict):
        return "", ""
    error, detail = doc.get("error"), doc.get("error_description")
    if isinstance(error, dict):
        error, detail = error.get("code") or error.get("type"), error.get("message") or detail
    return (error if isinstance(error, str) else ""), (detail if isinstance(detail, str) else "")
