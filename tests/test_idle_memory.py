"""A web worker loads only what serving needs: issue 12's idle-memory goal (≤ 80 MB per uvicorn worker) has no
room for libraries that only another setup uses. Checked in a fresh process, since the test session has them all."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.gateway import ROOT
from tests.processes import platform_env

LOADED = "import sys, chat2api_site.asgi; print(' '.join(sys.modules))"


@pytest.fixture(scope="module")
def loaded() -> set[str]:
    """The modules a process holds once it has loaded the ASGI application, without REDIS_URL."""
    result = subprocess.run(
        [sys.executable, "-c", LOADED], cwd=ROOT, env=platform_env(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    modules = set(result.stdout.split())
    assert "django" in modules and "openai_compat.views" in modules
    return modules


def packages(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def test_a_worker_without_redis_url_never_loads_redis_py(loaded):
    """redis-py and the OpenTelemetry it brings cost about 6 MB; only a Redis backend (REDIS_URL) imports them."""
    assert not packages(loaded) & {"redis", "opentelemetry"}


def test_tiktoken_waits_for_the_first_count(loaded):
    """1.3 MB that a worker whose upstreams report usage never needs (`openai_compat.usage`)."""
    assert "tiktoken" not in packages(loaded)


def test_celery_tasks_wait_for_an_admin_action(loaded):
    """django_celery_beat's models load Celery itself, but not its task classes (~0.5 MB): `tokens.admin` imports
    `tokens.tasks` in the actions that enqueue."""
    assert "celery" in loaded  # django_celery_beat's models: the control that this looks at the right process
    assert not loaded & {"tokens.tasks", "openai_compat.tasks", "celery.app.task", "celery.canvas", "celery.result"}
