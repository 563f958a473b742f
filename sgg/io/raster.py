"""RasterScene: windowed, multi-level reading of rasters of any size with bounded memory (DESIGN.md §5.1).

Nothing is read at open except one block (to catch unreadable files early). Tiles are read one window at a
time with decimated ``out_shape`` reads for pyramid levels (GDAL uses the file's overviews for those
automatically), inside a bounded GDAL block cache (:mod:`sgg.io.cache`). Radiometry: uint8 passes through;
other types are stretched per band between the scene's 2nd and 98th percentiles, computed once from a
low-resolution sample. Nodata, alpha bands, internal masks and non-finite floats become the ``valid`` mask.
"""

from __future__ import annotations

import os
import queue
import threading
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
import rasterio
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.errors import CRSError, NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window

from sgg.errors import SggInputError
from sgg.io.cache import FLOOR, cache_bytes, gdal_cache_limit
from sgg.io.memory import HeapTrimmer, release_memory
from sgg.io.tiles import TileSpec, axis_starts, level_shape, num_levels, stripe_order, tile_specs

try:  # GDAL errors raised by rasterio (CPLE_*); their base class moved between versions
    from rasterio._err import CPLE_BaseError as _CPLError
except ImportError:  # pragma: no cover
    _CPLError = RasterioError

_GDAL_ERRORS = (RasterioError, _CPLError)
STATS_SIDE = 1024  # long side of the low-resolution read used for percentile statistics
STRIPE_FIT = 0.9  # share of the cache bound that a stripe's band of blocks may fill
SUB_READ = 2048  # source px: longer decimated reads are split (their blocks fit a 64 MB cache; _read_split)
# tiles between heap trims in a sweep. Every tile would also hand back the detector's freed activations, which the
# next forward zero-fills again (5x the page faults, 10-14 % more CPU: benchmarks/bench_detect.py --trim-every);
# every 16 amortises that to ~1 % while the sweep's growth stays bounded (~0.7 MB a tile between trims).
TRIM_EVERY = 16


def open_dataset(path: str | os.PathLike) -> Any:
    """``rasterio.open(path)`` for reading that never writes beside the input. GDAL's PAM saves whatever
    becomes "dirty" on a dataset (approximate statistics that GDAL or a caller computes, metadata) to a new
    ``<file>.aux.xml`` next to it when the dataset closes; users' image folders must stay untouched, so PAM
    is off for the dataset (GDAL reads the flag at open). A sidecar that already exists is still read (it
    may hold the CRS of a PNG or JPEG), so PAM stays on for such files."""
    sidecar = Path(f"{os.fspath(path)}.aux.xml")
    with rasterio.Env(**({} if sidecar.exists() else {"GDAL_PAM_ENABLED": "NO"})):
        return rasterio.open(path)


def crs_gsd(crs: Any, transform: Sequence[float]) -> float | None:
    """Ground sample distance in metres (mean of x and y pixel size) of a rasterio ``crs`` and affine
    ``transform`` (a, b, c, d, e, f): None unless the CRS is projected; unknown units are taken as metres."""
    if crs is None or not crs.is_projected:
        return None
    a, b, _, d, e = (float(v) for v in tuple(transform)[:5])
    res = (float(np.hypot(a, d)) + float(np.hypot(b, e))) / 2
    try:
        factor = float(crs.linear_units_factor[1])
    except (CRSError, TypeError, ValueError, IndexError):  # unknown units: assume metres
        factor = 1.0
    return res * factor


class NoCRSWarning(UserWarning):
    """The raster has no georeferencing; it is used in pixel coordinates (identity transform, no CRS)."""


