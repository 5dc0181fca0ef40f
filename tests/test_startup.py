"""Start-up: a bad setting stops it with one line; shared deployments need explicit keys; keys that cannot
decrypt the stored credentials are reported and change nothing; the first admin is created or explained; the web
process serves with as many uvicorn workers as it should and stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import sys

import psycopg
import pytest
from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model

from chat2api_site import serve
from tests.cluster import POSTGRES, TEST_REDIS_URL, manage, postgres_database, run_python
from tests.gateway import free_port
from tests.processes import get, platform_env, spawn, stop, wait_until


def assert_one_line(result, start: str) -> str:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(start), lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("name", "value", "why"),
    [
        ("MAX_REQUEST_BYTES", "-5", "must be at least 1"),
        ("RETRY_TIMES", "abc", "expected a whole number"),
        ("HISTORY_DISABLED", "maybe-not", "expected true or false"),
        ("PORT", "70000", "must be at most 65535"),
        ("UPSTREAM_READ_TIMEOUT", "0", "must be at least 0.1"),
        ("ASGI_SERVER", "gunicorn", "must be one of daphne, uvicorn"),
        ("DATABASE_URL", "mysqlish://db/chat2api", "expected a database URL"),
        ("REDIS_URL", "http://cache:6379/0", "expected a URL such as redis://"),
    ],
)
def test_bad_value_stops_startup_with_one_line(name, value, why):
    line = assert_one_line(run_python({name: value}, "manage.py", "check"), f"chat2api: {name}={value} is invalid:")
    assert why in line


def test_a_number_set_to_nothing_means_its_default():
    """As an .env made from .env.example has it (`WEB_CONCURRENCY=`)."""
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.RETRY_TIMES, s.KEEPALIVE_SECONDS)"
    )
    result = run_python({"RETRY_TIMES": "", "KEEPALIVE_SECONDS": " "}, "-c", code)
    assert result.stdout.split() == ["3", "5.0"], result.stderr[-2000:]


@pytest.mark.parametrize(
    ("name", "value", "secret"),
    [
        ("DATABASE_URL", "postgres://chat2api:hunter2-secret@db:99999/chat2api", "hunter2-secret"),
        ("REDIS_URL", "redis://:hunter2-secret@cache:0/0", "hunter2-secret"),
        ("CREDENTIAL_KEYS", "hunter2-secret", "hunter2-secret"),
    ],
)
def test_a_secret_in_a_bad_value_is_masked(name, value, secret):
    result = run_python({name: value}, "manage.py", "check")
    assert_one_line(result, f"chat2api: {name}=")
    assert secret not in result.stderr


@pytest.mark.parametrize(
    ("secret_key", "missing"), [("", "SECRET_KEY and CREDENTIAL_KEYS"), ("set-by-the-operator", "CREDENTIAL_KEYS")]
)
def test_postgres_without_explicit_keys_refuses_to_start(secret_key, missing):
    with postgres_database(f"chat2api_test_startup_{os.getpid()}") as url:
        env = {"DATABASE_URL": url, "SECRET_KEY": secret_key, "CREDENTIAL_KEYS": ""}
        assert_one_line(run_python(env, "manage.py", "check"), f"chat2api: set {missing}: ")


def test_redis_without_explicit_keys_refuses_to_start():
    result = run_python({"REDIS_URL": TEST_REDIS_URL, "SECRET_KEY": "", "CREDENTIAL_KEYS": ""}, "manage.py", "check")
    assert_one_line(result, "chat2api: set SECRET_KEY and CREDENTIAL_KEYS:")


def test_web_process_does_not_migrate_a_shared_database():
    name = f"chat2api_test_unmigrated_{os.getpid()}"
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        result = run_python({"DATABASE_URL": f"{POSTGRES}/{name}"}, "-m", "chat2api_site.serve")
        assert_one_line(result, "chat2api: the database has unapplied migrations: run `python manage.py migrate")
        with psycopg.connect(f"{POSTGRES}/{name}") as conn:
            assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)
    finally:
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_keys_that_cannot_decrypt_are_reported_and_change_nothing(tmp_path):
    database = tmp_path / "keys.sqlite3"
    stored_with = {"DATABASE_URL": f"sqlite:///{database}", "CREDENTIAL_KEYS": Fernet.generate_key().decode()}
    manage(stored_with, "migrate", "--noinput")
    manage(
        stored_with, "import_credentials", "-", stdin="openai http://127.0.0.1:9/v1 sk-stored-with-the-old-key-0001\n"
    )
    before = rows(database)
    port = free_port()
    other_key = Fernet.generate_key().decode()
    env = platform_env(**{**stored_with, "CREDENTIAL_KEYS": other_key}, HOST="127.0.0.1", PORT=str(port))
    env["AUTHORIZATION"] = "test-code"
    log = tmp_path / "serve.log"
    web = spawn([sys.executable, "-m", "chat2api_site.serve"], env, log)
    try:
        wait_until(lambda: get(f"http://127.0.0.1:{port}/healthz")[0] == 200, "the web process")
        status, body = get(f"http://127.0.0.1:{port}/readyz")
        assert status == 503
        assert "CREDENTIAL_KEYS" in json.loads(body)["checks"]["credential_keys"]
        get(f"http://127.0.0.1:{port}/v1/models", "test-code")  # the pool loads (and cannot read) the credentials
    finally:
        stop(web)
    assert "chat2api: 1 stored credentials cannot be decrypted with CREDENTIAL_KEYS" in log.read_text()
    assert rows(database) == before


@pytest.mark.parametrize(("redis", "workers"), [(False, "1"), (True, str(len(os.sched_getaffinity(0))))])
def test_one_worker_by_default_without_redis_and_a_core_each_with_it(redis, workers):
    env = {"REDIS_URL": TEST_REDIS_URL, "SECRET_KEY": "k", "CREDENTIAL_KEYS": Fernet.generate_key().decode()}
    code = "import django; django.setup(); from django.conf import settings; print(settings.WEB_CONCURRENCY)"
    result = run_python(env if redis else {"REDIS_URL": ""}, "-c", code)
    assert result.stdout.strip() == workers, result.stderr


@pytest.mark.parametrize("workers", [1, 2])
def test_workers_stop_cleanly_on_sigterm(tmp_path, workers):
    """SIGTERM to the web process alone (as `docker stop` sends it): every worker finishes, writes the requests it
    still holds (nothing writes them before: POOL_RELOAD_SECONDS=600), and the run's metrics directory goes."""
    database, port, temp = tmp_path / "serve.sqlite3", free_port(), tmp_path / "tmp"
    temp.mkdir()
    env = platform_env(
        DATABASE_URL=f"sqlite:///{database}",
        HOST="127.0.0.1",
        PORT=str(port),
        WEB_CONCURRENCY=str(workers),
        POOL_RELOAD_SECONDS="600",
        METRICS_TOKEN="scrape",
        TMPDIR=str(temp),
    )
    env["AUTHORIZATION"] = "test-code"
    log = tmp_path / "serve.log"
    web = spawn([sys.executable, "-m", "chat2api_site.serve"], env, log)
    try:
        wait_until(lambda: len(started(log)) == workers, "every worker")
        sent = 0

        def every_worker_served() -> bool:  # a new connection each time: the kernel spreads them over the workers
            nonlocal sent
            status = get(f"http://127.0.0.1:{port}/v1/models", "test-code")[0]
            if status == 0:  # a worker logs its start before its socket listens
                return False
            assert status == 200
            sent += 1
            return workers == 1 or len(list(temp.glob("chat2api-metrics-*/counter_*.db"))) == workers

        wait_until(every_worker_served, "a request on every worker", 30)
        assert get(f"http://127.0.0.1:{port}/metrics", "scrape")[0] == 200
        os.kill(web.pid, signal.SIGTERM)
        assert web.wait(30) == 0
    finally:
        stop(web)
    text = log.read_text()
    assert text.count("Finished server process") == workers, text[-3000:]
    assert text.count("WEB_CONCURRENCY=2 without REDIS_URL: each worker process keeps its own pool state") == (
        workers - 1
    )
    assert not list(temp.iterdir())
    with sqlite3.connect(database) as conn:
        assert conn.execute("SELECT count(*) FROM tokens_requestlog").fetchone() == (sent,)


