"""The page's routes with Django's test client: the switch, login and logout, throttling, headers, cookies,
CSRF, the session's contents, and the conversation endpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.test import Client

from mirror.models import Conversation
from tests.fakes.oauth_server import access_token
from tests.mirror.helpers import seed_token
from tokens import throttle

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent.parent
CHAT_ROUTES = ("/login", "/logout", "/chat/api/models", "/chat/api/conversations", "/chat/api/conversations/x/send")


@pytest.fixture(autouse=True)
def page_on(settings):
    settings.ENABLE_GATEWAY = True
    settings.AUTHORIZATION = ["test-code"]
    if "mirror.security.secure_cookies" not in settings.MIDDLEWARE:  # until settings.py lists it
        stack = list(settings.MIDDLEWARE)
        sessions = stack.index("django.contrib.sessions.middleware.SessionMiddleware")
        settings.MIDDLEWARE = [*stack[:sessions], "mirror.security.secure_cookies", *stack[sessions:]]
    cache.clear()
    return settings


def logged_in(token: str = "test-code") -> Client:
    client = Client()
    response = client.post("/login", {"token": token})
    assert response.status_code == 302, response.content.decode()
    return client


# -- the switch ------------------------------------------------------------------------------------
def test_off_shows_the_landing_page_and_hides_the_chat_routes(settings):
    settings.ENABLE_GATEWAY = False
    client = Client()
    landing = client.get("/", {"token": "test-code"})
    assert landing.status_code == 200
    html = landing.content.decode()
    assert "ENABLE_GATEWAY=true" in html and "http://testserver/v1" in html and "/admin/" in html
    assert "sessionid" not in landing.cookies  # the token was ignored
    for path in CHAT_ROUTES:
        assert client.get(path).status_code == 404, path
        assert client.post(path).status_code == 404, path


@pytest.mark.parametrize("gateway", [True, False])
def test_the_api_is_unaffected_by_the_switch(settings, gateway):
    settings.ENABLE_GATEWAY = gateway
    response = Client().get("/v1/models")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_on_without_login_redirects_to_login():
    response = Client().get("/")
    assert response.status_code == 302 and response["Location"] == "/login"
    assert Client().get("/chat/api/conversations").json()["error"]["code"] == "not_logged_in"


# -- logging in and out ----------------------------------------------------------------------------
def test_login_form_then_chat_page():
    client = Client()
    form = client.get("/login")
    assert form.status_code == 200
    assert b'name="csrfmiddlewaretoken"' in form.content and b'name="token"' in form.content
    response = client.post("/login", {"token": "test-code"})
    assert response.status_code == 302 and response["Location"] == "/"
    page = client.get("/")
    assert page.status_code == 200
    assert b'<script type="module" src="/static/mirror/chat.js">' in page.content
    assert b"Logged in with access code" in page.content


def test_token_link_logs_in_and_drops_the_token_from_the_address():
    client = Client()
    response = client.get("/", {"token": "test-code"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert response["Referrer-Policy"] == "same-origin" and response["Cache-Control"] == "no-store"
    assert client.get("/").status_code == 200


def test_a_wrong_token_gets_a_message_and_is_not_echoed(oauth_settings):
    wrong = "rt-bad-but-secret-0123456789"  # refused by the (fake) token endpoint
    response = Client().post("/login", {"token": wrong}, REMOTE_ADDR="10.0.0.1")
    assert response.status_code == 401
    html = response.content.decode()
    assert "That token was not accepted" in html
    assert wrong not in html
    link = Client().get("/", {"token": "nope"}, follow=True)
    assert link.redirect_chain == [("/login", 302)]
    assert "That token was not accepted" in link.content.decode()


def test_logout_ends_the_session_and_returns_to_login():
    client = logged_in()
    response = client.post("/logout")
    assert response.status_code == 302 and response["Location"] == "/login"
    assert client.get("/")["Location"] == "/login"
    assert not Session.objects.exists()
    again = logged_in()
    assert again.get("/logout")["Location"] == "/login"  # the seed's plain link works too
    assert again.get("/").status_code == 302


def test_repeated_failures_from_one_address_are_slowed_down(monkeypatch):
    now = [1_000_000.0]
    monkeypatch.setattr(throttle.time, "time", lambda: now[0])
    attacker, other = Client(REMOTE_ADDR="192.0.2.7"), Client(REMOTE_ADDR="192.0.2.8")
    for _ in range(throttle.FREE_FAILURES + 1):
        assert attacker.post("/login", {"token": "wrong-guess"}).status_code == 401
    locked = attacker.post("/login", {"token": "test-code"})
    assert locked.status_code == 429
    assert "Too many failed attempts" in locked.content.decode()
    assert other.post("/login", {"token": "test-code"}).status_code == 302  # another address is not locked

    now[0] += throttle.BASE_LOCK_SECONDS + 1
    assert attacker.post("/login", {"token": "wrong-guess"}).status_code == 401
    assert attacker.post("/login", {"token": "test-code"}).status_code == 429  # the lockout doubled
    now[0] += 2 * throttle.BASE_LOCK_SECONDS + 1
    assert attacker.post("/login", {"token": "test-code"}).status_code == 302
    assert attacker.get("/", {"token": "test-code"})["Location"] == "/"  # a success forgot the failures


def test_the_lockout_is_capped(monkeypatch):
    now = [1_000_000.0]
    monkeypatch.setattr(throttle.time, "time", lambda: now[0])
    client = Client(REMOTE_ADDR="192.0.2.9")
    for _ in range(40):
        client.post("/login", {"token": "wrong-guess"})
        now[0] += throttle.MAX_LOCK_SECONDS + 1  # wait out each lockout, so that every guess is checked
    assert cache.get("throttle:mirror-login:address:192.0.2.9")["until"] - now[0] <= 0
    client.post("/login", {"token": "wrong-guess"})
    wait = cache.get("throttle:mirror-login:address:192.0.2.9")["until"] - now[0]
    assert wait == throttle.MAX_LOCK_SECONDS
    assert "Try again in 900 s" in client.post("/login", {"token": "test-code"}).content.decode()


# -- headers, cookies, CSRF --------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/login", "/"])
def test_pages_have_a_strict_content_security_policy(path):
    client = logged_in() if path == "/" else Client()
    response = client.get(path)
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    html = response.content.decode()
    assert "<script>" not in html and " style=" not in html and " onclick=" not in html
    assert logged_in().get("/chat/api/conversations")["Content-Security-Policy"] == csp


def test_session_cookie_is_httponly_lax_and_secure_over_https():
    response = Client().post("/login", {"token": "test-code"})
    cookie = response.cookies["sessionid"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and not cookie["secure"]
    secure = Client().post("/login", {"token": "test-code"}, secure=True)
    assert secure.cookies["sessionid"]["secure"] and secure.cookies["sessionid"]["httponly"]
    assert Client().get("/login", secure=True).cookies["csrftoken"]["secure"]


def test_secure_cookie_middleware_is_installed():
    from chat2api_site import settings as site_settings

    middleware = site_settings.MIDDLEWARE
    assert "mirror.security.secure_cookies" in middleware, "add mirror.security.secure_cookies to MIDDLEWARE"
    assert middleware.index("mirror.security.secure_cookies") < middleware.index(
        "django.contrib.sessions.middleware.SessionMiddleware"
    )


def test_every_post_needs_the_csrf_token():
    client = Client(enforce_csrf_checks=True)
    assert client.post("/login", {"token": "test-code"}).status_code == 403
    form = client.get("/login")
    token = str(form.context["csrf_token"])
    assert client.post("/login", {"token": "test-code", "csrfmiddlewaretoken": token}).status_code == 302
    assert client.post("/chat/api/conversations", "{}", content_type="application/json").status_code == 403
    page_token = str(client.get("/").context["csrf_token"])
    created = client.post("/chat/api/conversations", "{}", content_type="application/json", HTTP_X_CSRFTOKEN=page_token)
    assert created.status_code == 201
    conversation = created.json()["id"]
    assert client.delete(f"/chat/api/conversations/{conversation}").status_code == 403
    send = f"/chat/api/conversations/{conversation}/send"
    assert client.post(send, "{}", content_type="application/json").status_code == 403
    assert client.post("/logout").status_code == 403


# -- what the session holds ------------------------------------------------------------------------
def test_the_session_keeps_an_own_token_encrypted_and_the_cookie_is_opaque():
    token = access_token("ok-own-9f8e7d6c5b4a")
    client = logged_in(token)
    cookie = client.cookies["sessionid"].value
    assert token not in cookie and len(cookie) == 32
    session = Session.objects.get()
    assert token not in session.session_data and token not in json.dumps(session.get_decoded())
    assert token.split(".")[1] not in client.get("/").content.decode()


def test_an_expired_access_token_is_refused_with_a_reason():
    response = Client().post("/login", {"token": access_token("ok-old", lifetime=-60)})
    assert response.status_code == 401
    assert "has expired" in response.content.decode()


def test_a_revoked_seed_token_cannot_log_in_and_ends_its_sessions():
    seed = seed_token("seed-carol-0123456789", label="carol")
    client = logged_in("seed-carol-0123456789")
    assert client.get("/").status_code == 200
    seed.revoked = True
    seed.save()
    assert client.get("/")["Location"] == "/login"
    assert Client().post("/login", {"token": "seed-carol-0123456789"}).status_code == 401


def test_a_removed_access_code_ends_its_sessions(settings):
    client = logged_in()
    settings.AUTHORIZATION = ["another-code"]
    assert client.get("/")["Location"] == "/login"


# -- conversations ---------------------------------------------------------------------------------
def test_conversations_new_rename_list_delete():
    client = logged_in()
    created = client.post("/chat/api/conversations", {"model": "fake-model"}, content_type="application/json")
    assert created.status_code == 201
    conversation = created.json()
    assert conversation["title"] == "New chat" and conversation["messages"] == []
    renamed = client.patch(
        f"/chat/api/conversations/{conversation['id']}", {"title": "  Trip plans "}, content_type="application/json"
    )
    assert renamed.json()["title"] == "Trip plans"
    listed = client.get("/chat/api/conversations").json()["conversations"]
    assert [(c["id"], c["title"]) for c in listed] == [(conversation["id"], "Trip plans")]
    assert client.delete(f"/chat/api/conversations/{conversation['id']}").status_code == 204
    assert not Conversation.objects.exists()
    assert client.get(f"/chat/api/conversations/{conversation['id']}").status_code == 404
    assert client.get("/chat/api/conversations/not-a-uuid").status_code == 404
    assert client.put("/chat/api/conversations").status_code == 405


NOT_VENDORED = {"@openai/codex"}  # a test tool (the Codex CLI of the Responses tests), not a library of the page


def test_vendored_front_end_matches_package_json():
    packages = json.loads((ROOT / "package.json").read_text())["devDependencies"]
    wanted = {name: version for name, version in packages.items() if name not in NOT_VENDORED}
    vendored = json.loads((ROOT / "static" / "vendor" / "VERSIONS.json").read_text())
    assert vendored == wanted, "run `make vendor` after changing package.json"
    locked = json.loads((ROOT / "package-lock.json").read_text())["packages"]
    assert {name: locked[f"node_modules/{name}"]["version"] for name in wanted} == wanted