@dataclass
class Tile:
    """A tile read from a scene.

    ``array`` is H×W×C (uint8, or float32 in [0, 1] when the scene was opened with ``dtype="float32"``), a
    view of a C-contiguous C×H×W buffer (:attr:`chw`, what a model wants) so no copy is made;
    ``window`` is ``(col_off, row_off, width, height)`` in level-0 pixels; ``level_window`` the same area
    at ``level``; ``scale = 2**level``; ``factor`` the exact level-0 pixels per array pixel ``(fx, fy)``
    (equal to ``scale`` unless the image size is not divisible by it); ``origin`` the exact level-0
    position of the array's top-left corner; ``valid`` is H×W bool. Array pixel ``(x, y)`` (pixel-corner
    coordinates) maps to level-0 ``origin + (x * fx, y * fy)``: see :meth:`to_level0`.
    """

    array: np.ndarray
    window: tuple[int, int, int, int]
    level: int
    scale: float
    valid: np.ndarray
    level_window: tuple[int, int, int, int]
    factor: tuple[float, float]
    origin: tuple[float, float] = (0.0, 0.0)
    index: int = 0

    @property
    def chw(self) -> np.ndarray:
        """The tile as C×H×W (C-contiguous for tiles read by RasterScene: ``array`` is a view of it)."""
        return np.moveaxis(self.array, -1, 0)

    def to_level0(self, xy: Any) -> np.ndarray:
        """(..., 2) tile pixel coordinates (x, y) → level-0 image pixel coordinates."""
        xy = np.asarray(xy, dtype=np.float64)
        return np.asarray(self.origin) + xy * np.asarray(self.factor, dtype=np.float64)


def _cause(exc: BaseException) -> str:
    """The most specific message in an exception chain (GDAL's own text sits in ``__cause__``)."""
    msgs = []
    e: BaseException | None = exc
    while e is not None and len(msgs) < 4:
        text = str(e).strip()
        if text and text not in msgs:
            msgs.append(text)
        e = e.__cause__ or e.__context__
    return msgs[-1] if msgs else type(exc).__name__


def _resampling(name: str | Resampling) -> Resampling:
    if isinstance(name, Resampling):
        return name
    try:
        return Resampling[str(name).lower()]
    except KeyError:
        raise ValueError(f"unknown resampling {name!r}; use 'average', 'nearest', 'bilinear', ...") from None


