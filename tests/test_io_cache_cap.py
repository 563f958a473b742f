"""The reader's GDAL cache bound stays small at coarse levels of files without overviews (memory must not
grow with the image), and such reads still give the same pixels as a plain rasterio decimated read."""

from __future__ import annotations

import numpy as np
import rasterio

from sgg.io import RasterScene, write_geotiff
from sgg.io.cache import FLOOR


def test_coarse_level_cache_is_capped_and_reads_match_rasterio(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (2048, 3072, 3), dtype=np.uint8)
    path = write_geotiff(tmp_path / "noov.tif", img, overviews=False, crs="EPSG:32633",
                         transform=(0.5, 0, 500000, 0, -0.5, 5e6))
    with RasterScene.open(path) as scene:
        assert list(scene.overviews) == []
        sizes = [scene.cache_size(256, level, 64) for level in range(5)]
        assert min(sizes) >= FLOOR and max(sizes) <= 128 * 2**20  # never the 512 MB that grew with the image
        tiles = list(scene.tiles(tile_size=256, overlap=64, level=3, prefetch=0))
        t = tiles[0]
        win = tuple(int(v) for v in t.window)
        with rasterio.open(path) as ds:
            ref = ds.read(window=rasterio.windows.Window(*win), out_shape=(3, t.array.shape[0], t.array.shape[1]),
                          resampling=scene.resampling)
    assert np.array_equal(np.moveaxis(ref, 0, -1), t.array)
