"""RasterScene on synthetic GeoTIFFs: tiles reassemble the image, level reads match rasterio's own decimated
read of the whole image, overviews are used, radiometry, masks, prefetch, the GDAL cache bound."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.enums import Resampling

from sgg.errors import SggInputError
from sgg.io import NoCRSWarning, RasterScene, write_geotiff
from sgg.io.cache import current_cache_max, gdal_cache_limit

UTM = "EPSG:32618"
TR = Affine(0.5, 0, 500000, 0, -0.5, 4200000)


def _image(h, w, c=3, dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = (np.sin(xx / 17.0) + np.cos(yy / 23.0) + 2) * 50
    img = base[..., None] + rng.normal(0, 20, (h, w, c)) + np.arange(c) * 10
    if dtype == np.uint8:
        return np.clip(img, 0, 255).astype(np.uint8)
    return (img * 40).astype(dtype)


@pytest.fixture(scope="module")
def rgb_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("io") / "rgb.tif"
    write_geotiff(path, _image(1001, 777), UTM, TR, blocksize=128, overviews=False)
    return path


def _tiles(path, **kw):
    opts = {k: kw.pop(k) for k in ("bands", "dtype", "resampling") if k in kw}
    with RasterScene.open(path, **opts) as scene:
        return list(scene.tiles(**kw))


def test_level0_tiles_reassemble_the_image(rgb_path):
    img = _image(1001, 777)
    tiles = _tiles(rgb_path, tile_size=256, overlap=64)
    out = np.zeros_like(img)
    for t in tiles:
        c, r, w, h = t.window
        assert t.array.shape == (h, w, 3) and t.array.dtype == np.uint8 and t.valid.all()
        assert t.level == 0 and t.scale == 1.0 and t.level_window == t.window
        np.testing.assert_array_equal(t.array, img[r:r + h, c:c + w])
        out[r:r + h, c:c + w] = t.array
    np.testing.assert_array_equal(out, img)


@pytest.mark.parametrize("level", [1, 2, 3])
@pytest.mark.parametrize("resampling,tol", [("nearest", 0), ("average", 1)])
def test_level_tiles_equal_rasterio_decimated_read(rgb_path, level, resampling, tol):
    with rasterio.open(rgb_path) as ds, RasterScene.open(rgb_path, resampling=resampling) as scene:
        lw, lh = scene.level_shape(level)
        ref = ds.read(out_shape=(3, lh, lw), resampling=Resampling[resampling]).transpose(1, 2, 0)
        tiles = list(scene.tiles(tile_size=100, overlap=30, level=level))
    assert len(tiles) > 1
    for t in tiles:
        c, r, w, h = t.level_window
        assert t.scale == 2**level and t.array.shape == (h, w, 3)
        diff = np.abs(t.array.astype(int) - ref[r:r + h, c:c + w].astype(int))
        assert diff.max() <= tol
        # the level-0 window contains the exact area of the tile
        x0, y0 = t.to_level0([0, 0])
        x1, y1 = t.to_level0([w, h])
        wc, wr, ww, wh = t.window
        assert wc <= x0 + 1e-6 and wr <= y0 + 1e-6 and x1 <= wc + ww + 1e-6 and y1 <= wr + wh + 1e-6


def test_level_reads_use_overviews(tmp_path):
    """A nearest level-1 read returns the file's (average-built) overview, not a nearest decimation."""
    img = _image(600, 520)
    path = write_geotiff(tmp_path / "ov.tif", img, UTM, TR, blocksize=128, overviews=[2, 4])
    with rasterio.open(path, overview_level=0) as ov:
        overview = ov.read().transpose(1, 2, 0)
    with RasterScene.open(path, resampling="nearest") as scene:
        assert scene.overviews == [2, 4]
        tile = scene.read(level=1)
    np.testing.assert_array_equal(tile.array, overview)
    assert not np.array_equal(tile.array, img[::2, ::2])


def test_cogeo_level_reads_match_its_overviews(real_dir):
    path = real_dir / "rasterio" / "cogeo.tif"
    with RasterScene.open(path) as scene:
        assert scene.overviews == [2, 4, 8, 16, 32, 64]
        for level in (1, 2):
            with rasterio.open(path, overview_level=level - 1) as ov:
                ref = ov.read().transpose(1, 2, 0)
            tiles = list(scene.tiles(tile_size=128, overlap=0, level=level))
            got = np.zeros_like(ref)
            for t in tiles:
                c, r, w, h = t.level_window
                got[r:r + h, c:c + w] = t.array
            np.testing.assert_array_equal(got, ref)


