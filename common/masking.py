"""How a secret is shown wherever one must be named (admin, import reports, upstream error text)."""

from __future__ import annotations

import re

# Secrets of any credential that an upstream might echo in an error: API keys and JWTs.
SECRET_PATTERN = re.compile(r"sk-[\w-]{12,}|eyJ[\w-]+\.[\w-]+\.[\w-]+")


def mask(secret: str) -> str:
    """Show enough of a secret to tell two apart, never enough to use it: `sk-…abcd`."""
    if not secret:
        return ""
    if len(secret) <= 12:
        return "…"
    return f"{secret[:3]}…{secret[-4:]}"


def redact(text: str, *secrets: str) -> str:
    """`text` with each of `secrets`, and anything shaped like an API key or a JWT, masked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, mask(secret))
    return SECRET_PATTERN.sub(lambda found: mask(found.group()), text)
