from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from chat2api_site.celery import app as celery_app
from tests.browser import chromium
from tests.fakes import chatgpt_server, codex_server, oauth_server, openai_server
from tests.fakes.base import FakeServer
from tests.gateway import Gateway, settle

# The modules that hold an xdist worker longest, about longest first (wall seconds of two runs of make test, with
# --durations). `make test` hands them out first (--no-loadscope-reorder keeps this order), so that none is left
# running alone at the end of the parallel phase: by xdist's own order (most tests first) test_deploy.py and the
# browser modules, with a test or two each, came last.
LONGEST_FIRST = (
    "tests/test_startup.py",
    "tests/openai_compat/test_hangup.py",
    "tests/openai_compat/test_edges.py",
    "tests/test_deploy.py",
    "tests/openai_compat/test_chatgpt_upstream.py",
    "tests/tokens/test_usage.py",
    "tests/middle/test_fuzz.py",
    "tests/openai_compat/test_responses_clients.py",
    "tests/openai_compat/test_health.py",
    "tests/mirror/test_browser.py",
    "tests/test_request_ids.py",
    "tests/test_metrics.py",
    "tests/openai_compat/test_files.py",
    "tests/tokens/test_usage_admin.py",
    "tests/openai_compat/test_codex_cli.py",
    "tests/tokens/test_codex_sign_in.py",
    "tests/tokens/test_pool_admin_browser.py",
    "tests/openai_compat/test_local_model.py",
    "tests/openai_compat/test_servers.py",
    "tests/tokens/test_quota_admin.py",
)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """`-m cluster` (make test's serial phase) imports only the modules that mark cluster tests: importing every
    module costs each pytest process seconds."""
    if config.option.markexpr == "cluster" and collection_path.match("test_*.py"):
        return "mark.cluster" not in collection_path.read_text() or None  # None: the usual rules decide
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On an xdist worker: modules in LONGEST_FIRST's order, then the others with the most tests first (xdist's
    order); a module's own tests keep theirs (pytest-django's)."""
    if not hasattr(config, "workerinput"):
        return
    tests = Counter(item.nodeid.split("::")[0] for item in items)

    def rank(item: pytest.Item) -> tuple[int, int, str]:
        module = item.nodeid.split("::")[0]
        first = LONGEST_FIRST.index(module) if module in LONGEST_FIRST else len(LONGEST_FIRST)
        return first, -tests[module], module

    items.sort(key=rank)


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[FakeServer]:
    server = openai_server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_chatgpt() -> Iterator[FakeServer]:
    server = chatgpt_server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_codex() -> Iterator[FakeServer]:
    server = codex_server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_oauth() -> Iterator[FakeServer]:
    server = oauth_server.start(delay=0.3)
    yield server
    server.stop()


@pytest.fixture
def oauth_settings(settings, fake_oauth: FakeServer):
    """Point this process's refresh client at the fake token endpoint."""
    settings.OAUTH_TOKEN_URL = settings.OAUTH_RT_TOKEN_URL = fake_oauth.url + "/oauth/token"
    settings.CODEX_AUTH_URL = fake_oauth.url
    return settings


@pytest.fixture
def eager() -> Iterator[None]:
    """Run what is enqueued here, at once, instead of on a worker."""
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture(scope="session")
def test_database(django_db_setup, django_db_blocker) -> str:
    """The path of the migrated test database, which the gateway process opens too."""
    from django.conf import settings

    return settings.DATABASES["default"]["NAME"]


@pytest.fixture(scope="session")
def gateway_env(
    test_database: str, fake_chatgpt: FakeServer, fake_oauth: FakeServer, fake_codex: FakeServer
) -> dict[str, str]:
    """What every gateway process of the tests needs: the test database and the fake upstreams."""
    token_url = fake_oauth.url + "/oauth/token"
    return {
        "DATABASE_URL": f"sqlite:///{test_database}",
        "CHATGPT_BASE_URL": fake_chatgpt.url,
        "OAUTH_TOKEN_URL": token_url,
        "OAUTH_RT_TOKEN_URL": token_url,
        "CODEX_BASE_URL": fake_codex.url + "/backend-api/codex",
        "CODEX_AUTH_URL": fake_oauth.url,
    }


@pytest.fixture(scope="session")
def gateway(gateway_env: dict[str, str]) -> Iterator[Gateway]:
    server = Gateway(gateway_env).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, one per test module that drives a page."""
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def admin_gateway(gateway_env: dict[str, str]) -> Iterator[Gateway]:
    """The real server, serving the admin's static files from the finders (tests.mirror.server_settings)."""
    server = Gateway({**gateway_env, "DJANGO_SETTINGS_MODULE": "tests.mirror.server_settings"}).start()
    yield server
    server.stop()


@pytest.fixture
def gateway_hasher(settings) -> None:
    """The test's own users hashed as the gateway hashes them (the test settings' hasher is a fast, other one)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_fakes(request: pytest.FixtureRequest) -> None:
    if "fake_openai" in request.fixturenames:
        request.getfixturevalue("fake_openai").reset()
    if "fake_chatgpt" in request.fixturenames:
        request.getfixturevalue("fake_chatgpt").reset()
    if "fake_codex" in request.fixturenames:
        request.getfixturevalue("fake_codex").reset()
    if "fake_oauth" in request.fixturenames:
        request.getfixturevalue("fake_oauth").reset()


@pytest.fixture
def fresh_usage() -> None:
    """An empty request log and roll-up for a test that counts every row (in the test's own database access): a
    gateway that served an earlier test writes its last batch up to `POOL_RELOAD_SECONDS` after that test's
    requests, so that is waited out first."""
    from tokens.models import DailyUsage, RequestLog

    settle()
    RequestLog.objects.all().delete()
    DailyUsage.objects.all().delete()
