"""write_geotiff round trips (pixels, CRS, transform, nodata, overviews, layout) and atomicity; `sgg info`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from affine import Affine

from sgg.io import write_geotiff
from sgg.io.writer import overview_factors


def test_round_trip_with_overviews(tmp_path):
    rng = np.random.default_rng(1)
    img = rng.integers(1, 256, (700, 600, 3), dtype=np.uint8)  # no nodata (0) pixels
    tr = Affine(0.3, 0, 350000, 0, -0.3, 5000000)
    path = write_geotiff(tmp_path / "sub" / "a.tif", img, "EPSG:32633", tr, nodata=0, compress="lzw")
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.tif"]  # no temporary file left behind
    with rasterio.open(path) as ds:
        np.testing.assert_array_equal(ds.read().transpose(1, 2, 0), img)
        assert ds.crs.to_epsg() == 32633 and ds.transform == tr and ds.nodata == 0
        assert ds.overviews(1) == [2] and ds.block_shapes[0] == (512, 512)
        assert ds.compression.name == "lzw" and ds.colorinterp[0].name == "red"
        assert ds.tags(ns="rio_overview")["resampling"] == "average"
    with rasterio.open(path, overview_level=0) as ov:  # internal overview = 2x2 block mean
        mean = img.reshape(350, 2, 300, 2, 3).astype(float).mean(axis=(1, 3))
        assert np.abs(ov.read().transpose(1, 2, 0) - mean).max() <= 1


def test_round_trip_float_and_single_band_and_tuple_transform(tmp_path):
    img = np.linspace(-1, 1, 40 * 50, dtype=np.float32).reshape(40, 50)
    path = write_geotiff(tmp_path / "f.tif", img, 4326, (0.1, 0, 10, 0, -0.1, 50), nodata=-9999.0,
                         overviews=False, compress="deflate")
    with rasterio.open(path) as ds:
        np.testing.assert_array_equal(ds.read(1), img)
        assert ds.count == 1 and ds.crs.to_epsg() == 4326 and ds.transform == Affine(0.1, 0, 10, 0, -0.1, 50)
        assert ds.overviews(1) == [] and ds.nodata == -9999.0


def test_four_bands_are_data_unless_alpha(tmp_path):
    img = np.zeros((32, 32, 4), dtype=np.uint8)
    with rasterio.open(write_geotiff(tmp_path / "d.tif", img, overviews=False)) as ds:
        assert ds.mask_flag_enums[0] == [rasterio.enums.MaskFlags.all_valid]
    with rasterio.open(write_geotiff(tmp_path / "a.tif", img, alpha=True, overviews=False)) as ds:
        assert ds.colorinterp[3].name == "alpha" and rasterio.enums.MaskFlags.alpha in ds.mask_flag_enums[0]


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "x.tif"
    target.write_bytes(b"old")

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(rasterio.io.DatasetWriter, "build_overviews", fail)  # fail after the pixels are written
    with pytest.raises(RuntimeError, match="disk full"):
        write_geotiff(target, np.zeros((600, 600, 3), np.uint8))
    assert target.read_bytes() == b"old"  # the old file is untouched and no temporary file remains
    assert [p.name for p in tmp_path.iterdir()] == ["x.tif"]
    with pytest.raises(ValueError):
        write_geotiff(target, np.zeros((10,), np.uint8))
    with pytest.raises(ValueError, match="compress"):
        write_geotiff(target, np.zeros((10, 10), np.uint8), compress="no-such-codec")


def test_overview_factors():
    assert overview_factors(20000, 20000) == [2, 4, 8, 16, 32, 64]
    assert overview_factors(300, 200) == []


def test_info_command(real_dir, capsys):
    from sgg.cli import main

    assert main(["info", str(real_dir / "rasterio/cogeo.tif"), "--tile-size", "512"]) == 0
    out = capsys.readouterr().out
    assert "1024 x 1024 px, 3 band(s) of uint8" in out and "EPSG:3857" in out and "level 1 (1/2)" in out
    assert main(["info", str(real_dir / "dota/P1888.png"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["crs"] is None and info["levels"][0]["tiles"] == 1 and len(info["warnings"]) == 1
    assert main(["info", str(real_dir / "rasterio/corrupt.tif")]) == 2
    assert "corrupt.tif" in capsys.readouterr().err
