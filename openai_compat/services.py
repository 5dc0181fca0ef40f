"""The one chat pipeline: pick a credential, call its upstream, fail over before the first byte.

The API views and the web chat page both call `start_answer`; nothing here knows about HTTP requests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field, replace

from asgiref.sync import sync_to_async
from django.conf import settings

from openai_compat import accounting, catalog, metrics
from openai_compat.errors import APIError, invalid, model_not_found
from openai_compat.registry import UPSTREAMS
from openai_compat.route import Route
from openai_compat.schema import ChatRequest
from openai_compat.upstreams.base import Action, Delta, UpstreamError
from tokens import refreshing
from tokens import services as token_services
from tokens.clients import KeyPolicy
from tokens.models import Kind, Status
from tokens.oauth import RefreshFailed
from tokens.pool import Lease, NoCredential, PooledCredential, pool

log = logging.getLogger(__name__)
CHALLENGE = "upstream_challenge_required"  # the error code of an upstream that demands a challenge
USAGE_LIMIT = "usage_limit_reached"  # the error code of a plan's quota used up (Codex's 429)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking: an `AUTHORIZATION` code holder (served by the pool) or the owner of `own`."""

    own: PooledCredential | None = None
    key: KeyPolicy | None = None  # the caller's client key, with its models and limits
    affinity: str = ""  # a stable key (e.g. a seed token's) the pool keeps on one credential while usable
    scope: str = ""  # who owns what this caller stores (stored responses): a digest of its key, never the key


def no_tools(model: str) -> APIError:
    message = (
        f"No credential that serves '{model}' can call tools (ChatGPT web accounts cannot); "
        "send the request without 'tools', or use a model served by an API key or a Codex account."
    )
    return invalid("tools", message, code="tools_not_supported")


@dataclass(slots=True)
class Answer:
    """An upstream answer whose first output is already in hand, so nothing can fail over any more."""

    cred: PooledCredential
    head: list[Delta]
    rest: AsyncGenerator[Delta, None]
    route: Route
    failed: bool = field(default=False)
    lease: Lease | None = None  # the pool slot this answer holds; None for a caller's own token
    usage: dict[str, int] | None = None  # set by the renderer once the answer is complete
    closed: bool = False
    ticket: accounting.Ticket | None = None

    def __post_init__(self) -> None:
        self.ticket = accounting.answering(self.cred.kind, self.cred.id)

    @property
    def model(self) -> str:
        return self.route.model

    @property
    def conversation_id(self) -> str:
        """The upstream conversation, when the adapter announced it before the first output."""
        return next((d.conversation_id for d in self.head if d.conversation_id), "")

    async def __aiter__(self) -> AsyncIterator[Delta]:
        for delta in self.head:
            yield delta
        try:
            async for delta in self.rest:
                if delta.quota is not None:  # a later report (Codex's `codex.rate_limits` event)
                    await pool.note_quota(self.cred, delta.quota)
                yield delta
        except UpstreamError:
            self.failed = True
            raise

    async def close(self) -> None:
        """Called in a `finally` however the answer ended (again by its owner: only the first call counts);
        the slot is released whatever happens."""
        if self.closed:
            return
        lease, self.lease, self.closed = self.lease, None, True
        try:
            await self.rest.aclose()
        finally:
            pool.record_use(self.cred, self.model, self.failed, self.usage)
            if self.ticket is not None:
                accounting.answered(self.ticket, self.usage, self.failed)
            if lease is not None:
                await _release(lease)
                if self.failed:
                    peers = self.route.peers(pool.credentials, self.cred)
                    await pool.failed_transiently(self.cred, peers, "the upstream failed mid-answer")
                else:
                    await pool.succeeded(self.cred)


