"""Real PostgreSQL and Redis for tests about several processes or nodes (both run on loopback here)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import redis

from tests.gateway import ROOT

POSTGRES = "postgres://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379"


@contextmanager
def postgres_database(name: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for the duration of the block; yields its URL."""
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{POSTGRES}/{name}"
    try:
        manage({"DATABASE_URL": url}, "migrate", "--noinput")
        yield url
    finally:
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def manage(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run `manage.py` in a child process with `env` on top of ours; fails the test on a non-zero exit."""
    result = run_python(env, "manage.py", *args, stdin=stdin)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def run_python(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "DJANGO_SETTINGS_MODULE": "chat2api_site.settings", **env}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=full_env, input=stdin, capture_output=True, text=True, timeout=120
    )


@contextmanager
def exclusive_redis(url: str) -> Iterator[redis.Redis]:
    """Test sessions running at once on this machine take turns on a Redis database, which each flushes."""
    with (Path(tempfile.gettempdir()) / f"chat2api-test-redis-{url.rsplit('/', 1)[1]}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        client = redis.Redis.from_url(url, decode_responses=True)
        client.flushdb()
        try:
            yield client
        finally:
            client.flushdb()
            client.close()
