"""`python -m bench.hangups`: clients that hang up at any moment leave no credential slot behind.

Starts the fake upstream (`bench.fake`, chunks every `--delay` s), a temporary SQLite database with two
`openai` credentials of `max_concurrency` `--slots` each (one answers at once; one after 1 s, so its
requests go through the keep-alive comments), and one gateway per server (and per mode: process memory,
and Redis with `--redis URL`), with `POOL_WAIT_SECONDS=0` so that a slot still held is an immediate 429.
Against each gateway:

1. `--requests` streaming requests at concurrency `--concurrency`, each client hanging up at a uniformly
   random moment in 0-1.5 s (while a slot is picked, before the headers, during keep-alive, mid-stream);
2. `--early` more, hanging up within the first 30 ms;
3. leases left: every slot probed at once (each probe that is refused is a slot still held) and, in Redis
   mode, the live members of the lease sets;
4. `--later` streams read to their end at the same concurrency: how many succeed;
5. "Task exception was never retrieved" and tracebacks in the gateway's log.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import redis
from cryptography.fernet import Fernet

from bench.__main__ import PY, ROOT, SERVERS, Children, log, wait_listening
from bench.common import free_port, raise_nofile

SEED = """
from tokens.models import Credential, Kind
for key in ("sk-ok-hangup", "sk-late-ok-hangup"):
    Credential.objects.create(kind=Kind.OPENAI, base_url="{upstream}/v1", api_key=key, model_names=["fake-model"],
                              max_concurrency={slots})
"""
BODY = json.dumps({"model": "fake-model", "messages": [{"role": "user", "content": "hi"}], "stream": True}).encode()
HEADERS = {"Authorization": "Bearer bench-code", "Content-Type": "application/json"}


async def hang_up(port: int, after: float) -> None:
    """Send a streaming request on a raw connection, read whatever comes for `after` seconds, hang up."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {HEADERS['Authorization']}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n"
    )
    writer.write(head.encode() + BODY)
    with contextlib.suppress(TimeoutError, ConnectionError):
        await asyncio.wait_for(_drain(reader), after)
    writer.close()


async def _drain(reader: asyncio.StreamReader) -> None:
    while await reader.read(65536):
        pass


async def bounded(concurrency: int, jobs: list) -> list[Any]:
    """Run the coroutine factories in `jobs`, `concurrency` at a time; results in order."""
    gate = asyncio.Semaphore(concurrency)

    async def one(job: Any) -> Any:
        async with gate:
            return await job()

    return await asyncio.gather(*(one(job) for job in jobs), return_exceptions=True)


async def probe_slots(session: aiohttp.ClientSession, url: str, slots: int) -> int:
    """Open `slots` streams at once and hold them: with every slot free, all start; each refusal is a slot held."""
    replies = await asyncio.gather(
        *(session.post(url, data=BODY, headers=HEADERS) for _ in range(slots)), return_exceptions=True
    )
    started = sum(1 for r in replies if isinstance(r, aiohttp.ClientResponse) and r.status == 200)
    for reply in replies:
        if isinstance(reply, aiohttp.ClientResponse):
            reply.close()
    return slots - started


async def full_stream(session: aiohttp.ClientSession, url: str) -> bool:
    async with session.post(url, data=BODY, headers=HEADERS) as reply:
        body = await reply.read()
        return reply.status == 200 and body.endswith(b"data: [DONE]\n\n")


async def scenario(port: int, args: argparse.Namespace, leases: Any) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    rng = random.Random(8)
    started = time.monotonic()
    for count, latest in ((args.requests, 1.5), (args.early, 0.03)):
        moments = [rng.uniform(0, latest) for _ in range(count)]
        await bounded(args.concurrency, [lambda t=t: hang_up(port, t) for t in moments])
    hung_up_s = time.monotonic() - started
    await asyncio.sleep(1.0)  # releases are asynchronous by a loop tick; a leaked lease would stay (renewed)
    redis_left = leases()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        probe_left = await probe_slots(session, url, 2 * args.slots)
        await asyncio.sleep(args.delay * 12)  # let the probes' answers end and free their slots
        later = await bounded(args.concurrency, [lambda: full_stream(session, url) for _ in range(args.later)])
    ok = sum(1 for r in later if r is True)
    return {"hang_up_seconds": round(hung_up_s, 1), "slots_held_by_probe": probe_left, "redis_leases": redis_left,
            "later_ok": ok, "later": args.later}  # fmt: skip


