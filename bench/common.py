"""Small helpers shared by the benchmark's processes (no Django, no aiohttp)."""

from __future__ import annotations

import os
import resource
import socket

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def raise_nofile(wanted: int = 65536) -> int:
    """Lift the soft open-files limit towards the hard one (1,000 streams need ~3,000 descriptors)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of `pid`, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def family(pid: int) -> list[int]:
    """`pid` and its descendants (a server's worker processes), from the parent ids in /proc/<pid>/stat."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rpartition(")")[2].split()[1])
            except OSError:  # gone meanwhile
                continue
    found = [pid]
    for member in found:
        found.extend(child for child, parent in parents.items() if parent == member)
    return found


def rss_mb(pid: int) -> float:
    """VmRSS of `pid` and its descendants in MB, from /proc/<pid>/status."""
    total = 0
    for member in family(pid):
        with open(f"/proc/{member}/status") as f:
            total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return total / 1024


def open_fds(pid: int) -> int:
    """Descriptors open in `pid` and its descendants."""
    return sum(len(os.listdir(f"/proc/{member}/fd")) for member in family(pid))


def core_busy_seconds(core: int) -> float:
    """Seconds core `core` was not idle (every process, plus time stolen by the hypervisor), from /proc/stat."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{core} "):
                ticks = [int(v) for v in line.split()[1:]]
                return (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLOCK_TICKS
    return 0.0