def started(log) -> set[str]:
    """The pids of the uvicorn workers that started (each listens a moment later)."""
    return set(re.findall(r"Started server process \[(\d+)\]", log.read_text()))


def rows(database) -> list[tuple]:
    with sqlite3.connect(database) as conn:
        return conn.execute("SELECT * FROM tokens_credential ORDER BY id").fetchall()


@pytest.mark.django_db
def test_first_admin_from_environment(settings, capsys):
    settings.ADMIN_USERNAME, settings.ADMIN_PASSWORD = "", ""
    serve.ensure_admin()
    assert "manage.py createsuperuser" in capsys.readouterr().out
    settings.ADMIN_USERNAME, settings.ADMIN_PASSWORD = "operator", "a-long-password"
    serve.ensure_admin()
    assert get_user_model().objects.get(username="operator").is_superuser
    serve.ensure_admin()  # idempotent once an admin exists
    assert get_user_model().objects.count() == 1


def test_runserver_is_daphnes_asgi_server(tmp_path):
    """`manage.py runserver` serves the ASGI application through daphne (channels' development server)."""
    port, log = free_port(), tmp_path / "runserver.log"
    env = platform_env(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    server = spawn([sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"], env, log)
    try:
        wait_until(lambda: get(f"http://127.0.0.1:{port}/healthz")[0] == 200, "runserver to answer", timeout=60)
    finally:
        stop(server)
    assert "ASGI/Daphne" in log.read_text(), log.read_text()[-2000:]
