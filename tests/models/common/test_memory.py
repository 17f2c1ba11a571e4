import ctypes

import psutil
import pytest

from models.common import memory

pytestmark = pytest.mark.skipif(memory._LIBC is None, reason="needs glibc's malloc_trim")


def _rss() -> int:
    return psutil.Process().memory_info().rss


def test_release_memory_returns_freed_heap_pages():
    """64 MiB of 1 KiB heap blocks are freed but every 64th stays alive, so the heap
    cannot shrink from its top: only malloc_trim hands the free pages back."""
    libc = memory._LIBC
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    blocks = []
    for _ in range(65536):
        block = libc.malloc(1024)
        libc.memset(block, 1, 1024)  # touch it: resident
        blocks.append(block)
    kept = blocks[::64]
    for i, block in enumerate(blocks):
        if i % 64:
            libc.free(block)
    del blocks
    resident = _rss()
    released = memory.release_memory()
    assert released >= 32 * 2**20, released
    assert _rss() <= resident - 32 * 2**20
    for block in kept:
        libc.free(block)


def test_release_memory_without_malloc_trim_only_collects(monkeypatch):
    monkeypatch.setattr(memory, "_LIBC", None)
    assert memory.release_memory() >= 0