async def start_answer(request: ChatRequest, caller: Caller) -> Answer:
    """Try credentials until one starts answering; raise `APIError` when none does."""
    await accounting.admit(request, caller.key)
    route = Route(request.model, request.calls_tools)
    if caller.own is not None:
        return await _start_own(request, route, caller.own)
    await pool.ready()
    if route.tools and not route.candidates(pool.credentials) and route.served(pool.credentials):
        raise no_tools(request.model)
    tried: set[int] = set()
    last: UpstreamError | None = None
    for _ in range(settings.RETRY_TIMES + 1):
        try:
            lease = await pool.pick(request.model, route.candidates(pool.credentials), tried, caller.affinity)
        except NoCredential as exc:
            raise _exhausted(route, exc, last) from None
        metrics.LEASES.inc()
        cred = lease.cred
        tried.add(cred.row_id)
        try:
            answer = await _attempt(cred, request, route)
        except UpstreamError as err:
            log.warning("credential %s failed for %s: %s", cred, request.model, err.message)
            metrics.UPSTREAM_FAILURES.labels(cred.kind, err.action).inc()
            pool.record_use(cred, request.model, True, None)
            try:  # penalize before releasing, so no other request takes the slot of a credential about to cool
                await _penalize(cred, err, route)
            finally:
                await _release(lease)
            if not err.retryable:
                raise _client_error(err) from None
            last = err
            continue
        except BaseException:  # cancelled (the client went away) or a bug: the slot goes back all the same
            await _release(lease)
            raise
        answer.lease = lease
        return answer
    assert last is not None, "the loop ran, and only a failure goes round again"
    raise _client_error(last)


async def _release(lease: Lease) -> None:
    metrics.LEASES.dec()
    await pool.release(lease)


async def _start_own(request: ChatRequest, route: Route, cred: PooledCredential) -> Answer:
    if route.slug(cred) is None:
        raise model_not_found(request.model)
    if request.calls_tools and not UPSTREAMS[cred.kind].calls_tools:
        raise no_tools(request.model)
    if not cred.access_token:
        try:
            token = await sync_to_async(token_services.own_access_token, thread_sensitive=False)(cred.refresh_token)
        except RefreshFailed as exc:
            raise APIError(401, f"Your RefreshToken was refused: {exc.reason}", code="invalid_api_key") from None
        cred = replace(cred, access_token=token)
    try:
        return await _attempt(cred, request, route)
    except UpstreamError as err:
        if err.action in (Action.INVALID, Action.REFRESH):
            raise APIError(
                401, f"Your token was refused by the upstream: {err.message}", code="invalid_api_key"
            ) from None
        raise _client_error(err) from None


async def _attempt(cred: PooledCredential, request: ChatRequest, route: Route) -> Answer:
    """Open the upstream stream and read up to its first output (for a stream) or to its end (otherwise:
    the client sees nothing before the whole answer, so any failure until then can still fail over).
    An empty answer is a failure; a moderation block before any text is an answer (`content_filter`).
    """
    fresh = await _fresh(cred)
    refreshed, cred = fresh is not cred, fresh
    slug = route.slug(cred)
    assert slug is not None, "only a credential that serves the model is tried"
    stream = UPSTREAMS[cred.kind].stream(cred, request, slug)
    head: list[Delta] = []
    started = False
    try:
        async for delta in stream:
            if delta.quota is not None:
                await pool.note_quota(cred, delta.quota)
            head.append(delta)
            started = started or delta.has_output or delta.finish_reason == "content_filter"
            if started and request.stream:
                return Answer(cred, head, stream, route)
    except UpstreamError as err:
        await stream.aclose()
        if refreshed and err.action == Action.REFRESH:  # a new token refused at once: no refresh will help
            raise _sign_in_again(err) from None
        raise
    except BaseException:
        await stream.aclose()
        raise
    if started:
        return Answer(cred, head, stream, route)
    raise UpstreamError("The upstream returned an empty answer.")


def _sign_in_again(err: UpstreamError) -> UpstreamError:
    """The upstream refused a token it had just issued (the session was revoked, e.g. after a plan change)."""
    message = f"{err.message} (refused right after a refresh: the account must be signed in again)"
    return UpstreamError(message, status=err.status, action=Action.INVALID, type=err.type, code=err.code)


