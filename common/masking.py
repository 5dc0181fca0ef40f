"""How a secret is shown wherever one must be named (admin, import reports, upstream error text)."""

from __future__ import annotations


def mask(secret: str) -> str:
    """Show enough of a secret to tell two apart, never enough to use it: `sk-…abcd`."""
    if not secret:
        return ""
    if len(secret) <= 12:
        return "…"
    return f"{secret[:3]}…{secret[-4:]}"
