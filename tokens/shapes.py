"""What a ChatGPT AccessToken and RefreshToken look like, checked before anything is sent anywhere.

An AccessToken is a JWT (`eyJ….….…`) whose payload decodes to a JSON object. A RefreshToken is either
`rt_…` (auth.openai.com) or the older auth0 form: a long opaque string of URL-safe characters. An API key
(`sk-…`) is neither, whatever its length.
"""

from __future__ import annotations

import re

from common import jwt

JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*", re.ASCII)
REFRESH_TOKEN = re.compile(r"rt_[\w.-]{20,2048}|[\w-]{40,2048}", re.ASCII)


def is_access_token(token: str) -> bool:
    return JWT.fullmatch(token) is not None and jwt.payload(token) is not None


def is_refresh_token(token: str) -> bool:
    return not token.startswith(("sk-", "eyJ")) and REFRESH_TOKEN.fullmatch(token) is not None
