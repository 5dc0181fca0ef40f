"""The admin login is throttled by username and by client address; behind a trusted proxy, the address is
the one the proxy recorded in X-Forwarded-For."""

from __future__ import annotations

import ipaddress

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client, RequestFactory

from tokens import throttle
from tokens.throttle import client_address

pytestmark = pytest.mark.django_db
PROXY = "10.0.0.5"


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch, settings) -> list[float]:
    settings.TRUSTED_PROXIES = (ipaddress.ip_network("10.0.0.0/24"),)
    cache.clear()  # the test process's own memory cache: no lockout carries over from another test
    now = [2_000_000.0]
    monkeypatch.setattr(throttle.time, "time", lambda: now[0])
    User.objects.create_superuser("boss", "", "right-password")
    return now


def log_in(username: str, password: str, client_ip: str) -> str:
    """The outcome of one login through the proxy: "ok", "wrong" or "locked"."""
    client = Client(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=f"{client_ip}, {client_ip}")
    response = client.post("/admin/login/", {"username": username, "password": password, "next": "/admin/"})
    if response.status_code == 302:
        return "ok"
    page = response.content.decode()
    return "locked" if "Too many failed attempts" in page else "wrong"


def test_one_username_is_locked_whatever_the_address(clock):
    for i in range(throttle.FREE_FAILURES + 1):
        assert log_in("boss", "guess", f"198.51.100.{i}") == "wrong"
    assert log_in("boss", "right-password", "198.51.100.99") == "locked"
    assert log_in("Boss ", "right-password", "198.51.100.98") == "locked"  # the same name, spelt differently
    clock[0] += throttle.BASE_LOCK_SECONDS + 1
    assert log_in("boss", "right-password", "198.51.100.99") == "ok"
    assert log_in("boss", "guess", "198.51.100.99") == "wrong"  # the success forgot the failures


def test_one_address_is_locked_whatever_the_username(clock):
    for i in range(throttle.FREE_FAILURES + 1):
        assert log_in(f"user{i}", "guess", "203.0.113.9") == "wrong"
    assert log_in("boss", "right-password", "203.0.113.9") == "locked"
    assert log_in("boss", "right-password", "203.0.113.10") == "ok"  # another client behind the same proxy
    clock[0] += throttle.BASE_LOCK_SECONDS + 1
    assert log_in("nobody", "guess", "203.0.113.9") == "wrong"
    assert log_in("boss", "right-password", "203.0.113.9") == "locked"  # the lockout doubled
    clock[0] += 2 * throttle.BASE_LOCK_SECONDS + 1
    assert log_in("boss", "right-password", "203.0.113.9") == "ok"


@pytest.mark.parametrize(
    ("remote", "forwarded", "expected"),
    [
        ("192.0.2.1", "203.0.113.1", "192.0.2.1"),  # not a trusted proxy: its header is the client's own words
        (PROXY, "", PROXY),
        (PROXY, "203.0.113.1", "203.0.113.1"),
        (PROXY, "6.6.6.6, 203.0.113.1", "203.0.113.1"),  # the left part is whatever the client wrote
        (PROXY, "203.0.113.1, 10.0.0.7", "203.0.113.1"),  # two trusted proxies in a row
        (PROXY, "10.0.0.8, 10.0.0.7", "10.0.0.8"),
        (PROXY, "203.0.113.1,2001:db8::1", "2001:db8::1"),
    ],
)
def test_client_address(remote, forwarded, expected):
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_address(request) == expected
