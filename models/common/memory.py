"""Giving freed memory back to the operating system in long-lived processes."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc

import psutil


def _libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _libc()


def release_memory() -> int:
    """Collects garbage, then returns the heap's free pages to the OS; returns the bytes
    of resident memory this released (0 without glibc's malloc_trim).

    After a task, glibc keeps the pages that TF and Python freed mapped in its heaps, so
    a worker that ran a trainer stays ~0.1 GiB larger than it needs to be while it waits
    for its next task (measured on the ranking trainer). The assembler and the canary
    process call this between stages. (The local runner needs it no more: each component
    now runs in a process of its own, which gives everything back when it ends.)
    """
    before = psutil.Process().memory_info().rss
    gc.collect()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
    return max(0, before - psutil.Process().memory_info().rss)
