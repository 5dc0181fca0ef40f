"""`GET /v1/files/<token>`: a generated image or file, fetched fresh from upstream with the right account.

The signed, expiring token is the authorization (no API key): it names the credential and the file. The
bytes are streamed through, so the client never sees an upstream URL or needs upstream credentials.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

from curl_cffi.requests import Response
from curl_cffi.requests.exceptions import RequestException
from django.conf import settings
from django.core import signing
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from openai_compat.errors import APIError, error_response
from openai_compat.upstreams.base import UpstreamError
from openai_compat.upstreams.chatgpt_files import open_download, read_link
from openai_compat.upstreams.chatgpt_markdown import Asset
from openai_compat.upstreams.chatgpt_web import Backend
from openai_compat.upstreams.transport import close_stream
from tokens.pool import PooledCredential, pool

PASSED_HEADERS = ("last-modified", "etag")


async def download(request: HttpRequest, token: str) -> HttpResponse:
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