async def _fresh(cred: PooledCredential) -> PooledCredential:
    """A pool credential whose access token expired (or was refused) is refreshed inline, once, cluster-wide."""
    if cred.id is None or not cred.stale(time.time()):
        return cred
    row = await sync_to_async(refreshing.refresh_inline, thread_sensitive=False)(cred.id)
    if row is None or row.status != Status.ACTIVE:
        reason = row.last_error if row is not None else "the refresh did not finish in time"
        raise UpstreamError(f"The access token could not be refreshed: {reason}")
    return replace(PooledCredential.from_model(row), models=cred.models)


def _challenged(err: UpstreamError | None) -> bool:
    return err is not None and err.code == CHALLENGE


async def _penalize(cred: PooledCredential, err: UpstreamError, route: Route) -> None:
    if err.quota is not None:
        await pool.note_quota(cred, err.quota)
    # A demanded challenge, or a plan's usage limit (a fact until its reset), is not a rate limit: its cooldown
    # holds even with ENABLE_LIMIT off.
    if err.action == Action.COOLDOWN and (settings.ENABLE_LIMIT or _challenged(err) or err.code == USAGE_LIMIT):
        seconds = err.retry_after or settings.DEFAULT_COOLDOWN_SECONDS
        await pool.cool_down(cred, seconds, route.model if err.model_scoped else None, err.message)
    elif err.action == Action.REFRESH:
        status = Status.NEEDS_REFRESH if cred.refresh_token else Status.INVALID
        await pool.disable(cred, status, err.message)
    elif err.action == Action.INVALID:
        await pool.disable(cred, Status.INVALID, err.message)
    elif err.action == Action.NEXT:
        await pool.failed_transiently(cred, route.peers(pool.credentials, cred), err.message)


def _exhausted(route: Route, exc: NoCredential, last: UpstreamError | None) -> APIError:
    model = route.model
    if exc.retry_after is not None and not _challenged(last):
        wait = int(exc.retry_after + 0.999)
        state = "at its concurrency limit" if exc.busy else "cooling down"
        return APIError(
            429,
            f"Every credential that serves '{model}' is {state}; retry in {wait} s."
            + (f" Last upstream reason: {last.message}" if last else ""),
            type="rate_limit_error",
            code="rate_limit_exceeded",
            headers={"Retry-After": str(wait)},
        )
    if last is not None:
        return _client_error(last)
    if not route.served(pool.credentials) and not route.known:
        return model_not_found(model)
    return APIError(
        503, f"No usable credential can serve '{model}' right now.", type="server_error", code="no_credential"
    )


def _client_error(err: UpstreamError) -> APIError:
    if err.action == Action.FATAL:
        return APIError(err.status, err.message, type=err.type, code=err.code)
    if err.action == Action.COOLDOWN and not _challenged(err):
        wait = str(int((err.retry_after or settings.DEFAULT_COOLDOWN_SECONDS) + 0.999))
        message = f"The upstream rate limited every credential tried: {err.message}"
        return APIError(
            429, message, type="rate_limit_error", code="rate_limit_exceeded", headers={"Retry-After": wait}
        )
    return APIError(
        err.status if err.status >= 500 else 502,
        f"The upstream failed after every retry: {err.message}",
        type=err.type,
        code=err.code or "upstream_error",
    )


def available_models() -> dict[str, int]:
    """The models the pool can serve now, name → `created`; from the snapshot, no query."""
    creds = pool.credentials
    kinds = {c.kind for c in creds}
    names = [
        *(catalog.chatgpt_model_names() if Kind.CHATGPT in kinds else ()),
        *(catalog.codex_model_names() if Kind.CODEX in kinds else ()),
    ]
    return catalog.listed_models(names, (m for c in creds if c.kind == Kind.OPENAI for m in c.listed_models()))
