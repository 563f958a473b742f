"""Tile grids and pyramid geometry, without reading any pixels (pure numpy, cheap to import).

A grid of ``tile`` px windows with ``overlap`` px between neighbours, the last row/column flush with the
image edge; an axis no longer than one tile gets one window of the axis length (never padded). Level ``l`` of
the pyramid is the image downsampled by ``2**l``: ``ceil(W / 2**l) × ceil(H / 2**l)`` px, the size GDAL gives
its overviews, so one level pixel covers ``W / w_l`` (≈ ``2**l``) level-0 pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def axis_starts(length: int, tile: int, overlap: int) -> np.ndarray:
    """Window starts along one axis: ``0, s, 2s, …`` (stride ``s = tile - overlap``) then ``length - tile``.

    Consecutive windows overlap by exactly ``overlap`` px except the last pair, which overlaps by at least
    ``overlap`` (the last window is moved back to sit flush with the edge). ``length <= tile`` gives ``[0]``.
    """
    length, tile, overlap = int(length), int(tile), int(overlap)
    if length < 1:
        raise ValueError(f"axis length must be >= 1, got {length}")
    if tile < 1:
        raise ValueError(f"tile_size must be >= 1, got {tile}")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, tile_size), got {overlap} for tile_size {tile}")
    if length <= tile:
        return np.zeros(1, dtype=np.int64)
    starts = np.arange(0, length - tile, tile - overlap, dtype=np.int64)
    return np.append(starts, np.int64(length - tile))


def grid_windows(width: int, height: int, tile: int, overlap: int) -> np.ndarray:
    """(N, 4) int64 windows ``(col_off, row_off, width, height)`` in row-major order (rows outer), all inside
    the image: an axis shorter than ``tile`` gets one window of the axis length (never padded; compare
    ``sgg.datasets.transforms.padded_grid_windows``)."""
    cols = axis_starts(width, tile, overlap)
    rows = axis_starts(height, tile, overlap)
    r, c = np.meshgrid(rows, cols, indexing="ij")
    out = np.empty((r.size, 4), dtype=np.int64)
    out[:, 0] = c.ravel()
    out[:, 1] = r.ravel()
    out[:, 2] = min(tile, width)
    out[:, 3] = min(tile, height)
    return out


def stripe_order(rows: int, cols: int, stripe_cols: int) -> np.ndarray:
    """Permutation of a row-major ``rows × cols`` grid that visits vertical stripes of ``stripe_cols``
    columns left to right, each stripe row by row (row-major when ``stripe_cols >= cols``)."""
    k = max(1, int(stripe_cols))
    r, c = np.divmod(np.arange(rows * cols, dtype=np.int64), cols)
    return np.lexsort((c, r, c // k))


def level_shape(width: int, height: int, level: int) -> tuple[int, int]:
    """``(width, height)`` of pyramid level ``level`` (ceil division by ``2**level``, as GDAL overviews)."""
    if level < 0:
        raise ValueError(f"level must be >= 0, got {level}")
    f = 2**level
    return max(1, math.ceil(width / f)), max(1, math.ceil(height / f))


def num_levels(width: int, height: int, tile_size: int) -> int:
    """Number of pyramid levels: halve until the long side fits in one tile (always >= 1)."""
    if tile_size < 1:
        raise ValueError(f"tile_size must be >= 1, got {tile_size}")
    level = 0
    while max(level_shape(width, height, level)) > tile_size:
        level += 1
    return level + 1


@dataclass(frozen=True)
class TileSpec:
    """One tile of a sweep, before reading: its window at its level and the level-0 window it covers.

    ``level_window`` is ``(col_off, row_off, width, height)`` in level-``level`` pixels; ``window`` is the
    same area in level-0 pixels (rounded outwards, clipped to the image); ``factor`` is the exact
    ``(fx, fy)`` level-0 pixels per level pixel (``2**level`` when the size divides evenly).
    """

    index: int
    level: int
    level_window: tuple[int, int, int, int]
    window: tuple[int, int, int, int]
    factor: tuple[float, float]

    @property
    def float_window(self) -> tuple[float, float, float, float]:
        """The exact level-0 window of ``level_window`` (fractional at levels whose size does not divide)."""
        c, r, w, h = self.level_window
        fx, fy = self.factor
        return c * fx, r * fy, w * fx, h * fy


def tile_specs(width: int, height: int, tile_size: int, overlap: int, level: int = 0) -> list[TileSpec]:
    """All tiles of level ``level`` of a ``width × height`` image, row-major."""
    lw, lh = level_shape(width, height, level)
    fx, fy = width / lw, height / lh
    grid = grid_windows(lw, lh, tile_size, overlap)
    x0 = np.floor(grid[:, 0] * fx + 1e-9).astype(np.int64)
    y0 = np.floor(grid[:, 1] * fy + 1e-9).astype(np.int64)
    x1 = np.minimum(np.ceil((grid[:, 0] + grid[:, 2]) * fx - 1e-9), width).astype(np.int64)
    y1 = np.minimum(np.ceil((grid[:, 1] + grid[:, 3]) * fy - 1e-9), height).astype(np.int64)
    l0 = np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)
    return [
        TileSpec(i, level, tuple(int(v) for v in g), tuple(int(v) for v in w), (fx, fy))  # type: ignore[arg-type]
        for i, (g, w) in enumerate(zip(grid.tolist(), l0.tolist()))
    ]
