"""`python -m bench`: direct-to-upstream vs through the gateway (daphne, uvicorn), in one run.

1. A fake OpenAI upstream (`bench.fake`: a fast port and a slow one) on core 1.
2. A temporary SQLite database, migrated with `manage.py migrate`, holding the `openai` credential
   (fake + "/v1", key `sk-ok-bench`, model `fake-model`) and, for the memory phase only, a second one
   on the slow port (model `fake-model-slow`).
3. The gateway, one worker process pinned to core 0 with `taskset -c 0`, under each ASGI server; then
   uvicorn with `--workers 2` on cores 0 and 1, sharing them with the load generator and the fake (a
   2-core machine has no third core: the printout says what that costs the comparison).
4. The load generator (`bench.load`, raw asyncio protocols) on core 1 with the fake; it prints JSON, this prints a
   table of the goals of issue 12 beside the run's figures, then every figure.

Every child runs in its own session and is stopped on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import free_port, raise_nofile
from bench.parse import line as parse_costs
from bench.responses import line as responses_costs

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SERVERS = {
    # Access logs off for both: a log line per request is a logging choice, not the server's cost.
    "daphne": ["-m", "daphne", "-v", "0", "-b", "127.0.0.1", "-p", "{port}", "chat2api_site.asgi:application"],
    "uvicorn": [
        "-m", "uvicorn", "--loop", "uvloop", "--http", "httptools", "--lifespan", "off", "--no-access-log",
        "--log-level", "warning", "--host", "127.0.0.1", "--port", "{port}", "chat2api_site.asgi:application",
    ],
}  # fmt: skip
# Issue 12's goals for one uvicorn worker: (label, phase, key, goal, lower is better).
GOALS = (
    ("added latency p50, c=1, non-stream (ms)", "added", "json_c1", 1.0, True),
    ("requests/s at c=32", "json_c32", "per_s", 1000, False),
    ("gateway CPU per request (ms)", "json_c32", "cpu_ms_each", 1.0, True),
    ("gateway CPU per stream (ms)", "stream_c32", "cpu_ms_each", 1.5, True),
    ("streams/s at c=32", "stream_c32", "per_s", 700, False),
    ("RSS idle (MB)", "", "rss_idle_mb", 80, True),
    ("RSS with {streams:,} slow streams open (MB)", "hold", "rss_mb", 150, True),
)
SCALING_GOAL = 1.7  # two workers on two cores against one worker's requests/s
SEED = """
from tokens.models import Credential, Kind
Credential.objects.create(kind=Kind.OPENAI, base_url="{fast}/v1", api_key="sk-ok-bench", model_names=["fake-model"])
Credential.objects.create(kind=Kind.OPENAI, base_url="{slow}/v1", api_key="sk-ok-bench-slow",
                          model_names=["fake-model-slow"])
