"""Start the project's real ASGI server as a child process on a loopback port: uvicorn as `serve` runs it in
production (`serve_uvicorn`, without the database duties before it), or daphne."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from django.conf import settings

from tokens.pool import signature_version
from tokens.services import pool_signature

ROOT = Path(__file__).resolve().parent.parent
RELOAD_SECONDS = 0.03


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gateway:
    running: ClassVar[set[Gateway]] = set()  # started by this process and not stopped yet

    def __init__(self, env: dict[str, str], server: str = "uvicorn", workers: int = 1) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "chat2api_site.settings",
            "POOL_RELOAD_SECONDS": str(RELOAD_SECONDS),
            "AUTHORIZATION": "test-code",
            **env,
        }
        self.server, self.workers = server, workers
        self.process: subprocess.Popen | None = None
        self.log = ROOT / "var" / f"gateway-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Gateway:
        return self.launch().listening()

    def launch(self) -> Gateway:
        """Start the server process without waiting for it (see `listening`)."""
        serve = f"from chat2api_site import serve; serve.serve_uvicorn('127.0.0.1', {self.port}, {self.workers})"
        args = {
            "daphne": ["-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "chat2api_site.asgi:application"],
            "uvicorn": ["-c", f"import django; django.setup(); {serve}"],
        }[self.server]
        self.log.parent.mkdir(exist_ok=True)
        out = self.log.open("wb")
        self.process = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=self.env, stdout=out, stderr=out)
        return self

    def listening(self) -> Gateway:
        """Wait until the server accepts connections (up to 30 s); fails when its process exited."""
        assert self.process is not None, "launch() first"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                Gateway.running.add(self)
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("gateway did not start listening")

    def stop(self) -> None:
        Gateway.running.discard(self)
        if self.process:
            self.process.terminate()
            self.process.wait(10)

    def pool_version(self) -> str:
        """Which state of the credentials table the gateway serves ("" before its first API request)."""
        with urllib.request.urlopen(self.url + "/healthz", timeout=5) as reply:
            return json.load(reply)["pool"]

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


def start_all(*gateways: Gateway) -> None:
    """Start servers side by side: each process's start-up (about a second of imports) overlaps the others'."""
    for gateway in gateways:
        gateway.launch()
    for gateway in gateways:
        gateway.listening()


def eventually(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    """Whether `check()` comes true within `seconds` (polled every 20 ms)."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def settle(seconds: float = 10.0) -> None:
    """Wait until every gateway this process started on the test database serves the credentials table as it is
    now (each reloads its pool on a timer; `/healthz` says which state it serves); a gateway on another database
    gets the time of a few reloads instead."""
    test_database = f"sqlite:///{settings.DATABASES['default']['NAME']}"
    ours = [gateway for gateway in Gateway.running if gateway.env.get("DATABASE_URL") == test_database]
    if len(ours) < len(Gateway.running):
        time.sleep(RELOAD_SECONDS * 6)
    if not ours:
        return
    expected = signature_version(pool_signature())
    deadline = time.monotonic() + seconds
    for gateway in ours:
        while gateway.pool_version() not in (expected, "") and time.monotonic() < deadline:
            time.sleep(0.01)
