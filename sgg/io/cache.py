"""A process-wide, reference-counted bound on GDAL's block cache.

GDAL's block cache is global and defaults to 5 % of RAM, so a windowed sweep over a 20,000² LZW file keeps
about 1.3 GB of decoded blocks. ``rasterio.Env(GDAL_CACHEMAX=…)`` sets the same global value but its
bookkeeping is thread-local and stack-shaped: two tile iterators that are interleaved (``zip``) and finish
out of order make rasterio raise ``EnvError`` on exit. This limiter uses rasterio's ``set_gdal_config``
directly (which calls ``GDALSetCacheMax64``): while any sweep is active the cache is the sum of the active
requests, never above the value found when the first sweep began; the last sweep to end restores it.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from rasterio.env import get_gdal_config, set_gdal_config

MB = 2**20
FLOOR = 64 * MB
# Above this a band of tiles is not held anyway (a coarse level of a file without overviews spans 16× the
# tile in source pixels): the cache then only needs a few block rows of one window, and a larger one is
# memory that grows with the image (512 MB made `sgg infer` peak 1.58× higher on 20,000² than on 4,000²).
CAP = 128 * MB

_lock = threading.Lock()
_active: dict[int, int] = {}
_saved: list[int] = []
_ids = itertools.count()


def _get() -> int:
    value = get_gdal_config("GDAL_CACHEMAX", normalize=False)
    try:
        value = int(value)
    except (TypeError, ValueError):
        return 0
    return value  # rasterio answers GDALGetCacheMax64(): bytes


def _set(nbytes: int) -> None:
    set_gdal_config("GDAL_CACHEMAX", int(nbytes), normalize=False)


def cache_bytes(rows: int, width: int, bands: int, itemsize: int, floor: int = FLOOR, cap: int = CAP) -> int:
    """Bytes for about one band of tiles: ``rows × width × bands × itemsize``, clamped to [floor, cap]."""
    return int(min(max(rows * width * bands * itemsize, floor), cap))


def current_cache_max() -> int:
    """GDAL's block-cache size in bytes right now."""
    return _get()


@contextmanager
def gdal_cache_limit(nbytes: int) -> Iterator[int]:
    """Bound GDAL's block cache to ``nbytes`` (summed over concurrent sweeps) while the block runs."""
    token = next(_ids)
    with _lock:
        if not _active:
            _saved[:] = [_get()]
        _active[token] = int(nbytes)
        limit = min(sum(_active.values()), _saved[0] or sum(_active.values()))
        _set(limit)
    try:
        yield limit
    finally:
        with _lock:
            del _active[token]
            if _active:
                _set(min(sum(_active.values()), _saved[0] or sum(_active.values())))
            elif _saved and _saved[0]:
                _set(_saved[0])
