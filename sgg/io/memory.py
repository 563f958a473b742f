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
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import lru_cache

__all__ = ["release_memory", "HeapTrimmer"]


@lru_cache(maxsize=1)
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.malloc_trim  # glibc only (musl has no malloc_trim)
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


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
