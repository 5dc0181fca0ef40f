"""Start the project's processes as an operator or a platform would (a command line, an environment), watch them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tests.gateway import ROOT

VENV_BIN = str(Path(sys.executable).parent)


def platform_env(**overrides: str) -> dict[str, str]:
    """Our environment with the venv's `python` and `celery` first on PATH and no HOST (platforms set none)."""
    env = {key: value for key, value in os.environ.items() if key not in ("HOST", "REDIS_URL", "REDIS_KEY_PREFIX")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return {**env, "DJANGO_SETTINGS_MODULE": "chat2api_site.settings", **overrides}


def spawn(command: str | list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """A process in a session of its own (a shell command as a Procfile line runs), output to `log`."""
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else command
    with log.open("wb") as out:
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    """Stop a process started by `spawn` and everything in its session."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def get(url: str, api_key: str = "") -> tuple[int, bytes]:
    """Status and body of a GET; (0, b"") while nothing listens."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def descendants(pid: int) -> set[int]:
    """Every living process below `pid` (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Running, not merely a zombie waiting to be reaped."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
