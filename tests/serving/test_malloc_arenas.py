"""The server caps glibc's malloc arenas (bounded RSS over hot swaps, bench.serving_soak)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from serving import manager

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# 16 threads alive at once, each with a malloc of its own; prints glibc's arena count.
SCRIPT = """
import ctypes, os, re, sys, tempfile, threading
from serving import manager
if sys.argv[1] == "limit":
    assert manager.limit_malloc_arenas() == manager.MALLOC_ARENA_MAX
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
barrier = threading.Barrier(17)
def work():
    libc.malloc(4096)  # the thread's first malloc gives it an arena
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(16)]
for t in threads:
    t.start()
barrier.wait()
for t in threads:
    t.join()
libc.fopen.restype, libc.fopen.argtypes = ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_char_p]
libc.malloc_info.argtypes, libc.fclose.argtypes = [ctypes.c_int, ctypes.c_void_p], [ctypes.c_void_p]
with tempfile.NamedTemporaryFile() as f:
    fp = libc.fopen(f.name.encode(), b"w")
    libc.malloc_info(0, fp)
    libc.fclose(fp)
    print(len(re.findall('<heap nr=', open(f.name).read())))
"""


def _arenas(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    env.update(PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3", TF_USE_LEGACY_KERAS="1")
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300, check=True)  # fmt: skip
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc")
def test_threads_share_the_capped_arenas():
    assert _arenas("limit") <= manager.MALLOC_ARENA_MAX
    assert _arenas("none") > manager.MALLOC_ARENA_MAX  # the same threads, uncapped


def test_malloc_arena_max_in_the_environment_wins(monkeypatch):
    calls = []

    class Libc:
        def mallopt(self, param, value):
            calls.append((param, value))
            return 1

    monkeypatch.setattr(manager.ctypes, "CDLL", lambda name: Libc())
    assert manager.limit_malloc_arenas(environ={"MALLOC_ARENA_MAX": "8"}) is None
    assert calls == []
    assert manager.limit_malloc_arenas(environ={}) == manager.MALLOC_ARENA_MAX
    assert calls == [(-8, manager.MALLOC_ARENA_MAX)]
