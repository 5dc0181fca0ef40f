"""`GET /v1/files/<token>`: a generated image or file, fetched fresh from upstream with the right account.

The signed, expiring token is the authorization (no API key): it names the credential and the file. The
bytes are streamed through, so the client never sees an upstream URL or needs upstream credentials.
Links are signed here rather than in the adapter, which knows nothing of the pool or of stored secrets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from functools import partial
from typing import Any
from urllib.parse import quote

from curl_cffi.requests import Response
from curl_cffi.requests.exceptions import RequestException
from django.conf import settings
from django.core import signing
from django.core.signing import TimestampSigner
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import reverse

from common.logs import bind_request_id
from openai_compat.errors import APIError, error_response
from openai_compat.upstreams.base import UpstreamCredential, UpstreamError
from openai_compat.upstreams.chatgpt_files import open_download
from openai_compat.upstreams.chatgpt_markdown import Asset
from openai_compat.upstreams.chatgpt_web import Backend
from openai_compat.upstreams.transport import close_stream
from tokens import crypto
from tokens.pool import PooledCredential, pool

PASSED_HEADERS = ("last-modified", "etag")
# Where this request reached the gateway ("https://host"), for absolute links; empty gives a path.
link_origin: ContextVar[str] = ContextVar("file_link_origin", default="")
LINK_SALT = "chat2api.file-link"


def links(cred: UpstreamCredential) -> Callable[[Asset], str]:
    """How the files of an answer starting now on `cred` are linked (the ChatGPT adapter's `links`)."""
    return partial(file_link, cred, link_origin.get())


def file_link(cred: UpstreamCredential, origin: str, asset: Asset) -> str:
    """A gateway URL (under `origin`) that downloads `asset` with `cred`; "" when files cannot be downloaded."""
    if settings.HISTORY_DISABLED:
        return ""  # without history the upstream keeps no conversation to download from
    if cred.id is not None:
        who: Any = cred.id
    elif cred.access_token:  # a caller's own token: carried encrypted, since no pool can look it up
        who = [crypto.encrypt(cred.access_token), cred.account_id]
    else:
        return ""
    payload = [who, asset.kind, asset.id, asset.conversation_id, asset.message_id]
    token = TimestampSigner(salt=LINK_SALT).sign_object(payload, compress=True)
    return origin + reverse("file_link", args=[token])


def read_link(token: str) -> tuple[int | PooledCredential, Asset]:
    """The credential (a pool id, or a caller's own) and asset of a link; `signing.BadSignature` if forged
    or expired (`SignatureExpired`)."""
    who, kind, file_id, conversation_id, message_id = TimestampSigner(salt=LINK_SALT).unsign_object(
        token, max_age=settings.FILE_LINK_SECONDS
    )
    asset = Asset(kind, file_id, conversation_id, message_id)
    if isinstance(who, int):
        return who, asset
    secret, account_id = who
    return PooledCredential.own(crypto.decrypt(secret), account_id), asset


async def download(request: HttpRequest, token: str) -> HttpResponse:
    """A generated file, relayed from the upstream; the reply carries its request id as API replies do."""
    request_id = bind_request_id(request.headers.get("X-Request-Id"))
    response = await _download(request, token)
    response["X-Request-Id"] = request_id
    return response


async def _download(request: HttpRequest, token: str) -> HttpResponse:
    try:
        if request.method not in ("GET", "HEAD"):
            raise APIError(405, f"Method {request.method} is not allowed here.", code="method_not_allowed")
        if settings.HISTORY_DISABLED:
            raise APIError(404, "File links need chat history: this server runs with HISTORY_DISABLED=true.")
        who, asset = _read(token)
        cred = await _credential(who)
        upstream, name = await open_download(Backend.of(cred), asset)
    except APIError as err:
        return error_response(err)
    except UpstreamError as err:
        return error_response(APIError(502, f"The upstream could not serve this file: {err.message}", type=err.type))
    kind = upstream.headers.get("content-type") or "application/octet-stream"
    response = StreamingHttpResponse(_relay(upstream), content_type=kind)
    headers = [*PASSED_HEADERS, *(() if upstream.headers.get("content-encoding") else ("content-length",))]
    for header in headers:  # curl decodes a compressed body, so its length is only known when it was not
        if upstream.headers.get(header):
            response[header] = upstream.headers[header]
    disposition = "inline" if kind.startswith("image/") else "attachment"
    response["Content-Disposition"] = f"{disposition}; filename*=UTF-8''{quote(name or 'file', safe='')}"
    response["Cache-Control"] = "private, max-age=3600"
    return response


def _read(token: str) -> tuple[int | PooledCredential, Asset]:
    try:
        return read_link(token)
    except signing.SignatureExpired:
        raise APIError(410, "This file link has expired.", code="file_link_expired") from None
    except (signing.BadSignature, ValueError, TypeError):
        raise APIError(404, "This file link is not valid.", code="file_link_invalid") from None


async def _credential(who: int | PooledCredential) -> PooledCredential:
    if isinstance(who, PooledCredential):
        return who
    await pool.ready()
    for cred in pool.credentials:
        if cred.id == who:
            return cred
    raise APIError(404, "The account that made this file is no longer in use here.", code="file_link_invalid")


async def _relay(upstream: Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in upstream.aiter_content():
            yield chunk
    except RequestException:
        return  # the upstream broke off: the client sees a short body, as with any cut download
    finally:
        await close_stream(upstream)  # a client that went away stops the upstream transfer too
