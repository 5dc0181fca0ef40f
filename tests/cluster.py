"""Real PostgreSQL and Redis for tests about several processes or nodes (both run on loopback here)."""

from __future__ import annotations

import atexit
import functools
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import redis

from tests.gateway import ROOT, Gateway, start_all

POSTGRES = "postgres://postgres@127.0.0.1:5432"
# The tests' own Redis database. Each user of it works under a key prefix of its own and deletes only those
# keys, so test sessions running at once (and anything else in that database) never see each other's state.
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9")


@contextmanager
def postgres_database(name: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for the duration of the block; yields its URL."""
    create(name, migrated_template())
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        drop(name)


@functools.cache
def migrated_template() -> str:
    """One migrated database per test process, copied by each `postgres_database`: a copy takes ~0.2 s, a migration
    in a child process ~2 s (far more on a busy machine)."""
    name = f"chat2api_test_template_{os.getpid()}"
    create(name)
    atexit.register(drop, name)
    manage({"DATABASE_URL": f"{POSTGRES}/{name}"}, "migrate", "--noinput")
    return name


def create(name: str, template: str = "template1") -> None:
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')


def drop(name: str) -> None:
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def two_nodes(env: dict[str, str]) -> Iterator[tuple[Gateway, Gateway]]:
    """Two gateway processes on one environment (database, Redis), started together, stopped however the test ends."""
    a, b = Gateway(env), Gateway(env)
    try:
        start_all(a, b)
        yield a, b
    finally:
        b.stop()
        a.stop()


def manage(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run `manage.py` in a child process with `env` on top of ours; fails the test on a non-zero exit."""
    result = run_python(env, "manage.py", *args, stdin=stdin)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def start_together(env: dict[str, str], *argvs: list[str]) -> list[subprocess.Popen]:
    """Python processes (with `env` on top of ours) that race from one moment: each prints `ready` once set up, then
    reads the time to start at from its standard input, which all are sent once the last is ready (a fixed delay
    is too long on a quiet machine and can be too short on a busy one)."""
    full_env = {**os.environ, "DJANGO_SETTINGS_MODULE": "chat2api_site.settings", **env}
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    procs = [subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=full_env, **pipes) for argv in argvs]
    for proc in procs:
        if proc.stdout.readline() != "ready\n":
            raise AssertionError(f"a racer failed to start: {proc.communicate(timeout=30)[1][-2000:]}")
    start = time.time() + 0.05
    for proc in procs:
        proc.stdin.write(f"{start}\n")
        proc.stdin.flush()
    return procs


def run_python(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "DJANGO_SETTINGS_MODULE": "chat2api_site.settings", **env}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=full_env, input=stdin, capture_output=True, text=True, timeout=120
    )


@contextmanager
def redis_namespace() -> Iterator[tuple[dict[str, str], redis.Redis]]:
    """A fresh key prefix in `TEST_REDIS_URL`: yields the settings that point a gateway at it
    (`REDIS_URL`, `REDIS_KEY_PREFIX`) and a client; every key under the prefix is deleted afterwards."""
    prefix = f"chat2api-test-{uuid.uuid4().hex[:12]}"
    client = redis.Redis.from_url(TEST_REDIS_URL, decode_responses=True)
    try:
        yield {"REDIS_URL": TEST_REDIS_URL, "REDIS_KEY_PREFIX": prefix}, client
    finally:
        clear_namespace(client, prefix)
        client.close()


def clear_namespace(client: redis.Redis, prefix: str) -> None:
    """Delete every key that starts with `prefix` (and no other)."""
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
