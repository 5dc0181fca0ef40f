"""A web worker loads only what serving needs: issue 12's idle-memory goal (≤ 80 MB per uvicorn worker) has no
room for libraries that only another setup uses. Checked in a fresh process, since the test session has them all."""

from __future__ import annotations

import subprocess
import sys

from tests.gateway import ROOT
from tests.processes import platform_env

LOADED = "import sys, chat2api_site.asgi; print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"


def loaded_by_the_worker() -> list[str]:
    """The top-level packages a process holds once it has loaded the ASGI application, without REDIS_URL."""
    result = subprocess.run(
        [sys.executable, "-c", LOADED], cwd=ROOT, env=platform_env(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = result.stdout.split()
    assert "django" in loaded and "openai_compat" in loaded
    return loaded


def test_a_worker_without_redis_url_never_loads_redis_py():
    """redis-py and the OpenTelemetry it brings cost about 6 MB; only a Redis backend (REDIS_URL) imports them."""
    loaded = loaded_by_the_worker()
    assert "redis" not in loaded and "opentelemetry" not in loaded


def test_tiktoken_waits_for_the_first_count():
    """1.3 MB that a worker whose upstreams report usage never needs (`openai_compat.usage`)."""
    assert "tiktoken" not in loaded_by_the_worker()
