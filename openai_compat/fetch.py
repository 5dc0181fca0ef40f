"""Fetch a URL a client handed us (an image or a file to pass on), without letting it reach inside the network.

Only http(s); at most `FETCH_MAX_BYTES`; a time limit; through `EXPORT_PROXY_URL` when set. Unless
`FETCH_ALLOW_PRIVATE` is on, every address the host resolves to must be public, and curl connects only to
those checked addresses (pinned with CURLOPT_RESOLVE, so a second DNS answer cannot differ). Redirects are
followed by hand, each hop checked the same way. Behind a proxy it is the proxy that resolves and connects:
the local check still refuses names that resolve to private addresses here.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from curl_cffi import CurlOpt
from curl_cffi.requests import AsyncSession, Response
from curl_cffi.requests.exceptions import RequestException
from django.conf import settings

from common.http import USER_AGENT
from openai_compat.upstreams.transport import close_stream

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_REDIRECTS = 5
TIMEOUT = 30.0  # seconds for the whole fetch
REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Cloud instance-metadata endpoints (AWS, ECS, GCP and Azure use 169.254.169.254; Alibaba, Oracle, AWS IPv6).
METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "192.0.0.192", "fd00:ec2::254")
)


class FetchError(Exception):
    """The URL was refused or could not be fetched; the message says why, for the client."""


@dataclass(frozen=True, slots=True)
class Fetched:
    data: bytes
    content_type: str  # without parameters; "" when the server named none
    url: str  # after redirects


def refusal(ip: IP) -> str | None:
    """Why `ip` must not be fetched from, or None for a public address."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            return refusal(embedded)
    if ip in METADATA:
        return "a cloud metadata address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved or ip.is_unspecified or not ip.is_global:
        return "a reserved address"
    return None


async def resolve(host: str, port: int) -> list[IP]:
    """Every address `host` resolves to (one, for an IP literal)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"its host {host!r} could not be resolved") from exc
    # getaddrinfo may add a scope (`fe80::1%eth0`); the address is what is checked
    return list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))


async def checked_addresses(host: str, port: int) -> list[IP]:
    """The addresses curl may connect to: all of them public, unless private ones are allowed."""
    addresses = await resolve(host, port)
    if not addresses:
        raise FetchError(f"its host {host!r} has no address")
    if not settings.FETCH_ALLOW_PRIVATE:
        for ip in addresses:
            why = refusal(ip)
            if why:
                raise FetchError(f"its host {host!r} resolves to {why} ({ip}), which this server does not fetch from")
    return addresses


async def fetch(url: str) -> Fetched:
    """GET `url` and return its body; `FetchError` when it is refused, fails or is too large."""
    for _ in range(MAX_REDIRECTS + 1):
        result = await _hop(url)
        if isinstance(result, Fetched):
            return result
        url = result
    raise FetchError(f"it redirected more than {MAX_REDIRECTS} times")


async def _hop(url: str) -> Fetched | str:
    """One request to checked addresses only: the body, or the URL a redirect points to."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError("only http:// and https:// URLs can be fetched")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise FetchError("its port is not a number") from None
    addresses = await checked_addresses(parts.hostname, port)
    pinned = ",".join(f"[{ip}]" if ip.version == 6 else str(ip) for ip in addresses)
    async with AsyncSession(
        proxy=settings.EXPORT_PROXY_URL or None,
        timeout=TIMEOUT,
        headers={"User-Agent": USER_AGENT, "Accept": "*/*"},
        curl_options={CurlOpt.RESOLVE: [f"{parts.hostname}:{port}:{pinned}"]},
    ) as session:
        try:
            response = await session.request("GET", url, stream=True, allow_redirects=False)
            try:
                return await _outcome(url, response)
            finally:
                await close_stream(response)  # aborts a body that was refused half-way (too large)
        except RequestException as exc:
            raise FetchError(f"the connection failed ({type(exc).__name__})") from None


async def _outcome(url: str, response: Response) -> Fetched | str:
    location = response.headers.get("location")
    if response.status_code in REDIRECTS and location:
        return urljoin(url, location)
    if response.status_code != 200:
        raise FetchError(f"the server answered HTTP {response.status_code}")
    kind = (response.headers.get("content-type") or "").split(";")[0].strip().lower()
    return Fetched(await _read(response), kind, url)


async def _read(response: Response) -> bytes:
    limit = settings.FETCH_MAX_BYTES
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise FetchError(f"it is larger than the {limit} bytes this server accepts")
    body = bytearray()
    async for chunk in response.aiter_content():
        body += chunk
        if len(body) > limit:
            raise FetchError(f"it is larger than the {limit} bytes this server accepts")
    return bytes(body)
