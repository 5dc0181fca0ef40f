"""The contract every upstream adapter implements.

An adapter turns one chat request on one credential into an async iterator of normalized `Delta`s. It
raises `UpstreamError` for anything that went wrong, saying what the pool should do about it; the
pipeline in `openai_compat.services` decides whether another credential may still be tried.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from openai_compat.schema import ChatRequest


class UpstreamCredential(Protocol):
    """What an adapter may read of a credential. The pool's credentials satisfy it; adapters know nothing of
    where credentials are stored. `id` is None for a caller's own token."""

    # Read-only, as the pool's frozen credentials are.
    @property
    def id(self) -> int | None: ...
    @property
    def kind(self) -> str: ...
    @property
    def access_token(self) -> str: ...
    @property
    def refresh_token(self) -> str: ...
    @property
    def account_id(self) -> str: ...
    @property
    def base_url(self) -> str: ...
    @property
    def api_key(self) -> str: ...
    @property
    def wire_api(self) -> str:
        """What an `openai` key's server speaks besides chat: "responses" when it has its own `/responses`."""
        ...


@dataclass(frozen=True, slots=True)
class Window:
    """One quota window of a ChatGPT plan (Codex's `x-codex-primary-*` / `-secondary-*` headers)."""

    used_percent: float
    window_minutes: int | None = None
    resets_at: float | None = None  # epoch seconds


@dataclass(frozen=True, slots=True)
class Quota:
    """What the upstream said of the account's plan quota, on any reply (answer or error)."""

    primary: Window | None = None  # the short window (e.g. 5 h)
    secondary: Window | None = None  # the long window (e.g. a week)
    plan: str = ""


@dataclass(slots=True)
class Delta:
    """One piece of an answer. Several fields may be set; empty ones are left out of the reply."""

    content: str = ""
    reasoning: str = ""
    tool_calls: list[dict[str, Any]] | None = None
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None  # prompt_tokens, completion_tokens, total_tokens; *_details dicts
    conversation_id: str = ""  # the upstream thread, announced before the first output when history is kept
    quota: Quota | None = None  # the account's plan quota, when the upstream reports it (before the first output)
    # The `encrypted_content` of the reasoning item this delta's reasoning belongs to, from a Responses upstream:
    # a Responses client replays it on the next turn (sent once, when the upstream finishes the item).
    encrypted_reasoning: str = ""

    @property
    def has_output(self) -> bool:
        return bool(self.content or self.reasoning or self.tool_calls)


class Action(StrEnum):
    """What the failure says about the credential."""

    NEXT = "next"  # transient (403, 5xx, timeout, empty answer): try another credential
    COOLDOWN = "cooldown"  # rate limited: rest this credential (for one model when `model_scoped`)
    REFRESH = "refresh"  # the access token expired: it needs a refresh before further use
    INVALID = "invalid"  # the credential is dead
    FATAL = "fatal"  # the request itself is bad: no other credential would do better


class UpstreamError(Exception):
    def __init__(
        self,
        message: str,
        *,
        status: int = 502,
        action: Action = Action.NEXT,
        retry_after: float | None = None,
        model_scoped: bool = False,
        type: str = "upstream_error",
        code: str | None = None,
        quota: Quota | None = None,
    ) -> None:
        super().__init__(message)
        self.message, self.status, self.action = message, status, action
        self.retry_after, self.model_scoped, self.type, self.code = retry_after, model_scoped, type, code
        self.quota = quota

    @property
    def retryable(self) -> bool:
        return self.action != Action.FATAL


class Upstream(Protocol):
    calls_tools: bool  # whether the upstream can answer with tool calls (the ChatGPT web backend cannot)

    def stream(self, cred: UpstreamCredential, request: ChatRequest, slug: str) -> AsyncGenerator[Delta, None]:
        """Yield the answer to `request` from the model `slug` using `cred`."""
        ...
