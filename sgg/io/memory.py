"""Give freed heap memory back to the operating system during long tile sweeps (glibc ``malloc_trim``).

Why: glibc serves allocations above ``M_MMAP_THRESHOLD`` (128 kB) with ``mmap`` and returns them on
``free`` — until the first such block is freed, after which the threshold rises to that block's size (up to
32 MB). From then on the 3 MB tile arrays, GDAL's decoded blocks and resampling buffers of a sweep come
from the heap arenas of the reader threads and of the main thread, and memory freed in the middle of an
arena stays mapped. The process then grows with the number of tiles read, not with what it holds: on a
20,000² GeoTIFF the level-0 sweep of ``detect_scene`` went from 600 MB to 1,015 MB resident while GDAL's
cache held 63 MB and the tiles in flight a few MB; one ``malloc_trim(0)`` at the end gave back 370 MB.
``MALLOC_ARENA_MAX=2`` changed nothing; a fixed ``MALLOC_MMAP_THRESHOLD_`` or a trim after every tile
kept the peak at 723 MB.

Trimming (madvise of whole free pages in every arena) costs about a millisecond; a tile read costs tens.
It changes no allocator policy, so it is safe inside a library (fixing the mmap threshold would make every
large torch activation a fresh, zero-filled mapping). Elsewhere than glibc it does nothing.

The opposite problem is the detector's: a forward pass allocates and frees the same few hundred MB of
activations every tile, and those above 32 MB (glibc's largest mmap threshold: a 64-channel 400² map is 41 MB)
are always fresh mappings that the kernel zero-fills page by page — 1.77 M minor faults and ~4 s of system CPU
over 25 tiles of a torchvision Faster R-CNN (``benchmarks/bench_detect.py``), about 15 % of the forward's CPU.
:func:`reuse_freed_memory` turns ``mmap`` off (``M_MMAP_MAX = 0``) and raises the automatic trim threshold while a
tile loop runs, so freed activations stay in the heap for the next tile (0 faults in the same loop, 20 % less
CPU); the sweep's periodic :class:`HeapTrimmer` still hands back what is free every ``TRIM_EVERY`` tiles, and the
defaults come back when the last loop ends.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

__all__ = ["release_memory", "HeapTrimmer", "reuse_freed_memory"]

# glibc mallopt parameters and their defaults (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_DEFAULT_TRIM_THRESHOLD, _DEFAULT_MMAP_MAX = 128 * 1024, 65536
_KEEP_TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int: never trim the heap top by itself


@lru_cache(maxsize=1)
def _glibc():
    """The C library when it is glibc (it has ``malloc_trim``; musl and macOS do not), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):
        return None
    libc.malloc_trim.restype = ctypes.c_int
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    return libc


def _malloc_trim():
    libc = _glibc()
    return None if libc is None else libc.malloc_trim


def _mallopt():
    libc = _glibc()
    return None if libc is None else libc.mallopt


_reuse_lock = threading.Lock()
_reuse_depth = 0


@contextmanager
def reuse_freed_memory() -> Iterator[None]:
    """Within the block, large allocations come from the heap and freed pages stay mapped (glibc only).

    For loops that free and re-allocate the same large buffers (a detector's activations, tile after tile):
    no zero-filling of fresh mappings. Nested or concurrent blocks share one setting; the last to leave
    restores glibc's defaults (``M_MMAP_MAX`` 65,536, ``M_TRIM_THRESHOLD`` 128 kB, no longer adjusted
    dynamically) and trims the heap. Memory freed inside the block is returned by :func:`release_memory`.
    """
    global _reuse_depth
    fn = _mallopt()
    if fn is None:
        yield
        return
    with _reuse_lock:
        _reuse_depth += 1
        if _reuse_depth == 1:
            fn(_M_TRIM_THRESHOLD, _KEEP_TRIM_THRESHOLD)
            fn(_M_MMAP_MAX, 0)
    try:
        yield
    finally:
        with _reuse_lock:
            _reuse_depth -= 1
            if _reuse_depth == 0:
                fn(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
                fn(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
                release_memory()


def release_memory() -> bool:
    """Return free heap pages to the OS (glibc ``malloc_trim(0)``); True if anything was released."""
    fn = _malloc_trim()
    return bool(fn(0)) if fn is not None else False


class HeapTrimmer:
    """Calls :func:`release_memory` once every ``every`` ticks (``tick()`` per tile read, say), so a sweep's
    freed buffers are returned while it runs rather than accumulating until it ends."""

    def __init__(self, every: int = 1):
        self.every = max(1, int(every))
        self.count = 0
        self.trims = 0

    def tick(self, n: int = 1) -> None:
        self.count += int(n)
        if self.count >= self.every:
            self.count = 0
            self.trims += 1
            release_memory()
