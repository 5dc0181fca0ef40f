"""Unique ids for the request path without a system call each.

`uuid.uuid4().hex` reads 16 bytes from the kernel per id and builds a `UUID` (about 3 µs); the request path
makes a few per request (its request id, a lease). Here 64 random bits are drawn once per process, and a
counter tells the process's ids apart: unique across processes and nodes (two processes share a prefix with
a chance of 2⁻⁶⁴ per pair), and a forked child draws its own prefix so it never repeats its parent's ids.
"""

from __future__ import annotations

import itertools
import os

_prefix = ""
_counter = itertools.count()


def _seed() -> None:
    global _prefix, _counter
    _prefix, _counter = os.urandom(8).hex(), itertools.count()


def unique_hex() -> str:
    """32 hex digits, as `uuid4().hex` (a counter's `next` is atomic: any thread may call it)."""
    return f"{_prefix}{next(_counter):016x}"


_seed()
os.register_at_fork(after_in_child=_seed)
