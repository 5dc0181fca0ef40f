"""Outbound HTTP: long-lived curl_cffi sessions, one per (upstream origin, proxy, event loop), reused across
requests, the credential's sticky proxy, and the User-Agent every call (sessions and one-off calls) carries.

curl_cffi is used as a plain HTTP client: no browser impersonation, an honest User-Agent.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from curl_cffi import CurlOpt
from curl_cffi.requests import AsyncSession
from django.conf import settings

from common.version import __version__

USER_AGENT = f"chat2api/{__version__}"

_sessions: dict[tuple[str, str, int], AsyncSession] = {}


def session_for(url: str, proxy: str = "") -> AsyncSession:
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
    key = (origin, proxy, id(asyncio.get_running_loop()))
    session = _sessions.get(key)
    if session is None:
        session = AsyncSession(
            max_clients=settings.UPSTREAM_MAX_CLIENTS,
            proxy=proxy or None,
            headers={"User-Agent": USER_AGENT},
            # One session serves many credentials: a cookie set for one account must never ride along
            # with another's request, so the session keeps no cookie jar at all.
            discard_cookies=True,
            timeout=(settings.UPSTREAM_CONNECT_TIMEOUT, settings.UPSTREAM_READ_TIMEOUT),
            # libcurl keeps a 64 KB upload buffer per transfer for as long as the answer streams; bodies go out in
            # 16 KB pieces instead (its minimum): ~30 MB less with 1,000 streams open.
            curl_options={CurlOpt.UPLOAD_BUFFERSIZE: 16384},
        )
        _sessions[key] = session
    return session


def proxy_for(cred_id: int | None) -> str:
    """The credential's own outbound proxy: sticky, so an account always leaves from the same address."""
    proxies = settings.PROXY_URL
    if not proxies:
        return ""
    return proxies[(cred_id or 0) % len(proxies)]
