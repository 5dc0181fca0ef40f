"""Reading a JWT's claims, unverified: we only learn who a token belongs to and when it expires, never trust it.

The claims under `https://api.openai.com/auth` name the ChatGPT workspace (`ChatGPT-Account-ID`), its plan and
the user, as the Codex CLI reads them.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

AUTH_CLAIM = "https://api.openai.com/auth"
PROFILE_CLAIM = "https://api.openai.com/profile"


@dataclass(frozen=True, slots=True)
class Account:
    """Who a token belongs to: the ChatGPT workspace, its plan and the user."""

    account_id: str = ""
    plan: str = ""
    user_id: str = ""
    email: str = ""


def payload(token: str) -> dict[str, Any] | None:
    """The claims of `token`, or None when its middle part is no base64url JSON object."""
    try:
        part = token.split(".")[1]
        doc = orjson.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError):  # binascii.Error and orjson.JSONDecodeError are ValueErrors
        return None
    return doc if isinstance(doc, dict) else None


def expiry(token: str) -> datetime | None:
    """The `exp` claim (we only schedule refreshes with it)."""
    try:
        return datetime.fromtimestamp(int((payload(token) or {})["exp"]), tz=UTC)
    except (KeyError, ValueError, TypeError, OverflowError, OSError):
        return None


def account(*tokens: str) -> Account:
    """The account named by the first of `tokens` whose claims name a ChatGPT workspace."""
    for token in tokens:
        claims = payload(token) or {}
        auth = claims.get(AUTH_CLAIM)
        if isinstance(auth, dict) and auth.get("chatgpt_account_id"):
            profile = claims.get(PROFILE_CLAIM)
            email = claims.get("email") or (profile.get("email") if isinstance(profile, dict) else "")
            user = auth.get("chatgpt_user_id") or auth.get("user_id") or ""
            plan = auth.get("chatgpt_plan_type") or ""
            return Account(str(auth["chatgpt_account_id"]), str(plan), str(user), str(email or ""))
    return Account()
