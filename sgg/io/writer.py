"""Write GeoTIFFs atomically: tiled, compressed, with internal overviews (for synthetic scenes and tests)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_paths

CODECS = ("deflate", "lzw", "zstd", "jpeg", "webp", "lerc", "packbits")


def overview_factors(width: int, height: int, min_side: int = 256) -> list[int]:
    """Overview decimation factors 2, 4, … while the overview's long side stays >= ``min_side``."""
    factors, f = [], 2
    while max(width, height) / f >= min_side:
        factors.append(f)
        f *= 2
    return factors


def write_geotiff(path: str | os.PathLike, array: np.ndarray, crs: Any = None, transform: Any = None,
                  nodata: float | None = None, tiled: bool = True, blocksize: int = 512,
                  compress: str | None = "deflate", overviews: bool | Sequence[int] = True,
                  overview_resampling: str = "average", band_names: Sequence[str] | None = None,
                  alpha: bool = False) -> Path:
    """Write ``array`` (H, W, C) or (H, W) as a GeoTIFF at ``path`` and return the path.

    ``crs``: anything ``rasterio.crs.CRS.from_user_input`` takes (``"EPSG:32618"``, an EPSG int, WKT) or
    None; ``transform``: an ``affine.Affine`` or its 6 numbers ``(a, b, c, d, e, f)`` (None: identity, pixel
    coordinates). ``overviews``: True for 2, 4, … down to a 256-px long side, or explicit factors.
    ``alpha``: the last band is an alpha band (otherwise every band is plain data: 3 × uint8 is tagged RGB,
    anything else MINISBLACK, so that GDAL never turns a 4th band into alpha by default). The file appears
    complete or not at all (written under a temporary name in the same directory, then renamed)."""
    import rasterio
    from affine import Affine
    from rasterio.crs import CRS
    from rasterio.enums import ColorInterp, Resampling
    from rasterio.errors import NotGeoreferencedWarning

    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[0] < 1 or arr.shape[1] < 1 or arr.shape[2] < 1:
        raise ValueError(f"write_geotiff: array must be (H, W, C) or (H, W), got shape {arr.shape}")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    if arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    h, w, c = arr.shape
    if transform is None:
        transform = Affine.identity()
    elif not isinstance(transform, Affine):
        transform = Affine(*tuple(transform)[:6])
    crs = CRS.from_user_input(crs) if crs is not None else None
    if blocksize % 16:
        raise ValueError(f"write_geotiff: blocksize must be a multiple of 16, got {blocksize}")
    profile: dict[str, Any] = dict(driver="GTiff", width=w, height=h, count=c, dtype=arr.dtype.name, crs=crs,
                                   transform=transform, nodata=nodata, BIGTIFF="IF_SAFER")
    if tiled:
        bs = min(blocksize, max(16, -(-max(w, h) // 16) * 16))
        profile.update(tiled=True, blockxsize=bs, blockysize=bs)
    if compress and str(compress).lower() != "none":
        if str(compress).lower() not in CODECS:
            raise ValueError(f"write_geotiff: compress must be one of {', '.join(CODECS)} or None, got {compress!r}")
        profile["compress"] = compress
        if compress.lower() in ("deflate", "lzw", "zstd"):
            profile["predictor"] = 2 if arr.dtype.kind in "iu" else 3 if arr.dtype.kind == "f" else 1
    if c > 1:
        profile["interleave"] = "pixel"
    rgb = arr.dtype == np.uint8 and c - int(bool(alpha)) == 3
    profile["photometric"] = "RGB" if rgb else "MINISBLACK"
    if alpha:
        if c < 2:
            raise ValueError("write_geotiff: alpha=True needs at least 2 bands")
        profile["alpha"] = "YES"
    factors = overview_factors(w, h) if overviews is True else list(overviews or [])

    out = Path(path)
    with atomic_paths(out) as (tmp,):  # stale parts of a killed run are removed; a failure leaves nothing
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)  # no CRS is allowed: pixel coordinates
            dst = rasterio.open(tmp, "w", **profile)
        with dst:
            dst.write(np.moveaxis(arr, -1, 0))
            interp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue] if rgb else [ColorInterp.gray] * (c - alpha)
            dst.colorinterp = interp + [ColorInterp.undefined] * (c - alpha - len(interp)) + [ColorInterp.alpha] * alpha
            if band_names:
                for i, name in enumerate(band_names[:c], start=1):
                    dst.set_band_description(i, str(name))
            if factors:
                dst.build_overviews(factors, Resampling[overview_resampling])
                dst.update_tags(ns="rio_overview", resampling=overview_resampling)
    return out
