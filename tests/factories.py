"""Plain factory functions for test data."""

from __future__ import annotations

import secrets
from typing import Any

from tests.fakes.codex_issuer import codex_jwt
from tokens.models import Credential, Kind


def openai_key(base_url: str, api_key: str, models: list[str] | None = None, **fields: Any) -> Credential:
    return Credential.objects.create(
        kind=Kind.OPENAI, base_url=base_url, api_key=api_key, model_names=models or ["fake-model"], **fields
    )


def chatgpt_account(access_token: str, account_id: str = "", refresh_token: str = "", base_url: str = "") -> Credential:
    return Credential.objects.create(
        kind=Kind.CHATGPT,
        access_token=access_token,
        account_id=account_id,
        refresh_token=refresh_token,
        base_url=base_url,
    )


def codex_account(
    account_id: str = "acc-codex-1",
    plan: str = "plus",
    user_id: str = "user-fake",
    refresh_token: str = "",
    lifetime: int = 864000,
) -> Credential:
    """A `codex` account as the sign-in stores it: a JWT access token naming the account, an `rt_…` token."""
    return Credential.objects.create(
        kind=Kind.CODEX,
        access_token=codex_jwt(account_id, plan, user_id, lifetime),
        refresh_token=refresh_token or f"rt_{secrets.token_urlsafe(32)}",
        account_id=account_id,
        plan=plan,
        user_id=user_id,
    )
