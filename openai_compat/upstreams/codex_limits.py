"""What the Codex backend says about an account (protocol A3, A4): its plan quota and its failures.

Quota arrives as `x-codex-primary-*` / `x-codex-secondary-*` headers (on answers and errors alike) and as
`codex.rate_limits` events. Failures become `UpstreamError`s whose `Action` tells the pool what to do
with the account: a used-up plan cools the whole account (not one model) until the plan resets.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from django.conf import settings

from openai_compat.upstreams.base import Action, Quota, UpstreamCredential, UpstreamError, Window
from openai_compat.upstreams.transport import error_text, retry_after, scrub

# A bad body is answered with FastAPI's `{"detail": …}`: any account would get the same answer.
DETERMINISTIC = {400, 413, 422}
TRY_AGAIN = re.compile(r"try again in\s*([\d.]+)\s*(ms|s)", re.IGNORECASE)


def _number(value: Any) -> float | None:
    try:
        return float(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


def _window(fields: Sequence[Any], now: float) -> Window | None:
    """One window from its (used, minutes, reset at, reset after) fields, header or event."""
    used, minutes, reset_at, reset_after = fields
    percent = _number(used)
    if percent is None:
        return None
    at, after, span = _number(reset_at), _number(reset_after), _number(minutes)
    return Window(
        used_percent=percent,
        window_minutes=int(span) if span is not None else None,
        resets_at=at if at is not None else (now + after if after is not None else None),
    )


def quota_from_headers(headers: Mapping[str, str | None], now: float | None = None) -> Quota | None:
    """The `x-codex-{primary,secondary}-*` snapshot, or None when the reply carried none."""
    now = time.time() if now is None else now

    def window(name: str) -> Window | None:
        prefix = f"x-codex-{name}-"
        return _window([headers.get(prefix + k) for k in _HEADER_FIELDS], now)

    primary, secondary = window("primary"), window("secondary")
    if primary is None and secondary is None:
        return None
    return Quota(primary=primary, secondary=secondary, plan=headers.get("x-codex-plan-type") or "")


_HEADER_FIELDS = ("used-percent", "window-minutes", "reset-at", "reset-after-seconds")
_EVENT_FIELDS = ("used_percent", "window_minutes", "reset_at", "reset_after_seconds")


def quota_from_event(event: dict[str, Any], now: float | None = None) -> Quota | None:
    """A `codex.rate_limits` event's snapshot."""
    now = time.time() if now is None else now
    limits = event.get("rate_limits") or {}

    def window(name: str) -> Window | None:
        raw = limits.get(name)
        return _window([raw.get(k) for k in _EVENT_FIELDS], now) if isinstance(raw, dict) else None

    primary, secondary = window("primary"), window("secondary")
    if primary is None and secondary is None:
        return None
    return Quota(primary=primary, secondary=secondary, plan=event.get("plan_type") or "")


def failure(status: int, raw: bytes, headers: Mapping[str, str | None], cred: UpstreamCredential) -> UpstreamError:
    """The `UpstreamError` for a non-200 answer, with the quota its headers carried."""
    quota = quota_from_headers(headers)
    reason = error_text(raw, cred)
    error = _error_object(raw)
    kind = str(error.get("type") or error.get("code") or "")
    if kind == "usage_not_included":
        return UpstreamError(
            f"This account's plan does not include Codex: {reason}", action=Action.INVALID, code=kind, quota=quota
        )
    if status == 429:
        return _limited(reason, kind, error, headers, quota)
    if status == 401:
        return UpstreamError(f"The Codex backend refused the access token: {reason}", action=Action.REFRESH)
    if status == 403 and _is_html(raw, headers):
        return UpstreamError(
            "The Codex backend's edge answered 403 with a challenge page; chat2api never solves challenges, "
            "so this account was skipped.",
            type="upstream_challenge_required",
            code="upstream_challenge_required",
            quota=quota,
        )
    if status in DETERMINISTIC:
        return UpstreamError(
            reason, status=status, action=Action.FATAL, type="invalid_request_error", code=kind or None
        )
    return UpstreamError(f"The Codex backend answered {status}: {reason}", code=kind or None, quota=quota)


def _limited(
    reason: str, kind: str, error: dict[str, Any], headers: Mapping[str, str | None], quota: Quota | None
) -> UpstreamError:
    if kind == "usage_limit_reached":
        resets_at, resets_in = _number(error.get("resets_at")), _number(error.get("resets_in_seconds"))
        wait = resets_at - time.time() if resets_at is not None else resets_in
        plan = error.get("plan_type") or (quota.plan if quota else "")
        return UpstreamError(
            f"The account's {plan or 'plan'} usage limit has been reached: {reason}",
            status=429,
            action=Action.COOLDOWN,
            retry_after=max(1.0, wait) if wait is not None else settings.DEFAULT_COOLDOWN_SECONDS,
            code=kind,
            quota=quota,
        )
    return UpstreamError(
        reason,
        status=429,
        action=Action.COOLDOWN,
        retry_after=retry_after(headers, settings.DEFAULT_COOLDOWN_SECONDS),
        code=kind or "rate_limit_exceeded",
        quota=quota,
    )


def stream_failure(error: dict[str, Any], cred: UpstreamCredential) -> UpstreamError:
    """A `response.failed` (or `error`) event after the 200: the error codes of protocol A3."""
    code = str(error.get("code") or error.get("type") or "")
    message = scrub(str(error.get("message") or code or "no reason given"), cred)
    if code == "context_length_exceeded":
        return UpstreamError(message, status=400, action=Action.FATAL, type="invalid_request_error", code=code)
    if code == "usage_not_included":
        return UpstreamError(f"This account's plan does not include Codex: {message}", action=Action.INVALID)
    if code in ("rate_limit_exceeded", "usage_limit_reached", "insufficient_quota"):
        found = TRY_AGAIN.search(message)
        wait = float(found[1]) / (1000 if found[2].lower() == "ms" else 1) if found else None
        return UpstreamError(
            message,
            status=429,
            action=Action.COOLDOWN,
            retry_after=max(1.0, wait) if wait else settings.DEFAULT_COOLDOWN_SECONDS,
            code=code,
        )
    return UpstreamError(f"The Codex backend failed the answer: {message}", code=code or None)


def _error_object(raw: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    error = doc.get("error") if isinstance(doc, dict) else None
    return error if isinstance(error, dict) else {}


def _is_html(raw: bytes, headers: Mapping[str, str | None]) -> bool:
    kind = (headers.get("content-type") or "").lower()
    return "text/html" in kind or raw.lstrip()[:1] == b"<"
