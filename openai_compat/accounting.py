"""What one API request costs and how it ended: its client key's limits, the request log, the metrics.

`auth.api_view` opens a `Ticket` for every API request (a context variable: the pipeline, its answer and the
tasks they start all see the same one) and the pipeline fills it in: the model, the admission of the caller's
client key, the credential that answered, the usage. A request ends when both its response is closed (the
body sent, or the client gone) and its answer released its credential; whichever comes last settles the key's
reservation with the tokens used, writes the request log entry (in batches, off the request path) and counts
the metrics. Everything here runs on the event loop: a response closed from a worker thread hands over to it.
"""

from __future__ import annotations

import asyncio
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from openai_compat import metrics
from openai_compat.errors import APIError, model_not_found
from openai_compat.schema import ChatRequest, text_of
from tokens import limits, usage
from tokens.clients import KeyPolicy
from tokens.leases import background
from tokens.models import Outcome

CLIENT_GONE = 499  # the status nginx logs for a client that closed the connection before the reply
LIMIT_HEADERS = tuple(
    f"x-ratelimit-{part}-{of}" for of in ("requests", "tokens") for part in ("limit", "remaining", "reset")
)
MAX_COUNT = 2**31 - 1  # the request log's integer columns
CHARS_PER_TOKEN = 3  # a cautious guess of a prompt's tokens from its text, for the reservation only


@dataclass(slots=True)
class Ticket:
    """One API request from its arrival to the end of its reply."""

    endpoint: str
    request_id: str
    loop: asyncio.AbstractEventLoop
    arrived: float = field(default_factory=time.time)
    started: float = field(default_factory=time.perf_counter)
    key: KeyPolicy | None = None
    who: str = "code"  # the metrics' `key` label: a client key's name, `code` or `own`
    model: str = ""
    kind: str = ""
    credential_id: int | None = None
    first_byte: float | None = None
    admission: limits.Admission | None = None
    headers: dict[str, str] = field(default_factory=dict)  # the key's rate-limit headers
    usage: dict[str, Any] | None = None
    failed: bool = False
    answering: int = 0  # answers that still hold a credential
    status: int | None = None  # set once the response is closed
    error_code: str = ""
    settled: bool = False


_current: ContextVar[Ticket | None] = ContextVar("chat2api_ticket", default=None)


def open_ticket(request: HttpRequest) -> Ticket:
    """The ticket of an API request (its route, not its path: ids stay out of the metrics' labels)."""
    route = request.resolver_match.route if request.resolver_match else request.path
    prefix = f"{settings.API_PREFIX}/" if settings.API_PREFIX else ""
    ticket = Ticket("/" + route.removeprefix(prefix), request.request_id, asyncio.get_running_loop())
    _current.set(ticket)
    return ticket


def identify(ticket: Ticket, key: KeyPolicy | None, own: bool) -> None:
    ticket.key, ticket.who = key, key.name if key is not None else ("own" if own else "code")


async def admit(request: ChatRequest, key: KeyPolicy | None) -> None:
    """Check the caller's client key before a credential is picked: its models (404 as OpenAI answers a model
    the key may not use), then its limits, taking a request and a reservation of tokens until the end."""
    ticket = _current.get()
    if ticket is not None:
        ticket.model = request.model[: metrics.MODEL_CHARS]
    if key is None:
        return
    if not key.allows(request.model):
        raise model_not_found(request.model)
    decision = await limits.admit(key, reservation(request))
    if ticket is not None:
        ticket.headers = decision.headers
    if isinstance(decision, limits.Refused):
        raise _refusal(decision)
    if ticket is None:  # no request to settle it at the end: give it back now
        await limits.settle(decision, 0)
        return
    ticket.admission = decision


def reservation(request: ChatRequest) -> int:
    """Tokens a request may use, held against the key's budgets until it ends: its prompt, guessed from its text,
    and its output cap (`RESERVE_TOKENS` when it sets none)."""
    body = request.native or request.body
    cap = body.get("max_output_tokens") or body.get("max_completion_tokens") or body.get("max_tokens")
    prompt = sum(len(text_of(m.get("content"))) for m in request.messages) // CHARS_PER_TOKEN + 1
    return prompt + (cap if isinstance(cap, int) and cap > 0 else settings.RESERVE_TOKENS)


def _refusal(refused: limits.Refused) -> APIError:
    headers = {**refused.headers, "Retry-After": str(refused.retry_after)}
    if refused.reason in ("daily", "monthly"):
        return APIError(429, refused.message, "insufficient_quota", code="insufficient_quota", headers=headers)
    return APIError(429, refused.message, "requests", code="rate_limit_exceeded", headers=headers)