class RasterScene:
    """An open raster read by windows. Use :meth:`open` (also a context manager); :meth:`close` when done."""

    def __init__(self, path: Path, ds: Any, bands: Sequence[int] | None, dtype: str, resampling: str,
                 percentiles: tuple[float, float]):
        self.path = path
        self._ds = ds
        self.width: int = ds.width
        self.height: int = ds.height
        self.count: int = ds.count
        self.dtype: str = ds.dtypes[0]
        self.nodata = ds.nodata
        self.overviews: list[int] = list(ds.overviews(1)) if ds.count else []
        self.block_shape: tuple[int, int] = tuple(ds.block_shapes[0])  # type: ignore[assignment]
        self.out_dtype = np.dtype(dtype)
        if self.out_dtype not in (np.dtype(np.uint8), np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be 'uint8', 'float32' or 'float64', got {dtype!r}")
        self.resampling = _resampling(resampling)
        self.percentiles = (float(percentiles[0]), float(percentiles[1]))
        georeferenced = ds.crs is not None or not ds.transform.is_identity
        self.crs = ds.crs if ds.crs is not None else None
        self.transform = ds.transform
        self.georeferenced = georeferenced
        self.bands, self.read_indexes = self._select_bands(bands)
        self.alpha_band = next((i + 1 for i, c in enumerate(ds.colorinterp) if c == ColorInterp.alpha), None)
        flags = [ds.mask_flag_enums[i - 1] for i in self.read_indexes]
        self._all_valid = all(f == [MaskFlags.all_valid] for f in flags)
        self._per_dataset = all(MaskFlags.per_dataset in f for f in flags)
        self._stats: np.ndarray | None = None
        self._stats_lock = threading.Lock()

    # ------------------------------------------------------------------ opening and metadata
    @classmethod
    def open(cls, path: str | os.PathLike, bands: Sequence[int] | None = None, *, dtype: str = "uint8",
             resampling: str = "average", percentiles: tuple[float, float] = (2.0, 98.0)) -> RasterScene:
        """Open ``path``. ``bands``: 1-based band numbers (default: R,G,B by colour interpretation, else the
        first three non-alpha bands, else the first band replicated to 3 channels). ``dtype``: ``uint8`` or
        ``float32`` in [0, 1]. ``resampling`` for levels > 0: ``average`` (default) or ``nearest``, ...
        Raises :class:`SggInputError` for a missing, unreadable or non-raster file."""
        p = Path(path)
        if not p.exists():
            raise SggInputError("file not found", path=p)
        if p.is_dir():
            raise SggInputError("is a directory, not a raster file", path=p)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", NotGeoreferencedWarning)
            try:
                ds = open_dataset(p)
            except _GDAL_ERRORS as exc:
                raise SggInputError(f"cannot open as a raster ({_cause(exc)})", path=p) from None
        try:
            if ds.count < 1:
                raise SggInputError("has no raster bands", path=p)
            scene = cls(p, ds, bands, dtype, resampling, percentiles)
            scene._probe()
        except BaseException:
            ds.close()
            raise
        if not scene.georeferenced or any(issubclass(w.category, NotGeoreferencedWarning) for w in caught):
            warnings.warn(f"{p}: no georeferencing; using pixel coordinates (no CRS, identity transform)",
                          NoCRSWarning, stacklevel=2)
        return scene

    def _select_bands(self, bands: Sequence[int] | None) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(output bands, distinct bands to read), 1-based. One band is replicated to 3 channels."""
        ds = self._ds
        if bands is None:
            ci = list(ds.colorinterp)
            rgb = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
            if all(c in ci for c in rgb):
                bands = [ci.index(c) + 1 for c in rgb]
            else:
                non_alpha = [i + 1 for i, c in enumerate(ci) if c != ColorInterp.alpha] or [1]
                bands = non_alpha[:3] if len(non_alpha) >= 3 else non_alpha[:1]
        bands = tuple(int(b) for b in (bands if isinstance(bands, (list, tuple)) else [bands]))
        if not bands or any(b < 1 or b > ds.count for b in bands):
            raise SggInputError(f"bands {bands} out of range: the file has {ds.count} band(s), numbered from 1",
                                path=self.path)
        out = bands * 3 if len(bands) == 1 else bands
        return out, tuple(dict.fromkeys(bands))

    def _probe(self) -> None:
        """Read the first and the last block so that truncated or damaged files usually fail at open (files are
        written in block order) rather than mid-sweep. Two blocks: cheap at any image size."""
        bh, bw = self.block_shape
        c0, r0 = (self.width - 1) // bw * bw, (self.height - 1) // bh * bh
        for band, (c, r) in ((1, (0, 0)), (self.count, (c0, r0))):
            ww, hh = min(bw, self.width - c), min(bh, self.height - r)
            self._read_raw(self._ds, (float(c), float(r), float(ww), float(hh)), (ww, hh), indexes=(band,))

    @property
    def georef(self) -> Any:
        """The raster's :class:`sgg.structures.GeoReference` (``crs_wkt`` None without a CRS)."""
        from sgg.structures import GeoReference  # imports torch: only when asked, so readers stay light

        return GeoReference(self.crs.to_wkt() if self.crs else None, tuple(self.transform)[:6], str(self.path))

    @property
    def gsd(self) -> float | None:
        """Ground sample distance in metres (mean of x and y pixel size) for a projected CRS, else None."""
        return crs_gsd(self.crs, self.transform)

    def level_shape(self, level: int) -> tuple[int, int]:
        """``(width, height)`` of pyramid level ``level``."""
        return level_shape(self.width, self.height, level)

    def levels(self, tile_size: int = 1024) -> list[int]:
        """``[0, 1, …, L]``: halve until the long side fits in one ``tile_size`` tile."""
        return list(range(num_levels(self.width, self.height, tile_size)))

    def tile_windows(self, tile_size: int = 1024, overlap: int = 200, level: int = 0,
                     order: str = "stripes") -> list[TileSpec]:
        """The sweep's tiles in :meth:`tiles` order, without reading anything (e.g. to shard them).

        ``order="stripes"`` (default) visits vertical stripes of tile columns sized to the block cache
        (:meth:`sweep_plan`; plain row-major when the image is narrow enough); ``"rows"`` is row-major.
        ``TileSpec.index`` is always the row-major grid index."""
        specs = tile_specs(self.width, self.height, tile_size, overlap, level)
        if order == "rows":
            return specs
        if order != "stripes":
            raise ValueError(f"order must be 'stripes' or 'rows', got {order!r}")
        lw = level_shape(self.width, self.height, level)[0]
        ncols = len(axis_starts(lw, tile_size, overlap))
        k = self.sweep_plan(tile_size, overlap, level)[0]
        return [specs[i] for i in stripe_order(len(specs) // ncols, ncols, k)]

    def sweep_plan(self, tile_size: int, overlap: int = 200, level: int = 0) -> tuple[int, int]:
        """``(stripe_cols, cache_bytes)`` for a sweep: how many tile columns one stripe holds, and the GDAL
        block-cache bound.

        A row-major sweep decodes each block once only if the cache keeps every block of a band of tiles
        (tile height plus a block) across the whole width, which grows with the image. So tiles are visited
        in vertical stripes of ``stripe_cols`` tile columns whose band fits in 64 MB (row-major within a stripe;
        plain row-major when one stripe spans the image); blocks on a stripe's edge are decoded twice. The
        cache is that band plus 10 %, at least 64 MB (a small image is then held whole); 64 MB when a tile spans
        more than :data:`SUB_READ` source px, as its reads are then split into pieces whose blocks fit that."""
        f = 2**level
        best = max([1] + [o for o in self.overviews if o <= f])  # GDAL reads from this overview (or level 0)
        fsrc = f / best
        src_w = -(-self.width // best)
        bh, bw = self.block_shape
        t_src = max(1, round(tile_size * fsrc))
        stride_src = max(1, round((tile_size - overlap) * fsrc))
        rows = (-(-t_src // bh) + 1) * bh
        bpp = self.count * np.dtype(self.dtype).itemsize

        def band(k: int) -> int:
            return rows * (min(src_w, (k - 1) * stride_src + t_src) + bw) * bpp

        ncols = len(axis_starts(level_shape(self.width, self.height, level)[0], tile_size, overlap))
        k = 1
        while k < ncols and band(k + 1) <= STRIPE_FIT * FLOOR:
            k += 1
        k = -(-ncols // -(-ncols // k))  # balance: the same number of stripes, of near-equal width
        if t_src > SUB_READ:  # decimated reads split into SUB_READ² pieces (_read_split): a few block rows of one
            return k, FLOOR
        return k, cache_bytes(int(band(k) * 1.1), 1, 1, 1, floor=FLOOR)

    def cache_size(self, tile_size: int, level: int = 0, overlap: int = 200) -> int:
        """GDAL block-cache bytes used while sweeping tiles of ``tile_size`` at ``level`` (see :meth:`sweep_plan`)."""
        return self.sweep_plan(tile_size, overlap, level)[1]

    # ------------------------------------------------------------------ reading
    def _read_raw(self, ds: Any, fwin: tuple[float, float, float, float], out_wh: tuple[int, int],
                  indexes: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(C,h,w) data of ``indexes`` and (h,w) validity for a level-0 float window, resampled to out_wh."""
        idx = list(indexes or self.read_indexes)
        w, h = out_wh
        ww, hh = fwin[2:]
        if (ww > SUB_READ or hh > SUB_READ) and (ww > 1.5 * w or hh > 1.5 * h):
            return self._read_split(ds, fwin, out_wh, idx)
        win = Window(*fwin)
        try:
            data = ds.read(idx, window=win, out_shape=(len(idx), h, w), resampling=self.resampling)
            if self._all_valid:
                valid = np.ones((h, w), dtype=bool)
            else:
                midx = idx[:1] if self._per_dataset else idx
                masks = ds.read_masks(midx, window=win, out_shape=(len(midx), h, w), resampling=Resampling.nearest)
                valid = (masks > 0).any(axis=0)
        except _GDAL_ERRORS as exc:
            c, r, ww, hh = fwin
            raise SggInputError(f"read failed in window col={c:g} row={r:g} width={ww:g} height={hh:g} "
                                f"({_cause(exc)})", path=self.path) from None
        if data.dtype.kind == "f":
            valid &= np.isfinite(data).all(axis=0)
        return data, valid

    def _read_split(self, ds: Any, fwin: tuple[float, float, float, float], out_wh: tuple[int, int],
                    idx: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """A decimated read of a large window as sub-reads of at most :data:`SUB_READ` source px, cut at output
        pixel boundaries (so every output pixel averages the same source pixels). GDAL resamples band by band:
        when a window's blocks exceed the block cache, a pixel-interleaved file has each block decoded once per
        band; a coarse 1024-px tile of a 20,000² file without overviews spans 16,384² source px (256 blocks)."""
        c, r, ww, hh = fwin
        w, h = out_wh
        fx, fy = ww / w, hh / h
        sx, sy = max(1, int(SUB_READ // fx)), max(1, int(SUB_READ // fy))
        data = np.empty((len(idx), h, w), dtype=np.dtype(ds.dtypes[idx[0] - 1]))
        valid = np.empty((h, w), dtype=bool)
        for oy in range(0, h, sy):
            for ox in range(0, w, sx):
                ow, oh = min(sx, w - ox), min(sy, h - oy)
                d, v = self._read_raw(ds, (c + ox * fx, r + oy * fy, ow * fx, oh * fy), (ow, oh), idx)
                data[:, oy:oy + oh, ox:ox + ow] = d
                valid[oy:oy + oh, ox:ox + ow] = v
        return data, valid

    def _stats_sample(self) -> tuple[np.ndarray, np.ndarray]:
        """(C, n) pixels and (n,) validity for the percentile statistics, read cheaply.

        The whole image decimated to a long side of 1024 px when that is cheap (an overview within a factor
        4 of it, or an image up to 4096² px); otherwise an 8 × 8 grid of block-aligned windows (one block
        each in a tiled file) at full resolution, every 4th pixel kept — a decimated read of a large file
        without overviews would decode every block once."""
        level = max(0, num_levels(self.width, self.height, STATS_SIDE) - 1)
        best = max([1] + [o for o in self.overviews if o <= 2**level])
        if self.width * self.height <= 4096**2 or 2**level <= 4 * best:
            lw, lh = level_shape(self.width, self.height, level)
            with gdal_cache_limit(self.cache_size(STATS_SIDE, level, 0)):
                data, valid = self._read_raw(self._ds, (0.0, 0.0, float(self.width), float(self.height)), (lw, lh))
            return data.reshape(data.shape[0], -1), valid.ravel()
        bh, bw = self.block_shape
        ws = bw if bw < self.width else 512
        hs = max(bh, 64)
        ws, hs = min(ws, self.width), min(hs, self.height)
        cols = np.unique(np.linspace(0, (self.width - ws) // ws, 8).round().astype(int)) * ws
        rows = np.unique(np.linspace(0, (self.height - hs) // hs, 8).round().astype(int)) * hs
        parts, masks = [], []
        with gdal_cache_limit(FLOOR):
            for r in rows.tolist():
                for c in cols.tolist():
                    data, valid = self._read_raw(self._ds, (float(c), float(r), float(ws), float(hs)), (ws, hs))
                    parts.append(data[:, ::4, ::4].reshape(data.shape[0], -1))
                    masks.append(valid[::4, ::4].ravel())
        return np.concatenate(parts, axis=1), np.concatenate(masks)

    def statistics(self) -> np.ndarray:
        """(n_read_bands, 2) per-band low/high percentiles of valid pixels, from a low-resolution sample
        (:meth:`_stats_sample`), computed once and cached. A constant band gets ``(v - 0.5, v + 0.5)``."""
        with self._stats_lock:
            if self._stats is None:
                data, valid = self._stats_sample()
                stats = np.zeros((data.shape[0], 2), dtype=np.float64)
                for b in range(data.shape[0]):  # a handful of bands
                    v = data[b][valid]
                    if v.size:
                        stats[b] = np.percentile(v.astype(np.float64), self.percentiles)
                    else:
                        stats[b] = (0.0, 1.0)
                    if stats[b, 1] <= stats[b, 0]:  # constant band: its value maps to mid-grey
                        stats[b] = (stats[b, 0] - 0.5, stats[b, 0] + 0.5)
                self._stats = stats
            return self._stats

    def _convert(self, data: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """(C,h,w) native → (h,w,C_out) uint8 or float in [0,1]; invalid pixels are 0."""
        if data.dtype == np.uint8:
            out = data if self.out_dtype == np.uint8 else data.astype(self.out_dtype) / 255.0
        else:
            st = self.statistics()
            lo = st[:, 0].reshape(-1, 1, 1)
            scale = 1.0 / (st[:, 1] - st[:, 0]).reshape(-1, 1, 1)
            with np.errstate(over="ignore", invalid="ignore"):  # nodata like -3.4e38 overflows; masked below
                f = np.clip((data.astype(np.float32) - lo.astype(np.float32)) * scale.astype(np.float32), 0, 1)
            f = np.nan_to_num(f, nan=0.0)
            out = (f * 255.0 + 0.5).astype(np.uint8) if self.out_dtype == np.uint8 else f.astype(self.out_dtype)
        pos = {b: i for i, b in enumerate(self.read_indexes)}
        order = [pos[b] for b in self.bands]
        if order != list(range(out.shape[0])):
            out = out[order]  # band reorder / replication: a new C-contiguous (C, h, w) buffer
        if not valid.all():
            out[:, ~valid] = 0
        return np.moveaxis(out, 0, -1)  # an (h, w, C) view: no copy; Tile.chw gives the buffer back

    def _read_spec(self, spec: TileSpec, ds: Any | None = None) -> Tile:
        _, _, w, h = spec.level_window
        fwin = spec.float_window
        data, valid = self._read_raw(ds or self._ds, fwin, (w, h))
        return Tile(self._convert(data, valid), spec.window, spec.level, float(2**spec.level), valid,
                    spec.level_window, spec.factor, fwin[:2], spec.index)

    def _ensure_stats(self) -> None:
        if self.out_dtype != np.uint8 or self.dtype != "uint8":
            self.statistics()

    def read_tile(self, spec: TileSpec) -> Tile:
        """Read one tile of :meth:`tile_windows` (for sharded sweeps)."""
        self._ensure_stats()
        with gdal_cache_limit(self.cache_size(max(spec.level_window[2:]), spec.level, 0)):
            return self._read_spec(spec)

    def read(self, window: Sequence[int] | Window | None = None, level: int = 0) -> Tile:
        """Read a level-0 ``window`` ``(col_off, row_off, width, height)`` (default: whole image) at ``level``.

        The window is clipped to the image; at level ``l`` the output is ``ceil(size / 2**l)`` px."""
        if window is None:
            window = (0, 0, self.width, self.height)
        if isinstance(window, Window):
            window = (window.col_off, window.row_off, window.width, window.height)
        c, r, w, h = (int(round(v)) for v in window)
        c0, r0 = max(c, 0), max(r, 0)
        c1, r1 = min(c + w, self.width), min(r + h, self.height)
        if c1 <= c0 or r1 <= r0:
            raise ValueError(f"window {tuple(window)} does not intersect the {self.width}×{self.height} image")
        f = 2**level
        lw, lh = max(1, -(-(c1 - c0) // f)), max(1, -(-(r1 - r0) // f))
        fx, fy = (c1 - c0) / lw, (r1 - r0) / lh
        spec = TileSpec(0, level, (c0 // f, r0 // f, lw, lh), (c0, r0, c1 - c0, r1 - r0), (fx, fy))
        self._ensure_stats()
        with gdal_cache_limit(self.cache_size(max(lw, lh), level, 0)):
            data, valid = self._read_raw(self._ds, (c0, r0, c1 - c0, r1 - r0), (lw, lh))
        release_memory()  # a decimated read of a large window frees big resampling buffers
        return Tile(self._convert(data, valid), spec.window, level, float(f), valid, spec.level_window, (fx, fy),
                    (float(c0), float(r0)))

    def tiles(self, tile_size: int = 1024, overlap: int = 200, level: int = 0, skip_empty: bool = True,
              prefetch: int = 0, shard: tuple[int, int] | None = None, order: str = "stripes",
              workers: int = 1, specs: Sequence[TileSpec] | None = None) -> Iterator[Tile]:
        """Iterate the tiles of ``level`` (grid: :func:`sgg.io.tiles.axis_starts`; order: :meth:`tile_windows`).

        ``skip_empty`` drops tiles without a valid pixel. ``prefetch=N`` reads up to N tiles ahead on a
        thread pool (each worker has its own dataset handle); order and content are unchanged and read
        errors surface at the tile that failed; closing the iterator cancels what is queued. ``workers``
        reader threads (default 1) each have their own dataset handle, and GDAL caches blocks per handle, so
        more than one worker decodes overlapping blocks twice: worth it only with idle cores.
        ``shard=(rank, world_size)`` keeps every world_size-th tile. ``specs``: read these tiles of
        :meth:`tile_windows` (e.g. a subset chosen from a coarser level) instead of the whole grid."""
        if specs is not None:
            specs = list(specs)
            if specs:
                level = specs[0].level
                tile_size = max(max(s.level_window[2:]) for s in specs)
                overlap = 0
        else:
            specs = self.tile_windows(tile_size, overlap, level, order)
        if shard is not None:
            rank, world = shard
            specs = specs[rank::world]
        cache = self.cache_size(tile_size, level, overlap) * max(1, min(int(workers), int(prefetch) or 1))
        return self._iterate(specs, cache, skip_empty, int(prefetch), int(workers))

    def _iterate(self, specs: list[TileSpec], cache: int, skip_empty: bool, prefetch: int,
                 workers: int) -> Iterator[Tile]:
        self._ensure_stats()
        trimmer = HeapTrimmer(TRIM_EVERY)
        with gdal_cache_limit(cache):
            source = self._prefetched(specs, prefetch, workers) if prefetch > 0 else map(self._read_spec, specs)
            try:
                for tile in source:
                    # the consumer has let go of earlier tiles by now: hand their pages back (sgg.io.memory)
                    trimmer.tick()
                    if skip_empty and not tile.valid.any():
                        continue
                    yield tile
            finally:
                close = getattr(source, "close", None)
                if close is not None:
                    close()
                release_memory()

    def _prefetched(self, specs: list[TileSpec], depth: int, workers: int = 1) -> Iterator[Tile]:
        """Read ``specs`` in order, up to ``depth`` ahead, on worker threads with their own handles."""
        workers = max(1, min(workers, depth, len(specs)))
        handles: queue.SimpleQueue = queue.SimpleQueue()
        opened = []
        for _ in range(workers):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                opened.append(open_dataset(self.path))
            handles.put(opened[-1])

        def work(spec: TileSpec) -> Tile:
            ds = handles.get()
            try:
                return self._read_spec(spec, ds)
            finally:
                handles.put(ds)

        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sgg-read")
        pending: deque = deque()
        it = iter(specs)
        try:
            for spec in it:
                pending.append(pool.submit(work, spec))
                if len(pending) >= depth:
                    break
            while pending:
                tile = pending.popleft().result()
                nxt = next(it, None)
                if nxt is not None:
                    pending.append(pool.submit(work, nxt))
                yield tile
        finally:
            for fut in pending:
                fut.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            for ds in opened:
                ds.close()

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        if self._ds is not None and not self._ds.closed:
            self._ds.close()

    @property
    def closed(self) -> bool:
        return self._ds.closed

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        crs = self.crs.to_string() if self.crs else "pixel"
        return (f"RasterScene({str(self.path)!r}, {self.width}×{self.height}, {self.count}×{self.dtype}, "
                f"crs={crs}, bands={self.bands})")
