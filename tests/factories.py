"""Plain factory functions for test data."""

from __future__ import annotations

from tokens.models import Credential, Kind


def openai_key(base_url: str, api_key: str, models: list[str] | None = None) -> Credential:
    return Credential.objects.create(
        kind=Kind.OPENAI, base_url=base_url, api_key=api_key, model_names=models or ["fake-model"]
    )


def chatgpt_account(access_token: str, account_id: str = "", refresh_token: str = "", base_url: str = "") -> Credential:
    return Credential.objects.create(
        kind=Kind.CHATGPT,
        access_token=access_token,
        account_id=account_id,
        refresh_token=refresh_token,
        base_url=base_url,
    )
