"""Signing a ChatGPT account in through Codex's device-code flow, run by the server for the admin's page.

The login lives in the operator's (server-side) session; its device id, which with the user code is enough
to collect the account's tokens, is kept encrypted. The page asks for a step every `interval` seconds,
and the server itself never polls the issuer sooner than that, whatever the page does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from django.contrib.sessions.backends.base import SessionBase

from tokens import crypto, importing, oauth
from tokens.oauth import RefreshFailed

SESSION_KEY = "codex_device_login"


@dataclass(frozen=True, slots=True)
class Step:
    state: str  # pending | done | failed
    message: str = ""


def start(session: SessionBase) -> oauth.DeviceLogin:
    """Ask the issuer for a user code and remember the login; raises `RefreshFailed`."""
    login = oauth.start_device_login()
    session[SESSION_KEY] = {
        "device": crypto.encrypt(login.device_auth_id),
        "code": login.user_code,
        "interval": login.interval,
        "expires_at": login.expires_at,
        "next_poll": time.time() + login.interval,
    }
    return login


def running(session: SessionBase) -> oauth.DeviceLogin | None:
    saved: dict[str, Any] | None = session.get(SESSION_KEY)
    if saved is None or saved["expires_at"] <= time.time():
        return None
    device = crypto.decrypt(saved["device"])
    return oauth.DeviceLogin(device, saved["code"], saved["interval"], saved["expires_at"])


def step(session: SessionBase) -> Step:
    """At most one poll of the issuer per interval; once approved, the account is stored."""
    login, saved = running(session), session.get(SESSION_KEY)
    if login is None or saved is None:
        session.pop(SESSION_KEY, None)
        return Step("failed", "No sign-in is running, or its code expired: get a new code.")
    if time.time() < saved["next_poll"]:
        return Step("pending")
    session[SESSION_KEY] = {**saved, "next_poll": time.time() + login.interval}
    try:
        tokens = oauth.poll_device_login(login)
    except RefreshFailed as exc:
        session.pop(SESSION_KEY, None)
        return Step("failed", f"The sign-in failed: {exc.reason}")
    if tokens is None:
        return Step("pending")
    session.pop(SESSION_KEY, None)
    return _store(tokens)


def _store(tokens: oauth.Tokens) -> Step:
    try:
        entry = importing.codex_entry(tokens)
    except importing.LineError as exc:
        return Step("failed", f"The issuer's answer is not an account: {exc}")
    result = importing.store([entry])
    plan = entry.plan or "plan unknown"
    return Step("done", f"Signed in ChatGPT account {entry.account_id} ({plan}): {result.counts}")
