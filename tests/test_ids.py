"""`common.ids.unique_hex`: the shape of `uuid4().hex`, never the same twice in a process, and a forked child
(a server that forks its workers after importing the app) draws a prefix of its own."""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor

from common.ids import unique_hex

HEX32 = re.compile(r"[0-9a-f]{32}")


def test_ids_have_the_shape_of_a_uuid_hex_and_differ_across_threads():
    with ThreadPoolExecutor(4) as threads:
        ids = list(threads.map(lambda _: unique_hex(), range(4000)))
    assert all(HEX32.fullmatch(i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_child_never_repeats_its_parents_ids():
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first id, then out at once (no pytest teardown in a fork)
        os.write(write, unique_hex().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    mine = unique_hex()
    assert HEX32.fullmatch(child)
    assert child[:16] != mine[:16]