def answering(kind: str, credential_id: int | None) -> Ticket | None:
    """An answer took a credential and has its first output in hand: the time to first byte. The answer keeps
    the ticket it returns: it may be released from another context (a closer's task)."""
    if (ticket := _current.get()) is None:
        return None
    ticket.kind, ticket.credential_id, ticket.answering = kind, credential_id, ticket.answering + 1
    ticket.first_byte = time.perf_counter()
    metrics.first_byte(ticket.endpoint, kind, ticket.first_byte - ticket.started)
    return ticket


def answered(ticket: Ticket, used: dict[str, Any] | None, failed: bool) -> None:
    """The answer released its credential; `used` is None unless it ran to its end."""
    ticket.usage, ticket.failed, ticket.answering = used, failed, ticket.answering - 1
    _end_if_done(ticket)


def finish_on_close(response: HttpResponse, ticket: Ticket) -> None:
    """End the request once its body was sent (a stream's end), whenever the server closes the response."""
    for header, value in ticket.headers.items():
        response[header] = value
    status = response.status_code
    # Django's own hook for what `close()` must run, called on whatever thread closes the response
    response._resource_closers.append(lambda: ticket.loop.call_soon_threadsafe(_closed, ticket, status))


def abandoned(ticket: Ticket) -> None:
    """The client left before a response was made (the view was cancelled)."""
    _closed(ticket, CLIENT_GONE)


def _closed(ticket: Ticket, status: int) -> None:
    if ticket.status is None:
        ticket.status = status
        _end_if_done(ticket)


def _end_if_done(ticket: Ticket) -> None:
    if ticket.status is None or ticket.answering > 0 or ticket.settled:
        return
    ticket.settled = True
    tokens = _tokens(ticket)
    outcome = _outcome(ticket)
    now = time.perf_counter()
    metrics.finished(ticket.endpoint, ticket.model, ticket.kind, ticket.status, now - ticket.started)
    metrics.count_tokens(ticket.who, ticket.model, tokens["prompt_tokens"], tokens["completion_tokens"])
    usage.record(
        usage.Entry(
            created_at=ticket.arrived,
            key_id=ticket.key.id if ticket.key is not None else None,
            endpoint=ticket.endpoint,
            model=ticket.model,
            credential_id=ticket.credential_id,
            kind=ticket.kind,
            status=ticket.status,
            outcome=outcome,
            prompt_tokens=tokens["prompt_tokens"],
            completion_tokens=tokens["completion_tokens"],
            cached_tokens=tokens["cached_tokens"],
            reasoning_tokens=tokens["reasoning_tokens"],
            first_byte_ms=_ms(ticket.first_byte - ticket.started) if ticket.first_byte is not None else None,
            duration_ms=_ms(now - ticket.started),
            request_id=ticket.request_id,
        )
    )
    if ticket.admission is not None:
        spent = tokens["prompt_tokens"] + tokens["completion_tokens"]
        if outcome == Outcome.CLIENT_CANCELLED and ticket.first_byte is not None and not spent:
            spent = ticket.admission.reserve  # the upstream worked for a client that left: what it may have used
        background(limits.settle(ticket.admission, spent))


def _tokens(ticket: Ticket) -> dict[str, int]:
    used = ticket.usage or {}
    return {
        "prompt_tokens": _count(used.get("prompt_tokens")),
        "completion_tokens": _count(used.get("completion_tokens")),
        "cached_tokens": _count((used.get("prompt_tokens_details") or {}).get("cached_tokens")),
        "reasoning_tokens": _count((used.get("completion_tokens_details") or {}).get("reasoning_tokens")),
    }


def _count(reported: Any) -> int:
    """A count as an upstream reported it, made one the request log can hold (a negative, absurd or non-numeric
    one would fail every batch it is in)."""
    if not isinstance(reported, int | float) or reported != reported:  # NaN
        return 0
    return int(min(max(reported, 0), MAX_COUNT))


def _outcome(ticket: Ticket) -> Outcome:
    status = ticket.status or 0
    if ticket.failed:
        return Outcome.UPSTREAM_ERROR
    if status == CLIENT_GONE or (status < 400 and ticket.first_byte is not None and ticket.usage is None):
        return Outcome.CLIENT_CANCELLED
    if status == 429:
        return Outcome.OVER_BUDGET if ticket.error_code == "insufficient_quota" else Outcome.RATE_LIMITED
    if status >= 500:
        return Outcome.SERVER_ERROR if status == 500 else Outcome.UPSTREAM_ERROR
    return Outcome.REFUSED if status >= 400 else Outcome.COMPLETED


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))
