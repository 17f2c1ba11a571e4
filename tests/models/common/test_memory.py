import ctypes

import psutil
import pytest

from models.common import memory

pytestmark = pytest.mark.skipif(memory._LIBC is None, reason="needs glibc's malloc_trim")
MIB = 2**20


def _rss() -> int:
    return psutil.Process().memory_info().rss


@pytest.fixture
def fragmented_heap():
    """64 MiB of 1 KiB heap blocks are freed but every 64th stays alive, so the heap
    cannot shrink from its top: only malloc_trim can hand the free pages back."""
    libc = memory._LIBC
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    blocks = []
    for _ in range(65536):
        block = libc.malloc(1024)
        libc.memset(block, 1, 1024)  # touch it: resident
        blocks.append(block)
    for i, block in enumerate(blocks):
        if i % 64:
            libc.free(block)
    yield
    for block in blocks[::64]:
        libc.free(block)


def test_release_memory_returns_freed_heap_pages(fragmented_heap):
    resident = _rss()
    released = memory.release_memory()
    assert released >= 32 * MIB, released
    assert _rss() <= resident - 32 * MIB


def test_without_malloc_trim_the_freed_pages_stay(fragmented_heap, monkeypatch):
    monkeypatch.setattr(memory, "_LIBC", None)
    assert memory.release_memory() < 8 * MIB  # garbage collection alone keeps them
