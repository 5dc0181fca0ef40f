"""Run the real Codex CLI (npm `@openai/codex`, installed by `make test`) against a gateway, with no network.

The CLI gets a home of its own (`CODEX_HOME`) holding one config.toml: a custom model provider pointed at the
gateway (`wire_api = "responses"`, the key from an environment variable, no retries) and the three settings
that stop its own traffic (update check, analytics, plugin sync). Every proxy variable points at a closed
loopback port, so anything else it might try fails on this machine; `HOME` is a fresh directory, so the
commands it runs see no one's login profile.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CODEX = ROOT / "node_modules" / ".bin" / "codex"
CLOSED = "http://127.0.0.1:9"
CONFIG = """\
model = "{model}"
model_provider = "gateway"
check_for_update_on_startup = false

[analytics]
enabled = false

[features]
plugins = false

[model_providers.gateway]
name = "chat2api"
base_url = "{base_url}"
env_key = "CHAT2API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
stream_idle_timeout_ms = 20000
"""


@dataclass(frozen=True)
class Run:
    """One `codex exec --json` run: its exit code, its JSONL events and its stderr."""

    code: int
    events: list[dict[str, Any]]
    stderr: str

    def items(self, kind: str) -> list[dict[str, Any]]:
        """The completed items of one type (`agent_message`, `command_execution`, …), in order."""
        done = (e["item"] for e in self.events if e.get("type") == "item.completed")
        return [item for item in done if item.get("type") == kind]

    @property
    def answer(self) -> str:
        messages = self.items("agent_message")
        return messages[-1]["text"] if messages else ""

    def jsonl(self) -> str:
        return "".join(json.dumps(event) + "\n" for event in self.events)


def environment(home: Path, key: str) -> dict[str, str]:
    proxies = {name: CLOSED for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")}
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home / "user"),
        "LANG": "C.UTF-8",
        "CODEX_HOME": str(home / "codex"),
        "CHAT2API_KEY": key,
        **proxies,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


def codex_exec(
    gateway_url: str,
    tmp: Path,
    prompt: str,
    model: str,
    sandbox: str = "read-only",
    overrides: tuple[str, ...] = (),
    key: str = "test-code",
) -> Run:
    """`codex exec` in `tmp/work` (created) with its home under `tmp`; stdin is empty, as in CI.

    `overrides` are `key=value` config settings (`-c`), e.g. `model_reasoning_summary=auto`.
    """
    work, home = tmp / "work", tmp / "home"
    for folder in (work, home / "user", home / "codex"):
        folder.mkdir(parents=True, exist_ok=True)
    (home / "codex" / "config.toml").write_text(CONFIG.format(model=model, base_url=gateway_url + "/v1"))
    settings = [arg for override in overrides for arg in ("-c", override)]
    args = [str(CODEX), "exec", "--skip-git-repo-check", "--ephemeral", "--json", "-s", sandbox, *settings, prompt]
    done = subprocess.run(
        args, cwd=work, env=environment(home, key), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60
    )
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return Run(done.returncode, events, done.stderr)