def test_read_arbitrary_window(rgb_path):
    img = _image(1001, 777)
    with RasterScene.open(rgb_path) as scene:
        t = scene.read((700, 900, 200, 200))  # clipped to the image
        assert t.window == (700, 900, 77, 101)
        np.testing.assert_array_equal(t.array, img[900:1001, 700:777])
        np.testing.assert_allclose(t.to_level0([[0, 0], [77, 101]]), [[700, 900], [777, 1001]])
        assert scene.read(level=2).array.shape == (251, 195, 3)
        with pytest.raises(ValueError):
            scene.read((2000, 0, 10, 10))


def test_prefetch_yields_identical_tiles(rgb_path):
    plain = _tiles(rgb_path, tile_size=200, overlap=50, level=1)
    for depth in (1, 3, 8):
        pre = _tiles(rgb_path, tile_size=200, overlap=50, level=1, prefetch=depth)
        assert [t.window for t in pre] == [t.window for t in plain]
        for a, b in zip(pre, plain):
            np.testing.assert_array_equal(a.array, b.array)
            np.testing.assert_array_equal(a.valid, b.valid)


def test_prefetch_close_early_and_cache_bound_restored(rgb_path):
    before = current_cache_max()
    with RasterScene.open(rgb_path) as scene:
        it = scene.tiles(tile_size=128, overlap=0, prefetch=4)
        next(it)
        assert current_cache_max() == min(scene.cache_size(128, 0, 0), before)
        it.close()
    assert current_cache_max() == before


def test_interleaved_sweeps_share_the_cache_bound(rgb_path):
    before = current_cache_max()
    with RasterScene.open(rgb_path) as a, RasterScene.open(rgb_path) as b:
        ta = a.tiles(tile_size=512, overlap=0)
        tb = b.tiles(tile_size=256, overlap=0)
        next(ta), next(tb)
        assert current_cache_max() == min(a.cache_size(512, 0, 0) + b.cache_size(256, 0, 0), before)
        list(ta)  # the first sweep ends while the second is still running
        assert current_cache_max() == min(b.cache_size(256, 0, 0), before)
        list(tb)
    assert current_cache_max() == before
    with gdal_cache_limit(10 * 2**20):
        assert current_cache_max() == min(10 * 2**20, before)
    assert current_cache_max() == before


def test_uint16_percentile_stretch_and_float_output(tmp_path):
    img = _image(300, 400, c=4, dtype=np.uint16)
    path = write_geotiff(tmp_path / "u16.tif", img, UTM, TR, overviews=False)
    with RasterScene.open(path, bands=(3, 1, 2)) as scene:
        assert scene.bands == (3, 1, 2) and scene.dtype == "uint16"
        stats = scene.statistics()
        ref = np.percentile(img[..., [2, 0, 1]].reshape(-1, 3).astype(float), [2, 98], axis=0).T
        np.testing.assert_allclose(stats, ref)
        t = scene.read()
    expect = np.clip((img[..., [2, 0, 1]] - ref[:, 0]) / (ref[:, 1] - ref[:, 0]), 0, 1)
    assert t.array.dtype == np.uint8
    assert np.abs(t.array.astype(float) - expect * 255).max() <= 0.51
    with RasterScene.open(path, bands=(3, 1, 2), dtype="float32") as scene:
        f = scene.read().array
    assert f.dtype == np.float32 and f.min() >= 0 and f.max() <= 1
    np.testing.assert_allclose(f, expect, atol=1e-5)


def test_band_selection_and_replication(tmp_path):
    img = _image(100, 120, c=4)
    path = write_geotiff(tmp_path / "b4.tif", img, UTM, TR, overviews=False)
    with RasterScene.open(path) as scene:  # no RGB colour interpretation on 4 bands: first three
        np.testing.assert_array_equal(scene.read().array, img[..., :3])
    with RasterScene.open(path, bands=(4, 2, 1)) as scene:
        np.testing.assert_array_equal(scene.read().array, img[..., [3, 1, 0]])
    with RasterScene.open(path, bands=[2]) as scene:
        np.testing.assert_array_equal(scene.read().array, np.repeat(img[..., 1:2], 3, axis=2))
    with pytest.raises(SggInputError, match="out of range"):
        RasterScene.open(path, bands=(5,))


def test_nodata_valid_mask_and_empty_tiles(tmp_path):
    img = _image(300, 300)
    img[:, :150] = 0  # left half is nodata
    path = write_geotiff(tmp_path / "nd.tif", img, UTM, TR, nodata=0, overviews=False)
    with RasterScene.open(path) as scene:
        assert scene.nodata == 0
        tiles = list(scene.tiles(tile_size=100, overlap=0))
        all_tiles = list(scene.tiles(tile_size=100, overlap=0, skip_empty=False))
    assert len(all_tiles) == 9 and len(tiles) == 6  # the left column of tiles is all nodata
    for t in all_tiles:
        c, r, w, h = t.window
        np.testing.assert_array_equal(t.valid, (img[r:r + h, c:c + w] != 0).any(axis=2))


