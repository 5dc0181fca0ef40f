"""Fetching user-supplied URLs: http(s) only, public addresses only (after DNS, on every hop), size-capped."""

from __future__ import annotations

import asyncio
import ipaddress

import httpx
import pytest

from openai_compat import fetch
from tests.factories import chatgpt_account
from tests.fakes import chatgpt_server as fake
from tests.gateway import settle
from tests.spec import assert_valid

HTTP = httpx.Client(timeout=30)
REFUSED = [
    "127.0.0.1",
    "127.8.9.10",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "169.254.10.10",
    "100.100.100.200",
    "100.64.0.1",
    "0.0.0.0",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd00:ec2::254",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "2002:7f00:1::",  # 6to4 wrapping 127.0.0.1
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1 is not global either
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e"]


@pytest.mark.parametrize("address", REFUSED)
def test_non_public_addresses_are_refused(address: str):
    assert fetch.refusal(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str):
    assert fetch.refusal(ipaddress.ip_address(address)) is None


def test_metadata_and_loopback_are_named():
    assert fetch.refusal(ipaddress.ip_address("169.254.169.254")) == "a cloud metadata address"
    assert fetch.refusal(ipaddress.ip_address("::ffff:127.0.0.1")) == "a loopback address"


def test_every_resolved_address_is_checked(monkeypatch, settings):
    settings.FETCH_ALLOW_PRIVATE = False

    async def resolve(host: str, port: int) -> list:
        return [ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("10.0.0.5")]

    monkeypatch.setattr(fetch, "resolve", resolve)
    with pytest.raises(fetch.FetchError, match=r"private address \(10\.0\.0\.5\)"):
        asyncio.run(fetch.checked_addresses("mixed.example", 443))


def test_a_name_that_resolves_to_loopback_is_refused(settings):
    settings.FETCH_ALLOW_PRIVATE = False
    with pytest.raises(fetch.FetchError, match="loopback"):
        asyncio.run(fetch.checked_addresses("localhost", 80))


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x", "gopher://x", "http://", "https://:80/"])
def test_only_http_urls(url: str):
    with pytest.raises(fetch.FetchError, match="only http"):
        asyncio.run(fetch.fetch(url))


def test_each_redirect_hop_is_checked(fake_chatgpt, monkeypatch, settings):
    """The first hop (on loopback, let through here) redirects to the metadata address: refused unfetched."""
    settings.FETCH_ALLOW_PRIVATE = False
    real = fetch.refusal
    monkeypatch.setattr(fetch, "refusal", lambda ip: None if ip == ipaddress.ip_address("127.0.0.1") else real(ip))
    url = f"{fake_chatgpt.url}/public/redirect?to=http://169.254.169.254/latest/meta-data/"
    with pytest.raises(fetch.FetchError, match="cloud metadata"):
        asyncio.run(fetch.fetch(url))
    assert [r["path"] for r in fake_chatgpt.requests] == ["/public/redirect"]
    got = asyncio.run(fetch.fetch(f"{fake_chatgpt.url}/public/redirect?to=/public/fox.png"))
    assert got.data == fake.PUBLIC["fox.png"][0] and got.url.endswith("/public/fox.png")


def test_names_are_pinned_to_checked_addresses_and_size_is_capped(fake_chatgpt, settings):
    settings.FETCH_ALLOW_PRIVATE, settings.FETCH_MAX_BYTES = True, 1000
    got = asyncio.run(fetch.fetch(f"http://localhost:{fake_chatgpt.port}/public/fox.png"))
    assert got.data == fake.PUBLIC["fox.png"][0] and got.content_type == "image/png"
    with pytest.raises(fetch.FetchError, match="larger than the 1000 bytes"):
        asyncio.run(fetch.fetch(f"{fake_chatgpt.url}/public/big.bin"))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/public/fox.png",
        "http://localhost:{port}/public/fox.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:{port}/public/fox.png",
        "file:///etc/passwd",
    ],
)
def test_gateway_refuses_internal_urls_and_sends_nothing_upstream(gateway, fake_chatgpt, url):
    chatgpt_account("at-ok-fetch")
    settle()
    part = {"type": "image_url", "image_url": {"url": url.format(port=fake_chatgpt.port)}}
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}, part]}]}
    response = HTTP.post(gateway.url + "/v1/chat/completions", json=body, headers={"Authorization": "Bearer test-code"})
    assert response.status_code == 400, response.text
    assert_valid("ErrorResponse", response.json())
    error = response.json()["error"]
    assert error["param"] == "messages[0].content[1].image_url" and error["code"] == "invalid_url"
    assert fake_chatgpt.calls["at-ok-fetch"] == 0
    assert fake_chatgpt.requests == []  # not the image, not the sentinel, not an upload
