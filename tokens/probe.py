"""The admin's "Test" button: one cheap authenticated call per credential that costs no generation.

For an `openai` key that call is `GET /models`, which model discovery (`tokens.discovery`) reads too.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from curl_cffi import requests
from curl_cffi.requests.exceptions import RequestException
from django.conf import settings

from common.http import USER_AGENT
from tokens.models import Credential, Kind

ACCOUNTS_PATH = "/backend-api/accounts/check/v4-2023-04-27"


def probe_url(cred: Credential) -> str:
    if cred.kind == Kind.OPENAI:
        base = cred.base_url.rstrip("/")
        return base + ("/v1/models" if urlsplit(base).path in ("", "/") else "/models")
    return (cred.base_url or settings.CHATGPT_BASE_URL).rstrip("/") + ACCOUNTS_PATH


def get(cred: Credential) -> requests.Response:
    """One authenticated GET of `probe_url`; raises curl_cffi's `RequestException` when unreachable."""
    headers = {"User-Agent": USER_AGENT, "Authorization": f"Bearer {cred.api_key or cred.access_token}"}
    if cred.account_id:
        headers["ChatGPT-Account-ID"] = cred.account_id
    return requests.get(probe_url(cred), headers=headers, timeout=(settings.UPSTREAM_CONNECT_TIMEOUT, 20))


def probe(cred: Credential) -> tuple[bool, str]:
    """(works, what the upstream said), with no secret in the text."""
    try:
        response = get(cred)
    except RequestException as exc:
        return False, f"unreachable ({type(exc).__name__})"
    if response.status_code == 200:
        return True, "ok"
    return False, f"HTTP {response.status_code}"
