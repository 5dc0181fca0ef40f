"""The Procfile run as a Heroku-style platform runs it (web: uvicorn workers sharing the pool through Redis), and
`make run` stopped with SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess

from tests.cluster import postgres_database, redis_namespace
from tests.gateway import ROOT, free_port
from tests.processes import alive, descendants, get, platform_env, spawn, stop, wait_until


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))


def test_procfile_processes_on_a_platform(tmp_path):
    commands = procfile()
    port = free_port()
    with postgres_database(f"chat2api_test_procfile_{os.getpid()}") as url, redis_namespace() as (redis_env, _):
        env = platform_env(DATABASE_URL=url, PORT=str(port), WEB_CONCURRENCY="2", **redis_env)
        release = subprocess.run(["/bin/sh", "-c", commands["release"]], cwd=ROOT, env=env, timeout=120)
        assert release.returncode == 0
        logs = {name: tmp_path / f"{name}.log" for name in ("web", "worker", "beat")}
        processes = [spawn(commands[name], env, log) for name, log in logs.items()]
        try:
            wait_until(lambda: get(f"http://127.0.0.1:{port}/healthz")[0] == 200, "web on $PORT")
            assert f"Uvicorn running on http://0.0.0.0:{port}" in logs["web"].read_text()
            wait_until(lambda: len(worker_pids(logs["web"])) == 2, "two web workers")
            assert all(alive(pid) for pid in worker_pids(logs["web"]))
            assert "without REDIS_URL" not in logs["web"].read_text()
            wait_until(lambda: " ready." in logs["worker"].read_text(), "the worker")
            wait_until(lambda: "beat: Starting..." in logs["beat"].read_text(), "beat")
            assert all(process.poll() is None for process in processes)
        finally:
            for process in processes:
                stop(process)
        apart = {key: value for key, value in env.items() if key not in redis_env}
        for name in ("worker", "beat"):
            alone = subprocess.run(
                ["/bin/sh", "-c", commands[name]], cwd=ROOT, env=apart, capture_output=True, text=True, timeout=120
            )
            assert alone.returncode != 0
            assert "chat2api: set REDIS_URL:" in alone.stderr


def test_sigterm_to_make_run_stops_every_child(tmp_path):
    port = free_port()
    env = platform_env(DATABASE_URL=f"sqlite:///{tmp_path / 'run.sqlite3'}", PORT=str(port))
    log = tmp_path / "make-run.log"
    make = spawn(["make", "run"], env, log)
    family: set[int] = set()
    try:
        wait_until(lambda: get(f"http://127.0.0.1:{port}/healthz")[0] == 200, "make run's web process", 180)
        wait_until(lambda: {" ready.", "beat: Starting..."} <= set(log_lines(log)), "worker and beat", 120)
        family = descendants(make.pid)
        assert len(family) >= 4, log.read_text()  # honcho, web, worker, beat (and their shells)
        os.kill(make.pid, signal.SIGTERM)  # make alone, as a supervisor or `kill` would
        make.wait(60)
        wait_until(lambda: not any(alive(pid) for pid in family), "every child to stop", 60)
    finally:
        stop(make)
        for pid in filter(alive, family):  # only if the test failed: leave nothing behind
            os.kill(pid, signal.SIGKILL)
    assert f"chat2api serving on http://127.0.0.1:{port}/" in log.read_text()  # make run keeps to loopback


def worker_pids(log) -> set[int]:
    return {int(pid) for pid in re.findall(r"Started server process \[(\d+)\]", log.read_text())}


def log_lines(log) -> list[str]:
    """Which of the markers of a started worker and beat the log holds."""
    text = log.read_text(errors="replace")
    return [marker for marker in (" ready.", "beat: Starting...") if marker in text]