"""


def gateway_args(server: str, workers: int) -> list[str]:
    return [*SERVERS[server], *(["--workers", str(workers)] if workers > 1 else [])]


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def pinned(cores: str) -> list[str]:
    """`taskset -c cores` when the machine has them (the command execs, so the pid stays the child's)."""
    if shutil.which("taskset") and (os.cpu_count() or 1) > max(int(c) for c in cores.split(",")):
        return ["taskset", "-c", cores]
    return []


def workers_of(spec: str) -> tuple[str, int]:
    """`uvicorn:2` is uvicorn with two worker processes; a bare name is one."""
    server, _, workers = spec.partition(":")
    return server, int(workers or 1)


def gateway_cores(workers: int) -> str:
    return "0" if workers == 1 else ",".join(str(core) for core in range(min(workers, os.cpu_count() or 1)))


class Children:
    """Every process the benchmark starts, each in its own session, stopped in reverse order on exit."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        out = (self.tmp / f"{name}.log").open("wb")
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        proc.name = name  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs)):
            self.stop(proc)

    def tail(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def wait_listening(port: int, proc: subprocess.Popen, children: Children, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.name} exited:\n{children.tail(proc.name)}")  # type: ignore[attr-defined]
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{proc.name} did not listen on {port}")  # type: ignore[attr-defined]


def load(
    children: Children, cfg: dict[str, Any], env: dict[str, str], seconds: float, cores: str = "1"
) -> dict[str, Any]:
    """Run `bench.load` on `cores` and return its JSON (bounded by `seconds`)."""
    proc = subprocess.Popen(
        [*pinned(cores), PY, "-m", "bench.load", json.dumps(cfg)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    proc.name = f"load-{cfg['name']}"  # type: ignore[attr-defined]
    children.procs.append(proc)
    try:
        out, _ = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        children.stop(proc)
        raise RuntimeError(f"the load generator for {cfg['name']} took over {seconds:.0f} s") from None
    children.procs.remove(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"the load generator for {cfg['name']} failed (exit {proc.returncode})")
    return json.loads(out.decode().strip().splitlines()[-1])


def own_process(module: str) -> str:
    """What `python -m module` prints, run apart from this process."""
    return subprocess.run([PY, "-m", module], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def table(results: dict[str, dict[str, Any]]) -> str:
    names = list(results)
    direct = results.get("direct", {})

    def get(res: dict[str, Any], phase: str, key: str) -> float | None:
        return (res.get(phase) or {}).get(key)

    def added(res: dict[str, Any], phase: str) -> float | None:
        mine, base = get(res, phase, "p50_ms"), get(direct, phase, "p50_ms")
        return None if res is direct or mine is None or base is None else mine - base

    rows: list[tuple[str, list[str]]] = [
        ("non-stream latency p50, c=1 (ms)", [fmt(get(r, "json_c1", "p50_ms")) for r in results.values()]),
        ("non-stream latency p99, c=1 (ms)", [fmt(get(r, "json_c1", "p99_ms")) for r in results.values()]),
        ("added latency at p50 (ms)", [fmt(added(r, "json_c1")) if r is not direct else "-" for r in results.values()]),
        ("requests/s, c=32", [fmt(get(r, "json_c32", "per_s"), 0) for r in results.values()]),
        ("gateway CPU ms / request, c=32", [fmt(get(r, "json_c32", "cpu_ms_each")) for r in results.values()]),
        ("other load on the gateway's core, c=32 (%)",
         [fmt(get(r, "json_c32", "others_pct"), 0) if r is not direct and r.get("workers") == 1 else "-"
          for r in results.values()]),
        ("other load on the client+fake core, c=32 (%)",
         [fmt(get(r, "json_c32", "others_load_core_pct"), 0) for r in results.values()]),
        ("stream first chunk p50, c=1 (ms)", [fmt(get(r, "stream_c1", "p50_ms")) for r in results.values()]),
        ("stream first chunk p99, c=1 (ms)", [fmt(get(r, "stream_c1", "p99_ms")) for r in results.values()]),
        ("added first-chunk latency at p50 (ms)",
         [fmt(added(r, "stream_c1")) if r is not direct else "-" for r in results.values()]),
        ("streams/s, c=32", [fmt(get(r, "stream_c32", "per_s"), 0) for r in results.values()]),
        ("gateway CPU ms / stream, c=32", [fmt(get(r, "stream_c32", "cpu_ms_each")) for r in results.values()]),
        ("gateway RSS idle (MB)", [fmt(r.get("rss_idle_mb"), 0) for r in results.values()]),
        ("gateway RSS, slow streams open (MB)", [fmt(get(r, "hold", "rss_mb"), 0) for r in results.values()]),
        ("  slow streams open at the sample", [fmt(get(r, "hold", "open_at_peak"), 0) for r in results.values()]),
        ("  seconds to open them all", [fmt(get(r, "hold", "ramp_s"), 1) for r in results.values()]),
        ("  gateway fds open / 2 s after hang-up",
         [f"{fmt(get(r, 'hold', 'fds'), 0)} / {fmt(get(r, 'hold', 'fds_after'), 0)}" if r.get("hold") else "n/a"
          for r in results.values()]),
        ("  gateway RSS 2 s after hang-up (MB)", [fmt(get(r, "hold", "rss_after_mb"), 0) for r in results.values()]),
        ("failed requests (all phases)", [str(failures(r)) for r in results.values()]),
    ]  # fmt: skip
    return layout(rows, [header(n) for n in names])


def header(name: str) -> str:
    if name == "direct":
        return "direct to upstream"
    server, workers = workers_of(name)
    return f"gateway ({server})" if workers == 1 else f"{server}, {workers} workers"


def layout(rows: list[tuple[str, list[str]]], headers: list[str]) -> str:
    width = max(len(label) for label, _ in rows)
    cols = [max(20, len(h)) for h in headers]
    lines = [" " * width + "  " + "  ".join(h.rjust(w) for h, w in zip(headers, cols, strict=True))]
    lines.append("-" * len(lines[0]))
    for label, cells in rows:
        lines.append(label.ljust(width) + "  " + "  ".join(c.rjust(w) for c, w in zip(cells, cols, strict=True)))
    return "\n".join(lines)


def goals_table(results: dict[str, dict[str, Any]], streams: int) -> str:
    """Issue 12's goals beside the run's figures (RSS of all a column's processes); `!` marks a figure that misses
    its goal (set for 1,000 slow streams)."""
    gateways = [name for name in results if name != "direct"]
    base = (results.get("direct") or {}).get("json_c1") or {}
    rows = []
    for label, phase, key, goal, lower in GOALS:
        cells = []
        for name in gateways:
            res = results[name]
            if phase == "added":
                mine = (res.get(key) or {}).get("p50_ms")
                value = mine - base["p50_ms"] if mine is not None and base.get("p50_ms") is not None else None
            else:
                value = (res.get(phase) or {}).get(key) if phase else res.get(key)
            digits = 0 if goal >= 80 else 2
            missed = value is not None and (value > goal if lower else value < goal)
            cells.append(fmt(value, digits) + (" !" if missed else "  "))
        cells.append(("≤ " if lower else "≥ ") + fmt(goal, 0 if goal >= 80 else 1))
        rows.append((label.format(streams=streams), cells))
    return layout(rows, [*(header(n) for n in gateways), "goal (one worker)"])


def scaling(results: dict[str, dict[str, Any]]) -> list[str]:
    """Two workers against one: the measured ratio, and what the two cores' other tenants leave to the gateway."""
    one, many = results.get("uvicorn"), next((r for r in results.values() if r.get("workers", 1) > 1), None)
    if not one or not many:
        return []
    r1, r2 = (one.get("json_c32") or {}).get("per_s"), (many.get("json_c32") or {}).get("per_s")
    g1, g2 = (one.get("json_c32") or {}).get("cpu_ms_each"), (many.get("json_c32") or {}).get("cpu_ms_each")
    client = (many.get("json_c32") or {}).get("client_cpu_ms_each")
    if not (r1 and r2 and g1 and g2 and client):
        return []
    n = many["workers"]
    lines = [
        f"{n} workers: {r2:,.0f} requests/s at c=32 = {r2 / r1:.2f}x one worker's {r1:,.0f} (goal ≥ {SCALING_GOAL}x); "
        f"gateway CPU {g2:.2f} ms per request (one worker: {g1:.2f} ms)."
    ]
    cores = min(n, os.cpu_count() or 1)
    ceiling = cores * 1000 / (g2 + client)
    lines.append(
        f"  where it ran: the {n} workers, the load generator and the fake upstream all on cores 0-{cores - 1}; "
        f"the load generator and the fake spent {client:.2f} ms CPU per request themselves, so {cores} cores "
        f"carry at most {cores} x 1000 / ({g2:.2f} + {client:.2f}) = {ceiling:,.0f} requests/s in this setup."
    )
    if r2 / r1 < SCALING_GOAL:
        busy = r2 * (g2 + client) / 1000  # cores the workers and the tools kept busy
        cause = (
            f"the measuring tools take {client / (g2 + client):.0%} of the shared cores"
            if busy > 0.9 * cores
            else f"the workers and the measuring tools kept only {busy:.2f} of the {cores} cores busy "
            f"({r2:,.0f}/s x ({g2:.2f} + {client:.2f}) ms): other processes took the rest (or it idled)"
        )
        lines.append(
            f"  why below {SCALING_GOAL}x: {cause}. Per CPU the workers scale: {cores} cores given to the gateway "
            f"alone would serve {cores} x 1000 / {g2:.2f} = {cores * 1000 / g2:,.0f} requests/s = "
            f"{cores * g1 / g2:.2f}x one worker's CPU-bound rate (1000 / {g1:.2f})."
        )
    return lines


def notes(results: dict[str, dict[str, Any]], counts: dict[str, int]) -> list[str]:
    """Phases that stopped at their time cap before their request count; why slow streams failed."""
    wanted = {"json_c1": "c1_requests", "json_c32": "c32_requests", "stream_c1": "c1_streams"}
    wanted["stream_c32"] = "c32_streams"
    cap = counts["phase_seconds"]
    found = []
    for name, res in results.items():
        for phase, key in wanted.items():
            got = res.get(phase) or {}
            done = got.get("done", 0) + got.get("errors", 0)
            if got and done < counts[key]:
                found.append(f"note: {name} {phase} reached its {cap} s cap after {done} of {counts[key]}")
        why = (res.get("hold") or {}).get("why")
        if why:
            found.append(f"note: {name} slow streams that failed: {why}")
    return found


def failures(res: dict[str, Any]) -> int:
    phases = ("json_c1", "json_c32", "stream_c1", "stream_c32")
    return sum((res.get(p) or {}).get("errors", 0) for p in phases) + (res.get("hold") or {}).get("failed", 0)


def machine() -> str:
    load1, load5, _ = os.getloadavg()
    return f"{os.cpu_count()} cores, load average {load1:.2f} (1 min) {load5:.2f} (5 min)"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--servers",
        default="daphne,uvicorn,uvicorn:2",
        help="comma-separated: daphne, uvicorn; uvicorn:N runs N worker processes (on cores 0..N-1)",
    )
    parser.add_argument("--no-direct", action="store_true", help="skip the direct-to-upstream baseline")
    parser.add_argument("--quick", action="store_true", help="a tenth of the requests, for a smoke run")
    parser.add_argument("--streams", type=int, default=1000, help="slow streams held open at once")
    parser.add_argument("--delay", type=float, default=3.0, help="seconds between the slow fake's chunks")
    parser.add_argument("--json", type=Path, help="also write the raw results to this file")
    args = parser.parse_args()
    servers = [s for s in args.servers.split(",") if s]
    for spec in servers:
        server, workers = workers_of(spec)
        if server not in SERVERS or workers < 1 or (workers > 1 and server != "uvicorn"):
            parser.error(f"unknown server {spec!r}")
    scale = 10 if args.quick else 1
    counts = {
        "c1_requests": 300 // scale,
        "c32_requests": 3000 // scale,
        "c1_streams": 200 // scale,
        "c32_streams": 2000 // scale,
        "phase_seconds": 20,
    }
    nofile = raise_nofile()  # inherited by every child
    if nofile < 4 * args.streams:
        log(f"warning: open-files limit {nofile} is low for {args.streams} streams")

    tmp = Path(tempfile.mkdtemp(prefix="chat2api-bench-"))
    children = Children(tmp)

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored (`&`)
    started = time.monotonic()
    load_before = machine()
    try:
        results = run(args, servers, counts, tmp, children)
    except KeyboardInterrupt:
        log("interrupted; stopping every process")
        return 130
    except RuntimeError as exc:
        log(f"failed: {exc}")
        return 1
    finally:
        children.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)

    print()
    print(
        "chat2api benchmark: one gateway worker on core 0, the load generator and the fake upstream on core 1; "
        "a column of N workers runs them on cores 0..N-1 with the load generator and the fake on the same cores."
    )
    print(f"machine: {load_before} at start, {machine().split(', ', 1)[1]} at end; {time.monotonic() - started:.0f} s")
    print(
        f"non-stream c=1: {counts['c1_requests']} requests; c=32: {counts['c32_requests']}; stream c=1: "
        f"{counts['c1_streams']}; c=32: {counts['c32_streams']} (each phase capped at {counts['phase_seconds']} s); "
        f"{args.streams} slow streams ({args.delay:g} s between chunks). VmRSS and CPU from /proc, summed over "
        "a gateway's processes (with --workers: the supervisor and its workers)."
    )
    print()
    print(goals_table(results, args.streams))
    for line in scaling(results):
        print(line)
    print()
    print(table(results))
    for note in notes(results, counts):
        print(note)
    print(parse_costs())
    print(responses_costs())
    print(own_process("bench.keys"))  # a database of its own: this process's settings are already read
    print()
    for spec in servers:
        server, workers = workers_of(spec)
        command = " ".join(gateway_args(server, workers)).replace("{port}", "PORT")
        print(f"{header(spec)}: taskset -c {gateway_cores(workers)} python {command}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def run(
    args: argparse.Namespace, servers: list[str], counts: dict[str, int], tmp: Path, children: Children
) -> dict[str, dict[str, Any]]:
    fast, slow = free_port(), free_port()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL"))}
    env = {
        **base_env,
        "PYTHONUNBUFFERED": "1",
        "DJANGO_SETTINGS_MODULE": "chat2api_site.settings",
        "DATABASE_URL": f"sqlite:///{tmp / 'bench.sqlite3'}",
        "AUTHORIZATION": "bench-code",
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "SECRET_KEY": "bench-not-secret",
    }
    log(f"fake upstream on ports {fast} (fast) and {slow} ({args.delay:g} s between chunks), core 1")
    ports = ["--port", str(fast), "--slow-port", str(slow), "--delay", str(args.delay)]
    fake = children.start("fake", [*pinned("1"), PY, "-m", "bench.fake", *ports], env)
    log(f"temporary database {tmp / 'bench.sqlite3'}: migrate and seed")
    for step in (
        [PY, "manage.py", "migrate", "--verbosity", "0"],
        [PY, "manage.py", "shell", "-c", SEED.format(fast=f"http://127.0.0.1:{fast}", slow=f"http://127.0.0.1:{slow}")],
    ):
        done = subprocess.run(step, cwd=ROOT, env=env, capture_output=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(step[:3])} failed:\n{done.stderr.decode(errors='replace')[-3000:]}")
    wait_listening(fast, fake, children)
    wait_listening(slow, fake, children)

    results: dict[str, dict[str, Any]] = {}
    if not args.no_direct:
        log("direct to the fake upstream")
        cfg = {**counts, "name": "direct", "url": f"http://127.0.0.1:{fast}/v1", "key": "sk-ok-bench"}
        cfg["model"], cfg["helpers"] = "fake-model", [fake.pid]
        results["direct"] = load(children, cfg, env, 200)
    for spec in servers:
        server, workers = workers_of(spec)
        port, cores = free_port(), gateway_cores(workers)
        log(f"gateway under {server}, {workers} worker(s), on port {port}, cores {cores}")
        args_ = [a.format(port=port) for a in gateway_args(server, workers)]
        gateway = children.start(spec, [*pinned(cores), PY, *args_], env)
        try:
            wait_listening(port, gateway, children)
            cfg = {
                **counts,
                "name": spec,
                "url": f"http://127.0.0.1:{port}/v1",
                "key": "bench-code",
                "model": "fake-model",
                "slow_model": "fake-model-slow",
                "pid": gateway.pid,
                "helpers": [fake.pid],
                "hold": args.streams,
                "hold_seconds": max(10.0, args.delay * 5),
            }
            results[spec] = {**load(children, cfg, env, 240, "1" if workers == 1 else cores), "workers": workers}
            if gateway.poll() is not None:
                raise RuntimeError(f"{spec} died during the run:\n{children.tail(spec)}")
        finally:
            children.stop(gateway)
        errors = children.tail(spec).strip()
        if errors:
            log(f"{spec} wrote to its log (last lines):\n{errors[-1500:]}")
    return results


if __name__ == "__main__":
    sys.exit(main())