def live_leases(client: redis.Redis | None, prefix: str) -> int | None:
    if client is None:
        return None
    keys = client.scan_iter(f"{prefix}:{{pool}}:leases:*")
    return sum(client.zcount(key, f"({time.time()}", "+inf") for key in keys)


def run_one(server: str, redis_url: str, env: dict[str, str], args: argparse.Namespace, children: Children) -> dict:
    prefix = f"chat2api-bench-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_url, decode_responses=True) if redis_url else None
    extra = {"REDIS_URL": redis_url, "REDIS_KEY_PREFIX": prefix} if redis_url else {}
    port = free_port()
    name = f"{server}-{'redis' if redis_url else 'memory'}"
    gateway = children.start(name, [PY, *[a.format(port=port) for a in SERVERS[server]]], {**env, **extra})
    try:
        wait_listening(port, gateway, children)
        result = asyncio.run(scenario(port, args, lambda: live_leases(client, prefix)))
    finally:
        children.stop(gateway)
        if client is not None:
            keys = list(client.scan_iter(f"{prefix}*"))
            if keys:
                client.delete(*keys)
            client.close()
    text = (children.tmp / f"{name}.log").read_text(errors="replace")
    return {"gateway": name, **result, "never_retrieved": text.count("never retrieved"),
            "tracebacks": text.count("Traceback")}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hangups", description=__doc__)
    parser.add_argument("--servers", default="daphne,uvicorn")
    parser.add_argument("--redis", default="", help="also run with the pool state in this Redis database")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--early", type=int, default=200)
    parser.add_argument("--later", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--slots", type=int, default=30, help="max_concurrency of each of the two credentials")
    parser.add_argument("--delay", type=float, default=0.3, help="seconds between the fake's chunks")
    args = parser.parse_args()
    raise_nofile()
    tmp = Path(tempfile.mkdtemp(prefix="chat2api-hangups-"))
    children = Children(tmp)
    try:
        env = prepare(args, tmp, children)
        for server in args.servers.split(","):
            for redis_url in ["", args.redis] if args.redis else [""]:
                print(json.dumps(run_one(server, redis_url, env, args, children)), flush=True)
    finally:
        children.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def prepare(args: argparse.Namespace, tmp: Path, children: Children) -> dict[str, str]:
    """Start the fake upstream; migrate and seed a temporary database; the environment of every gateway."""
    fast, slow = free_port(), free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONUNBUFFERED": "1",
        "DJANGO_SETTINGS_MODULE": "chat2api_site.settings",
        "DATABASE_URL": f"sqlite:///{tmp / 'hangups.sqlite3'}",
        "AUTHORIZATION": "bench-code",
        "SECRET_KEY": "bench-not-secret",
        "CREDENTIAL_KEYS": Fernet.generate_key().decode(),
        "POOL_WAIT_SECONDS": "0",
        "KEEPALIVE_SECONDS": "0.5",
    }
    fake_args = ["--port", str(fast), "--slow-port", str(slow), "--delay", str(args.delay)]
    fake = children.start("fake", [PY, "-m", "bench.fake", *fake_args], env)
    log(f"temporary database {tmp / 'hangups.sqlite3'}: migrate and seed")
    seed = SEED.format(upstream=f"http://127.0.0.1:{slow}", slots=args.slots)
    for step in ([PY, "manage.py", "migrate", "--verbosity", "0"], [PY, "manage.py", "shell", "-c", seed]):
        done = subprocess.run(step, cwd=ROOT, env=env, capture_output=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(step[:3])} failed:\n{done.stderr.decode(errors='replace')[-3000:]}")
    wait_listening(slow, fake, children)
    return env


if __name__ == "__main__":
    sys.exit(main())
