"""Raster input/output: :class:`RasterScene` (windowed, multi-level reading with bounded memory), ``Tile``,
``write_geotiff``. Names are resolved lazily so that importing ``sgg.io.cli`` does not import rasterio."""

from __future__ import annotations

from importlib import import_module

_LAZY = {
    "RasterScene": "sgg.io.raster",
    "Tile": "sgg.io.raster",
    "NoCRSWarning": "sgg.io.raster",
    "TileSpec": "sgg.io.tiles",
    "axis_starts": "sgg.io.tiles",
    "grid_windows": "sgg.io.tiles",
    "tile_specs": "sgg.io.tiles",
    "level_shape": "sgg.io.tiles",
    "num_levels": "sgg.io.tiles",
    "write_geotiff": "sgg.io.writer",
    "gdal_cache_limit": "sgg.io.cache",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sgg.io' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