def test_float_nan_is_invalid(tmp_path):
    img = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    img[:10] = np.nan
    path = write_geotiff(tmp_path / "f.tif", img, UTM, TR, overviews=False)
    with RasterScene.open(path) as scene:
        t = scene.read()
    assert t.array.shape == (64, 64, 3)
    assert not t.valid[:10].any() and t.valid[10:].all() and (t.array[:10] == 0).all()


def test_no_crs_opens_in_pixel_coordinates_with_one_warning(tmp_path):
    path = write_geotiff(tmp_path / "pix.tif", _image(50, 60), overviews=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with RasterScene.open(path) as scene:
            list(scene.tiles(tile_size=32, overlap=8, prefetch=2))
            scene.read(level=1)
    assert [w.category for w in caught] == [NoCRSWarning]
    assert scene.crs is None and scene.georef.crs_wkt is None and scene.georef.is_pixel and scene.gsd is None


def test_georef_and_gsd(rgb_path):
    with RasterScene.open(rgb_path) as scene:
        assert scene.crs.to_epsg() == 32618 and scene.gsd == pytest.approx(0.5)
        assert scene.georef.transform == tuple(TR)[:6]
        assert scene.georef.pixel_to_map([[2, 4]]).tolist() == [[500001.0, 4199998.0]]
        assert scene.levels(256) == [0, 1, 2]
    assert scene.closed


def test_bad_input_errors(tmp_path, rgb_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a raster\n")
    truncated = tmp_path / "trunc.tif"
    data = rgb_path.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    for bad, cause in [(tmp_path / "missing.tif", "not found"), (tmp_path, "directory"),
                       (text, "cannot open"), (truncated, None)]:
        with pytest.raises(SggInputError, match=cause) as info, RasterScene.open(bad) as scene:
            list(scene.tiles(tile_size=256, overlap=0))
        assert str(bad) in str(info.value)


def test_stripe_order_sweeps_same_tiles(rgb_path, monkeypatch):
    from sgg.io import raster

    rows = _tiles(rgb_path, tile_size=128, overlap=32, order="rows")
    with RasterScene.open(rgb_path) as scene:
        assert scene.sweep_plan(128, 32)[0] >= 8  # narrow image: one stripe, plain row-major
        monkeypatch.setattr(raster, "FLOOR", 300_000)  # a small cache budget forces narrow stripes
        k, cache = scene.sweep_plan(128, 32)
        assert 1 <= k < 8 and cache >= 300_000
        specs = scene.tile_windows(128, 32)
        striped = list(scene.tiles(tile_size=128, overlap=32))
    assert [t.index for t in striped] == [s.index for s in specs]
    assert sorted(t.index for t in striped) == [t.index for t in rows] == list(range(len(rows)))
    from sgg.io.tiles import axis_starts

    ncols, nrows = len(axis_starts(777, 128, 32)), len(axis_starts(1001, 128, 32))
    assert [t.index % ncols for t in striped[: nrows * k]] == list(range(k)) * nrows  # first stripe, all rows
    by_index = {t.index: t for t in rows}
    for t in striped:
        np.testing.assert_array_equal(t.array, by_index[t.index].array)


def test_statistics_of_a_large_file_without_overviews_sample_blocks(tmp_path):
    """A 5000 × 4000 uint16 file (past the 4096² limit, no overviews) is sampled on a grid of blocks."""
    rng = np.random.default_rng(3)
    img = rng.integers(1000, 3000, (4000, 5000), dtype=np.uint16)
    path = write_geotiff(tmp_path / "big16.tif", img, UTM, TR, blocksize=512, overviews=False, compress=None)
    with RasterScene.open(path) as scene:
        sample, valid = scene._stats_sample()
        windows, rest = divmod(sample.shape[1], 128 * 128)  # whole 512² blocks, every 4th pixel
        assert rest == 0 and 7 * 7 <= windows <= 8 * 8 and valid.all()  # about an 8 × 8 grid (7 block rows fit)
        np.testing.assert_allclose(scene.statistics()[0], np.percentile(img, [2, 98]), rtol=0.01)


def test_tiles_of_given_specs(rgb_path):
    with RasterScene.open(rgb_path) as scene:
        specs = scene.tile_windows(256, 64, level=1)
        chosen = specs[::3]
        for prefetch in (0, 2):
            got = list(scene.tiles(specs=chosen, prefetch=prefetch))
            assert [t.index for t in got] == [s.index for s in chosen]
            for t, s in zip(got, chosen):
                np.testing.assert_array_equal(t.array, scene.read_tile(s).array)
                assert t.level == 1 and t.level_window == s.level_window
